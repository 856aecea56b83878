"""The clock of the bot: one APScheduler AsyncIOScheduler owned by the app lifecycle.

It runs the pollers (inbox, outbox, due tasks, each feature's own) and the
features' cron jobs. The database stays the source of truth for what is due:
APScheduler only ticks. A cron job's fire time is claimed in ``cron_run``
first, so several replicas run each firing once.

:class:`Timers` is the generic "run this once at that time" store (the
``scheduled_task`` table): a task's effects and its done mark commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, func, or_, select, update

from bot.clock import Clock
from bot.metrics import Metrics
from bot.pump import Pump
from bot.storage.db import Database, insert_ignoring_conflicts
from bot.storage.keys import bounded_key
from bot.storage.models import CronRun, ScheduledTask

log = logging.getLogger("siyu.scheduler")
CRON = CronRun.__table__
TASKS = ScheduledTask.__table__

CronFn = Callable[[datetime], Awaitable[Any]]


class Scheduler:
    def __init__(self, tz: ZoneInfo, db: Database, clock: Clock, metrics: Metrics, replica: str) -> None:
        self.tz = tz
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.replica = replica
        self.aps = AsyncIOScheduler(timezone=tz, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
        self.crons: dict[str, tuple[BaseTrigger, CronFn]] = {}

    @property
    def running(self) -> bool:
        return bool(self.aps.running)

    def add_poller(self, name: str, fn: Callable[[], Any], seconds: float) -> None:
        """Call ``fn`` every ``seconds`` (a kick or a small drain; never overlapping itself)."""
        self.aps.add_job(fn, IntervalTrigger(seconds=seconds, timezone=self.tz), id=f"poll:{name}",
                         name=name, replace_existing=True)

    def add_cron(self, job_id: str, fn: CronFn, *, crontab: str | None = None,
                 trigger: BaseTrigger | None = None, **fields: Any) -> None:
        """Run ``fn(fire_time)`` on a cron schedule in the bot's time zone, once per firing across replicas.

        ``crontab`` is a five-field expression ("0 9 * * *"); ``fields`` are CronTrigger fields.
        """
        if trigger is None:
            trigger = (CronTrigger.from_crontab(crontab, timezone=self.tz) if crontab
                       else CronTrigger(timezone=self.tz, **fields))
        self.crons[job_id] = (trigger, fn)
        self.aps.add_job(self.fire, trigger, args=[job_id], id=f"cron:{job_id}", name=job_id,
                         replace_existing=True)

    def last_fire_time(self, trigger: BaseTrigger, now: datetime) -> datetime:
        """The latest scheduled firing at or before ``now`` (the slot a run belongs to)."""
        now = now.astimezone(self.tz)
        probe = trigger.get_next_fire_time(None, now - timedelta(days=2))
        last = probe
        while probe is not None and probe <= now + timedelta(seconds=1):
            last = probe
            probe = trigger.get_next_fire_time(probe, probe + timedelta(microseconds=1))
        return last or now

    async def fire(self, job_id: str, at: datetime | None = None) -> bool:
        """Run a cron job for the slot containing ``at`` (default now) unless a replica already did."""
        trigger, fn = self.crons[job_id]
        now = at or self.clock.now()
        slot_time = self.last_fire_time(trigger, now)
        slot = slot_time.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M:%S")
        async with self.db.session() as s:
            taken = (await s.execute(insert_ignoring_conflicts(self.db.dialect, CRON, ["job_id", "slot"]).values(
                job_id=job_id, slot=slot, replica=self.replica, started_at=self.clock.now(), outcome="running",
            ).returning(CRON.c.id))).first()
        if taken is None:
            return False
        outcome = "ok"
        try:
            await fn(slot_time)
        except Exception:
            outcome = "error"
            log.exception("cron job %s failed for %s", job_id, slot)
        self.metrics.cron_runs.labels(job_id, outcome).inc()
        async with self.db.session() as s:
            await s.execute(update(CRON).where(CRON.c.id == taken.id)
                            .values(finished_at=self.clock.now(), outcome=outcome))
        return outcome == "ok"

    def firings(self, after: datetime, until: datetime) -> list[tuple[datetime, str]]:
        """Every cron firing in (``after``, ``until``], in order, as (fire time, job id)."""
        out: list[tuple[datetime, str]] = []
        for job_id, (trigger, _) in self.crons.items():
            probe = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
            while probe is not None and probe <= until:
                out.append((probe, job_id))
                probe = trigger.get_next_fire_time(probe, probe + timedelta(microseconds=1))
        return sorted(out)

    def start(self) -> None:
        if not self.aps.running:
            self.aps.start()

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

    def jobs(self) -> list[tuple[str, datetime | None]]:
        # a job added before the scheduler started has no next_run_time yet
        return [(j.id, getattr(j, "next_run_time", None)) for j in self.aps.get_jobs()]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: int
    key: str
    name: str
    due_at: datetime
    attempts: int


TaskFn = Callable[[Any, dict[str, Any], TaskInfo], Awaitable[None]]


class Timers(Pump):
    """Durable one-off tasks: ``schedule`` inside a transaction, run once when due."""

    name = "timers"

    def __init__(self, db: Database, clock: Clock, replica: str, *, lease_s: float = 120.0,
                 max_attempts: int = 5) -> None:
        super().__init__()
        self.db = db
        self.clock = clock
        self.replica = replica
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.handlers: dict[str, TaskFn] = {}
        self.batch = 100
        self.after_run: list[Callable[[], None]] = []

    def register(self, name: str, fn: TaskFn) -> None:
        if name in self.handlers:
            raise ValueError(f"task {name!r} registered twice")
        self.handlers[name] = fn

    async def schedule(self, session: Any, *, key: str, name: str, due_at: datetime,
                       payload: dict[str, Any]) -> bool:
        if name not in self.handlers:
            raise ValueError(f"no task named {name!r} is registered")
        stmt = insert_ignoring_conflicts(self.db.dialect, TASKS, ["key"]).values(
            key=bounded_key(key, 255), name=name, payload=payload, due_at=due_at, status="pending", attempts=0,
        ).returning(TASKS.c.id)
        return (await session.execute(stmt)).first() is not None

    async def cancel(self, session: Any, key: str) -> bool:
        res = await session.execute(update(TASKS).where(and_(TASKS.c.key == key, TASKS.c.status == "pending"))
                                    .values(status="cancelled", done_at=self.clock.now()))
        return bool(res.rowcount)

    async def drain_once(self) -> int:
        claimed = await self._claim(self.batch)
        for task in claimed:
            await self._run(task)
        if claimed:
            for cb in self.after_run:
                cb()
        return len(claimed)

    async def next_due(self) -> datetime | None:
        async with self.db.read() as s:
            return (await s.execute(select(func.min(TASKS.c.due_at)).where(TASKS.c.status == "pending"))).scalar()

    async def _claim(self, limit: int) -> list[TaskInfo]:
        now = self.clock.now()
        due = or_(and_(TASKS.c.status == "pending", TASKS.c.due_at <= now),
                  and_(TASKS.c.status == "running", TASKS.c.locked_until < now))
        pick = select(TASKS.c.id).where(due).order_by(TASKS.c.due_at, TASKS.c.id).limit(limit)
        if not self.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        async with self.db.session() as s:
            rows = (await s.execute(
                update(TASKS).where(TASKS.c.id.in_(pick.scalar_subquery()))
                .values(status="running", locked_by=self.replica, attempts=TASKS.c.attempts + 1,
                        locked_until=now + timedelta(seconds=self.lease_s))
                .returning(TASKS.c.id, TASKS.c.key, TASKS.c.name, TASKS.c.due_at, TASKS.c.attempts)
            )).all()
        return [TaskInfo(r.id, r.key, r.name, r.due_at, r.attempts) for r in sorted(rows, key=lambda r: r.due_at)]

    async def _run(self, task: TaskInfo) -> None:
        fn = self.handlers.get(task.name)
        try:
            async with self.db.session() as s:
                row = (await s.execute(select(TASKS.c.payload).where(and_(
                    TASKS.c.id == task.id, TASKS.c.status == "running", TASKS.c.locked_by == self.replica)))).first()
                if row is None:
                    return  # our lease ran out and someone else took it
                if fn is None:
                    raise LookupError(f"no handler registered for task {task.name!r}")
                await fn(s, dict(row.payload), task)
                await s.execute(update(TASKS).where(TASKS.c.id == task.id).values(
                    status="done", done_at=self.clock.now(), locked_by=None, locked_until=None, last_error=None))
        except Exception as exc:
            log.exception("task %s (%s) failed, attempt %d", task.key, task.name, task.attempts)
            final = task.attempts >= self.max_attempts or fn is None
            async with self.db.session() as s:
                await s.execute(update(TASKS).where(TASKS.c.id == task.id).values(
                    status="failed" if final else "pending", locked_by=None, locked_until=None,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    due_at=self.clock.now() + timedelta(seconds=min(3600, 30 * 2 ** (task.attempts - 1)))))

    async def release(self) -> None:
        async with self.db.session() as s:
            await s.execute(update(TASKS).where(and_(TASKS.c.status == "running", TASKS.c.locked_by == self.replica))
                            .values(status="pending", locked_by=None, locked_until=None))
