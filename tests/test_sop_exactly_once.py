"""Every step once: across a restart, a replica that died holding a claim, and two replicas on one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.app import BotApp
from bot.senders.console import RecordingSender
from bot.sop import SOP
from bot.sop.engine import StepPump, Subject
from tests.sop_support import outbox, sop_config, started, steps, write_scripts

FIVE_STEPS = """\
id: five
name: 五步
trigger: manual
per: group
quiet_hours: "off"
late: {grace: 2d, then: send}
steps:
  - {at: "+0m", via: group_robot, text: "第一步 {{ group.name }}"}
  - {at: "+1h", via: group_robot, text: "第二步 {{ group.name }}"}
  - {at: "+2h", via: group_robot, text: "第三步 {{ group.name }}"}
  - {at: "+3h", via: appchat, text: "第四步 {{ group.name }}"}
  - {at: "+4h", via: reply, text: "第五步 {{ group.name }}"}
"""


def pump_of(app: BotApp) -> StepPump:
    return next(p for p in app.pumps if isinstance(p, StepPump))


async def start_groups(app: BotApp, n: int) -> None:
    engine = app.get(SOP)
    script = engine.scripts["five"]
    async with app.db.session() as s:
        for i in range(n):
            await engine.start(s, script, Subject(per="group", chat_id=f"wr{i:03d}", chat_name=f"群{i}"),
                               anchor=app.clock.now(), started_by="test")


def config(make_config: Callable[..., Any], tmp_path: Path, **kw: str) -> Any:
    return sop_config(make_config, write_scripts(tmp_path / "s", {"five.yaml": FIVE_STEPS}), **kw)


async def test_two_replicas_draining_together_send_every_step_once(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = config(make_config, tmp_path, SOP__POLL_BATCH="7")
    a_sent, b_sent = RecordingSender(), RecordingSender()
    a = await started(make_bot, cfg, sender=a_sent)
    b = await started(make_bot, cfg, sender=b_sent)
    assert a.replica != b.replica
    await start_groups(a, 40)
    claimed = 0
    for _ in range(5):
        counts = await asyncio.gather(pump_of(a).drain(), pump_of(b).drain(), pump_of(a).drain(), pump_of(b).drain())
        claimed += sum(counts)
        await asyncio.gather(a.outbox_pump.drain(), b.outbox_pump.drain())
        a.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    assert claimed == 200  # no step claimed by both
    keys = [d.key for d in a_sent.deliveries + b_sent.deliveries]
    assert len(keys) == 200 and len(set(keys)) == 200
    rows = await outbox(a, "sop:")
    assert len(rows) == 200 and {r.status for r in rows} == {"sent"}
    assert Counter((s.state, s.outcome) for s in await steps(a)) == {("done", "sent"): 200}
    assert sorted(Counter(d.text[:3] for d in a_sent.deliveries + b_sent.deliveries).values()) == [40] * 5


async def test_a_claim_held_by_a_replica_that_died_is_taken_after_the_lease_and_sent_once(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = config(make_config, tmp_path, SOP__LEASE_S="60")
    dead, alive = RecordingSender(), RecordingSender()
    a = await started(make_bot, cfg, sender=dead)
    b = await started(make_bot, cfg, sender=alive)
    await start_groups(a, 4)
    held = await pump_of(a).claim(100)          # replica A claims the four first steps …
    assert len(held) == 4                       # … and dies before it writes anything
    assert await pump_of(b).drain() == 0        # B leaves them alone while the lease holds
    a.clock.advance(timedelta(seconds=61))      # type: ignore[attr-defined]
    assert await pump_of(b).drain() == 4
    await b.outbox_pump.drain()
    assert sorted(d.key for d in alive.deliveries) == sorted(f"sop:{c.run_id}:1:0" for c in held)
    # A comes back and finishes what it had claimed: its claim is gone, nothing is written twice.
    assert await pump_of(a).process(held) == 0
    await a.outbox_pump.drain()
    assert dead.deliveries == []
    assert len(await outbox(a, "sop:")) == 4
    firsts = [s for s in await steps(a) if s.step_key == "1"]
    assert {(s.state, s.outcome, s.attempts) for s in firsts} == {("done", "sent", 2)}


async def test_a_restart_continues_where_the_last_process_stopped(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = config(make_config, tmp_path)
    first, second = RecordingSender(), RecordingSender()
    a = await started(make_bot, cfg, sender=first)
    await start_groups(a, 10)
    await a.settle()
    a.clock.advance(timedelta(hours=1, minutes=30))  # type: ignore[attr-defined]
    await a.settle()
    a.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    held = await pump_of(a).claim(3)  # claimed at the moment of the crash
    assert len(held) == 3
    await a.db.dispose()              # the process is gone: no release, no stop hooks
    a.started = False
    a.clock.advance(timedelta(hours=5))  # type: ignore[attr-defined]
    b = await started(make_bot, cfg, sender=second)
    await b.settle()                  # the three held claims are still leased …
    b.clock.advance(timedelta(seconds=b.config.sop.lease_s + 1))  # type: ignore[attr-defined]
    await b.settle()                  # … and are taken once the lease runs out
    keys = [d.key for d in first.deliveries + second.deliveries]
    assert len(keys) == 50 and len(set(keys)) == 50
    assert {d.key.split(":")[2] for d in first.deliveries} == {"1", "2"}
    assert Counter(s.outcome for s in await steps(b)) == {"sent": 50}  # late, but within the 2 d grace


async def test_a_clean_shutdown_gives_back_what_it_claimed(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = config(make_config, tmp_path)
    a = await started(make_bot, cfg)
    await start_groups(a, 3)
    assert len(await pump_of(a).claim(10)) == 3
    await a.stop()
    assert {s.state for s in await steps(a) if s.step_key == "1"} == {"pending"}
    sender = RecordingSender()
    b = await started(make_bot, cfg, sender=sender)
    await b.settle()  # no lease to wait for
    assert sorted(d.key.split(":")[2] for d in sender.deliveries) == ["1", "1", "1"]
