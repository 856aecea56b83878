"""The context handed to every handler: its session, the services, and its effects.

A handler runs in its own transaction with a receipt row (event key + handler
name): its state changes, the messages it queues and the receipt commit
together, so a reprocessed event never repeats a handler's effects, and a
failing handler rolls back alone without stopping the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bot.effects import Effects
from bot.events import Chat, EnteredAgent, Event, MessageEvent
from bot.roles import ADMIN
from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.commands import Args

T = TypeVar("T")


class _NoArgs(dict[str, Any]):
    pass


_NO_ARGS: Any = _NoArgs()


class Context(Effects):
    """What a handler may use: its session, the services, and ways to send and schedule."""

    def __init__(self, app: BotApp, event: Event, session: Any, handler: str, *, roles: frozenset[str],
                 args: Args | None = None, confirmed: bool = False) -> None:
        super().__init__(app, session, event.key, scope=f"{event.key}|{handler}")
        self.event = event
        self.handler = handler
        self.roles = roles
        self.args: Args = args if args is not None else _NO_ARGS
        self.confirmed = confirmed
        self.private = False  # replies go to the author 1:1 (a command whose answer is private, typed in a group)
        self._noticed = False
        self.stopped = False  # set by stop(): the handlers after this one do not see the event
        self.rollback_hooks: list[Callable[[], Awaitable[None]]] = []
        self.commit_hooks: list[Callable[[], None]] = []
        self.prepared: Any = None  # what the handler's ``prepare`` computed before the transaction (routing)

    @property
    def config(self) -> Any:
        return self.app.config

    @property
    def clock(self) -> Any:
        return self.app.clock

    def now(self) -> datetime:
        return self.app.clock.now()

    def get(self, key: ServiceKey[T]) -> T:
        """A feature's service (``ctx.get(KNOWLEDGE)``)."""
        return self.app.get(key)

    def maybe(self, key: ServiceKey[T]) -> T | None:
        return self.app.maybe(key)

    def has_role(self, *roles: str) -> bool:
        return ADMIN in self.roles or any(r in self.roles for r in roles)

    def render(self, template: str, /, **values: Any) -> str:
        return self.app.templates.render(template, **values)

    def stop(self) -> None:
        """The handlers after this one do not see the event (a blocking match decided while handling it,
        e.g. a member handed to a person). Only a handler that succeeds stops it: a failing one does not."""
        self.stopped = True

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once this handler's transaction has committed (e.g. to refresh a cache)."""
        self.commit_hooks.append(hook)

    def on_rollback(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` in a fresh transaction if this handler fails (e.g. to record the failure).

        Never open a second write session inside a handler: on SQLite it waits for the
        handler's own transaction. Use ``ctx.session``, or this hook after the rollback.
        """
        self.rollback_hooks.append(hook)

    def _reply_target(self) -> tuple[Chat | None, list[str], dict[str, Any]]:
        ev = self.event
        if isinstance(ev, MessageEvent):
            return ev.chat, [ev.sender.id], dict(ev.reply)
        if isinstance(ev, EnteredAgent):
            chat = ev.chat or Chat(id=ev.user.id, type="single", name=ev.user.name)
            return chat, [ev.user.id], dict(ev.reply)
        chat = getattr(ev, "chat", None)
        return chat, [], {}

    async def reply(self, text: str, *, msgtype: str = "text", mention: bool = False,
                    key: str | None = None) -> int:
        """Answer in the chat the event came from (1:1 to the author instead when ``private`` is set)."""
        chat, to, dest = self._reply_target()
        if self.private and chat is not None and chat.is_group and to:
            return await self._reply_privately(text, to, key=key)
        if chat is None:
            raise RuntimeError(f"{type(self.event).__name__} has no chat to reply to")
        if mention and to:
            dest["mention"] = list(to)
        extra: dict[str, Any] = {}
        if self.event.channel == "aibot" and dest.get("response_url"):
            # The callback may still answer passively; the outbox takes over only after that window.
            wait_ms = self.app.config.aibot.reply_wait_ms
            extra["not_before"] = self.now() + timedelta(milliseconds=wait_ms + 500)
        return await self.send("reply", text=text, chat=chat, to=to, msgtype=msgtype, destination=dest, key=key,
                               **extra)

    async def _reply_privately(self, text: str, to: list[str], *, key: str | None) -> int:
        """The answer as an app message to the author; once per event, a neutral notice in the group."""
        n = await self.send("app_message", text=text, to=to, key=key)
        if not self._noticed:
            self._noticed = True
            self.private = False
            try:
                await self.reply(self.render("core/answered_privately.j2"), mention=True, key=self.key("private"))
            finally:
                self.private = True
        return n
