"""The running bot, independent of HTTP: storage, inbox, dispatcher, outbox, scheduler, features.

``BotApp`` is used by ``serve`` (wrapped in the aiohttp app by bot.web), by
``simulate`` and by the tests. It installs the features listed in
``handlers.FEATURES`` (see bot.feature): each feature's ``install(app)`` builds its
services, pumps, crons, routes and template folder, then its routers are included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, text

from bot.clock import Clock, SystemClock
from bot.command_stage import build_router as build_command_router
from bot.commands import CommandRegistry
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.effects import Effects
from bot.events import Event
from bot.feature import Feature, Setup, as_feature
from bot.inbox import InboxPump, InboxWriter, Incoming
from bot.lag import LagWatch
from bot.metrics import Metrics
from bot.outbox import Outbox, OutboxPump
from bot.pump import Pump
from bot.roles import Roles
from bot.routing import HandlerSpec
from bot.scheduler import Scheduler, Timers
from bot.senders.base import Sender
from bot.services import ServiceKey, Services
from bot.storage import migrate
from bot.storage.db import Database
from bot.storage.keys import bounded_key
from bot.storage.models import InboxRow
from bot.templates import Templates
from handlers import FEATURES

log = logging.getLogger("siyu.app")

T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


def default_features() -> list[Feature]:
    return list(FEATURES)


def load_plugin(ref: str) -> Feature:
    """``package.module:name`` → the plugin's :class:`Feature` (or ``setup`` function), config ``bot.plugins``."""
    import importlib  # only for plugins named in the config

    module_name, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"bot.plugins: cannot load {ref!r}: {exc}") from exc
    if not isinstance(obj, Feature) and not callable(obj):
        raise ValueError(f"bot.plugins: {ref!r} is neither a Feature nor a setup function")
    return as_feature(obj)


def make_sender(config: Config, clock: Clock | None = None, metrics: Metrics | None = None) -> Sender:
    """The sender ``bot.sender`` names: console (default), robot (webhooks + console) or wecom (the API)."""
    if config.bot.sender == "wecom":
        from bot.senders.wecom import WeComSender

        return WeComSender(config, clock=clock, metrics=metrics)
    if config.bot.sender == "robot":
        from bot.senders.robot import RobotSender

        return RobotSender(config)
    from bot.senders.console import ConsoleSender

    return ConsoleSender(config.console.format)


class BotApp:
    def __init__(self, config: Config, *, sender: Sender | None = None, clock: Clock | None = None,
                 features: Sequence[Feature | Setup] | None = None, run_workers: bool = True) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.replica = config.bot.instance_id or f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.metrics = Metrics()
        self.db = Database(config.database_url, pool_size=config.database.pool_size,
                           sqlite_synchronous=config.database.sqlite_synchronous, echo=config.database.echo)
        self.templates = Templates(config.bot.tz, clock=self.clock)
        self.outbox = Outbox(self.db, self.clock, config)
        self.roles = Roles(config.bot.admins, self.clock, self.db.dialect)
        self.scheduler = Scheduler(config.bot.tz, self.db, self.clock, self.metrics, self.replica)
        self.timers = Timers(self.db, self.clock, self.replica)
        self.services = Services()
        self.sender: Sender = sender if sender is not None else make_sender(config, self.clock, self.metrics)
        self.dispatcher = Dispatcher(self)
        self.inbox_pump = InboxPump(self.db, self.clock, self.dispatcher, config.inbox, self.metrics, self.replica,
                                    frozenset(config.bot.staff_ids))
        self.inbox_writer = InboxWriter(self.db, self.clock, on_commit=self.inbox_pump.kick)
        from bot.senders.wecom import WeComSender

        if isinstance(self.sender, WeComSender):  # the API sender is also the API client features call
            from bot.channels.enrich import ContactEnricher, GroupChatEnricher
            from bot.wecomapi import WECOM_API

            self.sender.use_metrics(self.metrics)
            self.provide(WECOM_API, self.sender)
            self.inbox_pump.enrichers.append(GroupChatEnricher(self.sender))  # names and inviters of joiners
            self.inbox_pump.enrichers.append(ContactEnricher(self.sender))    # an edited contact's tags
        self.outbox_pump = OutboxPump(self.db, self.clock, self.sender, config, self.metrics, self.replica)
        self.lag = LagWatch(self.db, self.clock, config, self.metrics)
        self.timers.after_run.append(self.outbox_pump.kick)
        self.timers.after_run.append(self.inbox_pump.kick)
        self.run_workers = run_workers
        self.bot_names = [n for n in (config.bot.name, config.aibot.name) if n]
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        # Features' own pumps (e.g. due SOP steps): run, polled every second, drained by settle().
        self.pumps: list[Pump] = []
        # Extra HTTP routes a feature serves: (method, path, aiohttp handler); see bot.web.
        self.http_routes: list[tuple[str, str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

        self.dispatcher.include(build_command_router())
        chosen = [as_feature(f) for f in (default_features() if features is None else features)]
        chosen += [load_plugin(ref) for ref in config.bot.plugins]
        self.features = chosen
        for feature in chosen:
            for router in feature.setup(self):
                self.dispatcher.include(router)
        self.commands = CommandRegistry(self.dispatcher.routers)
        self.dispatcher.error_hooks.append(self._notify_ops)

    # ── services ──
    def provide(self, key: ServiceKey[T], value: T) -> None:
        self.services.provide(key, value)

    def get(self, key: ServiceKey[T]) -> T:
        return self.services.get(key)

    def maybe(self, key: ServiceKey[T]) -> T | None:
        return self.services.maybe(key)

    # ── lifecycle ──
    async def start(self) -> None:
        if self.started:
            return
        await migrate.upgrade(self.db)
        for hook in self.on_startup:
            await hook()
        await self.inbox_writer.start()
        if self.run_workers:
            self._spawn(self.inbox_pump.run(), "inbox-pump")
            self._spawn(self.outbox_pump.run(), "outbox-pump")
            self._spawn(self.timers.run(), "timers")
            self.scheduler.add_poller("inbox", self.inbox_pump.kick, self.config.inbox.poll_interval_s)
            self.scheduler.add_poller("outbox", self.outbox_pump.kick, self.config.outbox.poll_interval_s)
            self.scheduler.add_poller("tasks", self.timers.kick, 1.0)
            self.scheduler.add_poller("lag", self.lag.check, 5.0)
            for pump in self.pumps:
                self._spawn(pump.run(), pump.name)
                self.scheduler.add_poller(pump.name, pump.kick, 1.0)
            self.scheduler.add_cron("housekeeping", self.housekeeping, hour=4, minute=17)
            self.scheduler.start()
            self.inbox_pump.kick()
            self.outbox_pump.kick()
        self.started = True
        log.info("siyu started: replica=%s db=%s sender=%s features=%s", self.replica, self.db.dialect,
                 type(self.sender).__name__, ",".join(r.name for r in self.dispatcher.routers))

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self, grace_s: float = 10.0) -> None:
        """Finish what is in hand, give back what was claimed but not started, close."""
        if not self.started:
            await self.db.dispose()
            return
        self.scheduler.shutdown()
        await self.inbox_writer.stop()
        # Producers first: let the handlers and tasks in hand finish and commit what they send …
        producers = [self.inbox_pump, self.timers, *self.pumps]
        for pump in producers:
            pump.stop()
        started = asyncio.get_running_loop().time()
        producer_tasks = [t for t in self._tasks if t.get_name() != "outbox-pump"]
        if producer_tasks:
            await asyncio.wait(producer_tasks, timeout=grace_s)
        # … then send what is due now, within what is left of the grace period, and stop the sender.
        remaining = max(0.5, grace_s - (asyncio.get_running_loop().time() - started))
        if self.run_workers:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(self.outbox_pump.drain(), remaining)
        self.outbox_pump.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=remaining)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        self._tasks.clear()
        released = (await self.inbox_pump.release(), await self.outbox_pump.release())
        await self.timers.release()
        if any(released):
            log.info("released claimed rows on shutdown: inbox=%d outbox=%d", *released)
        for hook in reversed(self.on_shutdown):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        await self.sender.close()
        await self.db.dispose()
        self.started = False
        log.info("siyu stopped")

    async def __aenter__(self) -> BotApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ── entry points ──
    async def accept(self, item: Incoming) -> bool:
        """Commit an inbound event; True if new, False if a duplicate."""
        new = await self.inbox_writer.put(item)
        if new:
            self.metrics.received.labels(item.channel).inc()
        else:
            self.metrics.deduplicated.labels(item.channel).inc()
        return new

    async def accept_event(self, event: Event, raw: str | None = None) -> bool:
        from bot.events import chat_key_of

        payload = event.to_payload()
        return await self.accept(Incoming(dedup_key=event.key, channel=event.channel, kind=event.type,
                                          payload=payload, raw=raw, chat_key=chat_key_of(payload)))

    async def settle(self, rounds: int = 50) -> None:
        """Process everything pending now: inbox, due tasks, outbox (for tests and the simulator)."""
        for _ in range(rounds):
            n = await self.inbox_pump.drain()
            n += await self.timers.drain()
            for pump in self.pumps:
                n += await pump.drain()
            n += await self.outbox_pump.drain()
            if n == 0:
                return

    async def next_due(self) -> datetime | None:
        """The earliest time a due task or a feature's pump waits for (see :meth:`Pump.next_due`)."""
        times = [t for t in [await self.timers.next_due(), *[await p.next_due() for p in self.pumps]] if t]
        return min(times, default=None)

    async def health(self) -> dict[str, Any]:
        status: dict[str, Any] = {"status": "ok", "replica": self.replica, "database": self.db.dialect}
        try:
            async with self.db.read() as s:
                await s.execute(text("SELECT 1"))
        except Exception as exc:
            status.update(status="error", error=f"database: {type(exc).__name__}")
        if self.run_workers and not self.scheduler.running:
            status.update(status="error", error="scheduler is not running")
        if status["status"] == "ok":
            try:
                lags = await self.lag.measure()
            except Exception as exc:
                status.update(status="error", error=f"lag: {type(exc).__name__}")
            else:
                status.update({f"{name}_lag_s": round(lag, 1) for name, lag in lags.items()})
                if self.lag.over(lags):
                    status["status"] = "degraded"  # still acknowledging: processing is behind
        return status

    async def refresh_gauges(self) -> None:
        await self.lag.measure()
        counts = await self.outbox.counts()
        for state in ("pending", "sending", "sent", "dead"):
            self.metrics.outbox_rows.labels(state).set(counts.get(state, 0))
        t = InboxRow.__table__
        async with self.db.read() as s:
            rows = (await s.execute(select(t.c.status, func.count()).group_by(t.c.status))).all()
        inbox = dict(rows)
        for state in ("pending", "processing", "done", "failed"):
            self.metrics.inbox_rows.labels(state).set(inbox.get(state, 0))

    async def housekeeping(self, _fire_time: Any = None) -> None:
        """Prune processed inbox rows, receipts and old sent deliveries past their retention."""
        from datetime import timedelta

        from sqlalchemy import and_, delete

        from bot.storage.models import HandledEvent, OutboxRow

        now = self.clock.now()
        inbox, outbox, handled = InboxRow.__table__, OutboxRow.__table__, HandledEvent.__table__
        inbox_cut = now - timedelta(days=self.config.inbox.retention_days)
        outbox_cut = now - timedelta(days=self.config.outbox.retention_days)
        async with self.db.session() as s:
            a = await s.execute(delete(inbox).where(and_(inbox.c.status == "done", inbox.c.processed_at < inbox_cut)))
            b = await s.execute(delete(handled).where(handled.c.at < inbox_cut))
            c = await s.execute(delete(outbox).where(and_(outbox.c.status == "sent", outbox.c.sent_at < outbox_cut)))
        log.info("housekeeping removed inbox=%d receipts=%d outbox=%d", a.rowcount, b.rowcount, c.rowcount)

    async def _notify_ops(self, spec: HandlerSpec, event: Event, exc: BaseException) -> None:
        ops = self.config.bot.ops_users
        if not ops:
            return
        text_ = self.templates.render("core/handler_error.j2", handler=spec.name, event=event,
                                      error=f"{type(exc).__name__}: {exc}"[:300])
        async with self.db.session() as s:
            fx = Effects(self, s, source=event.key)
            await fx.send("app_message", key=bounded_key(f"error|{event.key}|{spec.name}"), text=text_, to=ops)
        fx.kick()
