"""Drive the bot as the outside world does: push an event, get back what it sent."""

from __future__ import annotations

import itertools
from typing import Any

from bot.app import BotApp
from bot.context import Context
from bot.events import Actor, Chat, ContactAdded, Event, MemberJoined, MemberLeft, MessageEvent
from bot.routing import Router
from bot.senders.base import Delivery
from bot.senders.console import RecordingSender

_ids = itertools.count(1)


def listener(event_type: type[Event], heard: list[Any], name: str = "listener") -> Router:
    """A router that appends every ``event_type`` event it sees to ``heard`` (include it in a bot)."""
    r = Router(name)

    @r.on(event_type)
    async def hear(event: Event, ctx: Context) -> None:
        heard.append(event)

    return r


class Harness:
    """``await h.say("怎么退款")`` → the deliveries the bot made in answer."""

    def __init__(self, app: BotApp) -> None:
        self.app = app
        if not isinstance(app.sender, RecordingSender):
            raise TypeError("the harness needs a RecordingSender")
        self.sender: RecordingSender = app.sender

    @property
    def sent(self) -> list[Delivery]:
        return self.sender.deliveries

    def key(self) -> str:
        return f"test:{next(_ids)}"

    async def push(self, event: Event) -> list[Delivery]:
        before = len(self.sender.deliveries)
        await self.app.accept_event(event)
        await self.app.settle()
        return self.sender.deliveries[before:]

    async def settle(self) -> list[Delivery]:
        before = len(self.sender.deliveries)
        await self.app.settle()
        return self.sender.deliveries[before:]

    def message(self, text: str, *, chat: str = "g1", chat_name: str = "新人群", group: bool = True,
                sender: str = "wmAlice", name: str = "Alice", staff: bool = False, mention: bool = True,
                key: str | None = None) -> MessageEvent:
        c = Chat(id=chat, type="group", name=chat_name) if group else Chat(id=sender, type="single", name=name)
        return MessageEvent(key=key or self.key(), time=self.app.clock.now(), channel="test", chat=c,
                            sender=Actor(id=sender, name=name, staff=staff), text=text, mentions_bot=mention)

    async def say(self, text: str, **kw: Any) -> list[Delivery]:
        return await self.push(self.message(text, **kw))

    async def say_texts(self, text: str, **kw: Any) -> list[str]:
        """The texts of the answer. A private answer typed in a group (``private=True`` commands) is the
        app message to the author; the group's neutral notice is left out — ``say`` shows every delivery."""
        notice = self.app.templates.render("core/answered_privately.j2")
        sent = await self.say(text, **kw)
        private = any(d.kind == "app_message" for d in sent)
        return [d.text for d in sent if not (private and d.kind == "reply" and d.text == notice)]

    async def admin(self, text: str, **kw: Any) -> list[str]:
        kw.setdefault("sender", "admin01")
        kw.setdefault("name", "管理员")
        kw.setdefault("staff", True)
        return await self.say_texts(text, **kw)

    async def join(self, member: str = "wmBob", name: str = "Bob", *, chat: str = "g1", chat_name: str = "新人群",
                   inviter: str | None = None, scene: str = "qrcode") -> list[Delivery]:
        ev = MemberJoined(key=self.key(), time=self.app.clock.now(), channel="test",
                          chat=Chat(id=chat, type="group", name=chat_name),
                          member=Actor(id=member, name=name, staff=False),
                          inviter=Actor(id=inviter, name=inviter) if inviter else None,
                          scene="invite" if inviter else scene)  # type: ignore[arg-type]
        return await self.push(ev)

    async def leave(self, member: str = "wmBob", *, chat: str = "g1") -> list[Delivery]:
        ev = MemberLeft(key=self.key(), time=self.app.clock.now(), channel="test",
                        chat=Chat(id=chat, type="group"), member=Actor(id=member), scene="left")
        return await self.push(ev)

    async def add_contact(self, member: str = "wmCarol", name: str = "Carol", *, staff: str = "staff01",
                          state: str = "", welcome_code: str = "WELCOME") -> list[Delivery]:
        ev = ContactAdded(key=self.key(), time=self.app.clock.now(), channel="test",
                          member=Actor(id=member, name=name), staff=Actor(id=staff, staff=True), state=state,
                          welcome_code=welcome_code)
        return await self.push(ev)
