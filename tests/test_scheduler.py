"""Cron jobs run once per firing across replicas; timers run once, with their effects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot.app import BotApp
from bot.scheduler import TaskInfo
from bot.storage.models import KeyValue, ScheduledTask


async def test_a_cron_firing_runs_once_across_two_replicas(make_bot: Callable[..., BotApp]) -> None:
    runs: list[datetime] = []

    async def digest(fire_time: datetime) -> None:
        runs.append(fire_time)

    a, b = make_bot(), make_bot()
    for app in (a, b):
        app.scheduler.add_cron("digest", digest, crontab="0 9 * * *")
        await app.start()
    at = datetime(2026, 11, 24, 1, 0, 0, 300_000, tzinfo=UTC)  # 09:00:00.3 in Asia/Shanghai
    results = await asyncio.gather(a.scheduler.fire("digest", at), b.scheduler.fire("digest", at))
    assert sorted(results) == [False, True]
    assert len(runs) == 1 and runs[0].hour == 9 and runs[0].tzinfo is not None
    # a replica firing late (09:00:40) is still the same slot; the next day is a new one
    assert not await b.scheduler.fire("digest", at + timedelta(seconds=40))
    assert await b.scheduler.fire("digest", at + timedelta(days=1))
    assert len(runs) == 2


def test_last_fire_time_is_the_slot_containing_now(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    trig = CronTrigger.from_crontab("*/15 * * * *", timezone=app.config.bot.tz)
    now = datetime(2026, 11, 23, 2, 37, tzinfo=UTC)  # 10:37 local
    assert app.scheduler.last_fire_time(trig, now).strftime("%H:%M") == "10:30"


async def test_timers_run_once_when_due_and_commit_with_their_effects(make_bot: Callable[..., BotApp]) -> None:
    calls: list[dict[str, object]] = []
    app = make_bot()

    async def remind(session: object, payload: dict[str, object], task: TaskInfo) -> None:
        calls.append(payload)
        session.add(KeyValue(key=f"reminded:{payload['who']}", value=True, updated_at=app.clock.now()))  # type: ignore[attr-defined]

    async def broken(session: object, payload: dict[str, object], task: TaskInfo) -> None:
        session.add(KeyValue(key="broken-effect", value=True, updated_at=app.clock.now()))  # type: ignore[attr-defined]
        raise RuntimeError("nope")

    app.timers.register("remind", remind)
    app.timers.register("broken", broken)
    await app.start()
    due = app.clock.now() + timedelta(minutes=5)
    async with app.db.session() as s:
        assert await app.timers.schedule(s, key="r1", name="remind", due_at=due, payload={"who": "alice"})
        assert not await app.timers.schedule(s, key="r1", name="remind", due_at=due, payload={"who": "alice"})
        await app.timers.schedule(s, key="b1", name="broken", due_at=due, payload={})
    await app.timers.drain()
    assert calls == []
    app.clock.advance(301)  # type: ignore[attr-defined]
    await app.timers.drain()
    await app.timers.drain()
    assert calls == [{"who": "alice"}]
    async with app.db.read() as s:
        keys = set((await s.execute(select(KeyValue.key))).scalars())
        tasks = {t.key: t for t in (await s.execute(select(ScheduledTask))).scalars()}
    assert keys == {"reminded:alice"}  # the failed task's effect was rolled back
    assert tasks["r1"].status == "done"
    assert tasks["b1"].status == "pending" and "nope" in (tasks["b1"].last_error or "")
    assert tasks["b1"].due_at > app.clock.now()  # retried later, with backoff


async def test_the_scheduler_owns_the_pollers(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(run_workers=True)
    await app.start()
    ids = {job_id for job_id, _ in app.scheduler.jobs()}
    assert {"poll:inbox", "poll:outbox", "poll:tasks", "cron:housekeeping"} <= ids
    assert app.scheduler.running
    await app.stop()
    assert not app.scheduler.running


def test_firings_lists_every_cron_firing_in_a_window_in_order(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()

    async def job(_at: datetime) -> None:
        return None

    app.scheduler.add_cron("test-digest", job, crontab="0 9 * * *")
    app.scheduler.add_cron("test-prune", job, hour=4, minute=41)
    start = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 local: a firing at the start is not in (start, end]
    got = app.scheduler.firings(start, start + timedelta(days=2))
    assert [(at.astimezone(app.config.bot.tz).strftime("%d %H:%M"), job_id[5:]) for at, job_id in got
            if job_id.startswith("test-")] == [
        ("24 04:41", "prune"), ("24 09:00", "digest"), ("25 04:41", "prune"), ("25 09:00", "digest")]


async def test_next_due_is_the_earliest_pending_task(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()

    async def noop(session: object, payload: dict[str, object], task: TaskInfo) -> None:
        return None

    app.timers.register("noop", noop)
    await app.start()
    assert await app.timers.next_due() is None
    now = app.clock.now()
    async with app.db.session() as s:
        for key, minutes in (("later", 30), ("soon", 5)):
            await app.timers.schedule(s, key=key, name="noop", due_at=now + timedelta(minutes=minutes), payload={})
    assert await app.timers.next_due() == now + timedelta(minutes=5)
    assert await app.next_due() is not None and await app.next_due() <= now + timedelta(minutes=5)
    await app.stop()
