"""The one side-effects API: what a piece of work sends, emits and schedules.

Everything the bot does to the outside world goes through an :class:`Effects`
bound to one database session: a delivery is a row in the outbox, an internal
event a row in the inbox, a timer a row in the task table — written in that
session, so they commit (or roll back) together with the state change that
caused them. Nothing leaves before the commit; each carries an idempotency key,
so work that is repeated never repeats its effects.

A handler's :class:`bot.context.Context` is an ``Effects`` (keys derived from the
event and the handler). Cron jobs, pumps and CLI commands make their own::

    async with app.db.session() as s:
        fx = Effects(app, s, source="tiers:daily-review")
        await fx.send("app_message", text=..., to=[...], key="tiers:review:2026-12-07")
    fx.kick()   # after the commit: wake the outbox and inbox pumps
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.events import Chat, Event
from bot.storage.keys import bounded_key

if TYPE_CHECKING:
    from bot.app import BotApp

KEY_LIMIT = 200


class Effects:
    def __init__(self, app: BotApp, session: Any, source: str, *, scope: str | None = None) -> None:
        self.app = app
        self.session = session
        self.source = source                # what caused these effects (an event key, a job name)
        self.scope = scope or source        # the prefix of keys made by key()
        self._n = 0
        self.queued = 0
        self.emitted = 0

    def key(self, suffix: str | None = None) -> str:
        """An idempotency key derived from this scope: ``scope|suffix`` (or a running number)."""
        if suffix is None:
            self._n += 1
            suffix = str(self._n)
        return bounded_key(f"{self.scope}|{suffix}", KEY_LIMIT)

    async def send(self, kind: str, *, text: str = "", chat: Chat | dict[str, Any] | None = None,
                   to: Iterable[str] = (), key: str | None = None, **kw: Any) -> int:
        """Queue one delivery (``reply``, ``app_message``, ``group_robot``, ``mass_send``, ``moment_task``,
        ``remind_staff``, ``mark_tag`` …); it is sent after the session commits. Returns 1 if queued, 0 if
        a delivery with this key already exists."""
        n = await self.app.outbox.enqueue(self.session, key=key or self.key(), kind=kind, text=text, chat=chat,
                                          to=list(to), source=self.source, **kw)
        self.queued += n
        return n

    async def send_many(self, deliveries: Sequence[dict[str, Any]]) -> int:
        """Queue many deliveries at once (each a dict of :meth:`send`'s arguments, ``key`` included)."""
        if not deliveries:
            return 0
        rows = [{"source": self.source, **d} for d in deliveries]
        n = await self.app.outbox.enqueue_many(self.session, rows)
        self.queued += n
        return n

    async def emit(self, event: Event) -> bool:
        """Raise an internal event (e.g. ``tier_changed``); it is dispatched durably after the commit."""
        new = await self.app.inbox_pump.emit(self.session, event)
        self.emitted += int(new)
        return new

    async def schedule(self, key: str, name: str, due_at: datetime, payload: dict[str, Any]) -> bool:
        """Run the registered task ``name`` once at ``due_at`` (see bot.scheduler.Timers)."""
        return await self.app.timers.schedule(self.session, key=key, name=name, due_at=due_at, payload=payload)

    def kick(self) -> None:
        """After the commit: wake the pumps that carry what was queued."""
        if self.queued:
            self.app.outbox_pump.kick()
        if self.emitted:
            self.app.inbox_pump.kick()
