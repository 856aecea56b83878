"""The human handoff: one implementation for the chat (handlers/handoff.py) and the web console.

A customer's message that asks for a person (转人工, 人工客服 …) or sounds angry (骗子,
退钱 …) opens a handoff — one live handoff per member, reused when they ask again.
The member is told what happens next (in working hours: someone is coming; out of
them: when); the member's owner (the group's owner, else whoever added them) or the
on-duty list gets an app message with the context and where to act; a timer
escalates a handoff still untaken after ``escalate_after_min`` minutes of working
time. While the handoff is live the bot leaves the member alone (bot.handoffs tells
the knowledge base). Staff take it (the member is told who has it) and close it (the
member is back with the bot); a handoff nobody closes ends when its hold runs out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.commands import strip_bot_mention
from bot.effects import Effects
from bot.events import Chat, MessageEvent
from bot.handoff import store
from bot.handoff.config import HandoffConfig
from bot.hours import contains, next_open
from bot.members import MEMBERS, profile_of
from bot.textnorm import fold
from bot.textsafe import clean_name

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.context import Context

log = logging.getLogger("siyu.handoff")

ESCALATE_TASK = "handoff-escalate"
NEGATION = re.compile(r"(?:不用|不要|不需要|无需|别|没)\s*$")
REASONS = {"request": "要求人工", "anger": "情绪激动"}


class HandoffError(Exception):
    """A handoff that cannot be taken or closed; ``text`` tells the staff member why (Chinese)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class Waiting:
    """One live handoff as the list and the console show it."""

    id: int
    member_id: str
    member_name: str
    chat_id: str
    chat_type: str
    chat_name: str
    reason: str
    trigger: str
    text: str
    status: str
    taken_by: str
    opened_at: datetime
    waited_min: int
    escalated: bool
    follow_ups: int
    messages: tuple[dict[str, Any], ...]

    @property
    def member(self) -> str:
        return self.member_name or self.member_id

    @property
    def where(self) -> str:
        return f"群「{self.chat_name or self.chat_id}」" if self.chat_type == "group" else "私聊"


def _waiting(row: Any, now: datetime) -> Waiting:
    return Waiting(id=row.id, member_id=row.member_id, member_name=row.member_name, chat_id=row.chat_id,
                   chat_type=row.chat_type, chat_name=row.chat_name, reason=row.reason, trigger=row.trigger,
                   text=row.text, status=row.status, taken_by=row.taken_by or "", opened_at=row.opened_at,
                   waited_min=max(0, int((now - row.opened_at).total_seconds() // 60)),
                   escalated=row.escalated_at is not None, follow_ups=row.follow_ups,
                   messages=tuple(row.messages or ()))


class HandoffService:
    def __init__(self, app: BotApp, cfg: HandoffConfig) -> None:
        self.app = app
        self.cfg = cfg
        self.spans = cfg.spans
        self.tz = app.config.bot.tz

    # ── what other features ask (bot.handoffs.HandoffState) ──
    async def is_open(self, session: Any, member_id: str) -> bool:
        return await store.is_open(session, member_id, self.app.clock.now())

    async def member_facts(self, session: Any, member_id: str) -> list[str]:
        """The member's open handoff, for the profile (bot.memberfacts)."""
        row = await store.live_of(session, member_id, self.app.clock.now())
        if row is None:
            return []
        since = f"{row.opened_at.astimezone(self.tz):%m-%d %H:%M} 起"
        return [f"{row.taken_by} 接待中（{since}）" if row.taken_by else f"等待接待（{since}）"]

    # ── a customer's message ──
    def trigger_of(self, text: str) -> tuple[str, str] | None:
        """(reason, word) if ``text`` asks for a person or sounds angry; a negated request (不用转人工) does not."""
        folded = fold(strip_bot_mention(text, self.app.bot_names))
        for reason, words in (("request", self.cfg.triggers), ("anger", self.cfg.anger_words)):
            for word in words:
                wanted = fold(word)
                start = folded.find(wanted)
                while start >= 0:
                    if not NEGATION.search(folded[max(0, start - 3):start]):
                        return reason, word
                    start = folded.find(wanted, start + 1)
        return None

    async def on_message(self, ctx: Context, event: MessageEvent) -> bool:
        """A customer's message: open or continue their handoff. True if the bot should stay out of it."""
        now = ctx.now()
        found = self.trigger_of(event.text)
        current = await store.live_of(ctx.session, event.sender.id, now)
        if current is not None:
            await self._keep(ctx, current, event, now)
            if found is not None and found[0] == "request":
                await ctx.reply(ctx.render("handoff/still_open.j2", h=_waiting(current, now), **self._hours(now)),
                                mention=event.chat.is_group)
            return True
        if found is None:
            return False
        await self.open(ctx, event, *found)
        return True

    async def open(self, ctx: Context, event: MessageEvent, reason: str, word: str) -> Waiting:
        """A new handoff: the member told, their owner (or the on-duty list) told, the escalation timer set."""
        now = ctx.now()
        session = ctx.session
        await store.expire(session, now, event.sender.id)
        profile = await profile_of(self.app, session, event.sender)
        message = {"at": now.isoformat(), "text": event.text[:500]}
        handoff_id = await store.insert(session, dict(
            member_id=event.sender.id, member_name=clean_name(profile.name or event.sender.name),
            chat_id=event.chat.id[:200], chat_type=event.chat.type, chat_name=event.chat.name[:128], reason=reason,
            trigger=word[:64], text=event.text[:2000], event_key=event.key[:255], messages=[message],
            opened_at=now, hold_until=next_open(self.spans, now, self.tz) + self.cfg.hold_for))
        if handoff_id is None:  # opened a moment ago from another chat of the same member
            row = await store.live_of(session, event.sender.id, now)
            return _waiting(row, now)
        row = await store.get(session, handoff_id)
        h = _waiting(row, now)
        staff = await self._staff_for(session, event, profile.owner_staff)
        await store.set_notified(session, h.id, staff)
        await ctx.send("app_message", to=staff, key=f"handoff:{h.id}:notice",
                       text=ctx.render("handoff/notice.j2", h=h, tier=profile.tier_name, link=self.link(h.id),
                                       **self._hours(now)))
        await ctx.schedule(f"handoff:{h.id}:escalate", ESCALATE_TASK, self.escalate_at(now), {"id": h.id})
        await ctx.reply(ctx.render("handoff/opened.j2", h=h, **self._hours(now)), mention=event.chat.is_group)
        log.info("handoff %d opened for %s (%s: %s); told %s", h.id, h.member_id, reason, word, ",".join(staff))
        return h

    async def _keep(self, ctx: Context, row: Any, event: MessageEvent, now: datetime) -> None:
        """Keep the member's latest messages with the handoff (the context staff see)."""
        keep = self.cfg.context_messages
        messages = [*list(row.messages or ()), {"at": now.isoformat(), "text": event.text[:500]}]
        await store.add_message(ctx.session, row.id, messages[-keep:] if keep else [], follow_up=True)

    async def _staff_for(self, session: Any, event: MessageEvent, owner: str) -> list[str]:
        """Whom to tell: the group's owner in a group, else the member's owner; else on duty; else the ops users."""
        directory = self.app.maybe(MEMBERS)
        if event.chat.is_group and directory is not None:
            group = await directory.group(session, event.chat.id)
            if group is not None and group.owner_id:
                return [group.owner_id]
        if owner:
            return [owner]
        return list(self.cfg.on_duty or self.app.config.bot.ops_users)

    # ── staff (chat and console) ──
    async def list_open(self, session: Any, *, expire: bool = True) -> tuple[list[Waiting], int]:
        """The live handoffs, the longest waiting first (at most ``page_size``), and how many there are.
        ``expire=False`` (a read-only session, the console's page) leaves closing the run-out ones to the
        next writer: they are not listed either way."""
        now = self.app.clock.now()
        if expire:
            await store.expire(session, now)
        rows = await store.live(session, now, self.cfg.page_size)
        return [_waiting(r, now) for r in rows], await store.count_live(session, now)

    async def take(self, fx: Effects, handoff_id: int, staff_id: str, staff_name: str = "") -> tuple[Waiting, str]:
        """Assign the handoff to ``staff_id`` and tell the member; (the handoff, who had it before)."""
        now = self.app.clock.now()
        row = await self._live_or_refuse(fx.session, handoff_id, now, "take")
        if row.status == "taken" and row.taken_by == staff_id:
            raise HandoffError(self.app.templates.render("handoff/problem.j2", problem="mine", id=handoff_id))
        await store.take(fx.session, handoff_id, staff_id, now, now + self.cfg.hold_for)
        h = _waiting(await store.get(fx.session, handoff_id), now)
        await self._tell_member(fx, h, "handoff/member_taken.j2", f"taken:{staff_id}:{now.isoformat()}",
                                staff=clean_name(staff_name) or staff_id)
        log.info("handoff %d taken by %s", handoff_id, staff_id)
        return h, row.taken_by or ""

    async def close(self, fx: Effects, handoff_id: int, staff_id: str) -> Waiting:
        """Give the member back to the bot and tell them."""
        now = self.app.clock.now()
        await self._live_or_refuse(fx.session, handoff_id, now, "close")
        await store.close(fx.session, handoff_id, staff_id, now)
        h = _waiting(await store.get(fx.session, handoff_id), now)
        await self._tell_member(fx, h, "handoff/member_closed.j2", "closed", bot=self.app.config.bot.name)
        log.info("handoff %d closed by %s", handoff_id, staff_id)
        return h

    async def _live_or_refuse(self, session: Any, handoff_id: int, now: datetime, action: str) -> Any:
        await store.expire(session, now)
        row = await store.get(session, handoff_id)
        if row is None:
            problem = "unknown"
        elif row.open_key is None:
            problem = "closed"
        else:
            return row
        raise HandoffError(self.app.templates.render("handoff/problem.j2", problem=problem, id=handoff_id,
                                                     action=action, row=row))

    async def _tell_member(self, fx: Effects, h: Waiting, template: str, what: str, **values: Any) -> None:
        group = h.chat_type == "group"
        await fx.send("reply", chat=Chat(id=h.chat_id, type="group" if group else "single", name=h.chat_name),
                      to=[h.member_id], destination={"mention": [h.member_id]} if group else {},
                      key=f"handoff:{h.id}:{what}", text=self.app.templates.render(template, h=h, **values))

    # ── escalation (a timer task) ──
    def escalate_at(self, opened: datetime) -> datetime:
        """``escalate_after`` of working time after ``opened``: counted from the next opening when off hours."""
        return next_open(self.spans, opened, self.tz) + self.cfg.escalate_after

    async def escalate(self, session: Any, payload: dict[str, Any], _task: Any) -> None:
        """Tell the escalation list of a handoff nobody has taken — once (the row, the timer and the key)."""
        now = self.app.clock.now()
        handoff_id = int(payload["id"])
        if not await store.mark_escalated(session, handoff_id, now):
            return  # taken, closed or ended meanwhile: nothing to escalate
        row = await store.get(session, handoff_id)
        h = _waiting(row, now)
        to = list(self.cfg.escalate_to or self.cfg.on_duty or self.app.config.bot.ops_users)
        fx = Effects(self.app, session, source=f"handoff:{handoff_id}:escalate")
        await fx.send("app_message", to=to, key=f"handoff:{handoff_id}:escalate",
                      text=self.app.templates.render("handoff/escalation.j2", h=h, notified=list(row.notified or ()),
                                                     link=self.link(handoff_id)))
        log.info("handoff %d escalated to %s after %d minutes", handoff_id, ",".join(to), h.waited_min)

    # ── helpers ──
    def link(self, handoff_id: int) -> str:
        """The web console's handoffs page, when the console is on and its address known (``[console]``)."""
        console = self.app.config.console
        base = console.public_url.rstrip("/") if console.enabled else ""
        return f"{base}/console/handoffs?id={handoff_id}" if base else ""

    def working(self, now: datetime) -> bool:
        return not self.spans or contains(self.spans, now.astimezone(self.tz).time().replace(tzinfo=None))

    def _hours(self, now: datetime) -> dict[str, Any]:
        """What the texts say about working hours: in them now, the hours, and when staff are next there."""
        local = now.astimezone(self.tz)
        back = next_open(self.spans, now, self.tz)
        day = (back.date() - local.date()).days
        return {"working": self.working(now), "hours": self.cfg.working_hours,
                "back": f"{('今天', '明天')[min(day, 1)]} {back:%H:%M}", "minutes": self.cfg.escalate_after_min,
                "reason_text": REASONS}
