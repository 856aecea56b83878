"""SOP mass_send steps through the pipeline and the fake WeCom: one 群发 task per step, day, staff member and
text; split over WeCom's limit; queued once across a restart; each customer's result polled; quiet hours."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import masssend
from bot.app import BotApp
from bot.senders.console import RecordingSender
from bot.sop import SOP
from bot.sop.engine import StepPump, Subject
from bot.testing import Harness
from tests import campaigns_support
from tests.sop_support import at, outbox, runs, sop_config, started, steps, write_scripts

make_wecom_harness = campaigns_support.make_wecom_harness  # the fixture

TEXT = "早上好～今天分享白茶冲泡的三个小技巧"
CARE = f"""\
id: care
name: 新客关怀
trigger: contact_added
per: member
steps:
  - id: tips
    at: "+1d"
    via: mass_send
    text: {TEXT}
  - id: hello
    at: "+2d"
    via: mass_send
    text: "{{{{ member.name }}}}您好，最近喝茶还顺手吗？"
"""
QUIET = f"""\
id: early
name: 早间关怀
trigger: contact_added
per: member
quiet_hours: "22:00-08:00"
steps:
  - id: tips
    at: "day 1 07:00"
    via: mass_send
    text: {TEXT}
"""
STAFF_A = [f"wmA{i}" for i in range(1, 6)]
STAFF_B = [f"wmB{i}" for i in range(1, 4)]


async def wecom_bot(make_wecom_harness: Callable[..., Any], tmp_path: Path, script: str = CARE) -> Harness:
    directory = write_scripts(tmp_path / "s", {"care.yaml": script})
    return await make_wecom_harness(SOP__DIR=str(directory), MOMENTS__ENABLED="false",
                                    MOMENTS__CALENDAR=str(directory / "moments.yaml"))


async def add_customers(h: Harness) -> None:
    """Five customers of staff01 and three of staff02, added between 09:00 and 15:00 of one day."""
    clock: Any = h.app.clock
    at(clock, 2026, 11, 23, 9, 0)
    for n, (member, staff) in enumerate([(m, "staff01") for m in STAFF_A] + [(m, "staff02") for m in STAFF_B]):
        clock.set(clock.now() + timedelta(minutes=45 * bool(n)))
        await h.add_contact(member, f"客户{member[-2:]}", staff=staff)


def tasks(fake_wecom: Any, text: str = TEXT) -> list[Any]:
    return [r for r in fake_wecom.delivered("externalcontact/add_msg_template")
            if r.body.get("text", {}).get("content") == text]


async def outcomes(app: BotApp, step_key: str = "tips") -> dict[str, tuple[str, str]]:
    """member id → (outcome, detail) of the step's occurrence."""
    members = {r.id: r.member_id for r in await runs(app)}
    return {members[s.run_id]: (s.outcome, s.detail) for s in await steps(app) if s.step_key == step_key}


async def test_the_days_steps_of_one_staff_member_become_one_task_and_each_result_is_recorded(
        make_wecom_harness: Callable[..., Any], tmp_path: Path, fake_wecom: Any) -> None:
    h = await wecom_bot(make_wecom_harness, tmp_path)
    await add_customers(h)
    fake_wecom.unconfirmed = {"staff02"}
    fake_wecom.invalid_externals = {"wmA5"}
    clock: Any = h.app.clock
    at(clock, 2026, 11, 24, 9, 0)     # the first customer's step is due; the others' later today
    await h.settle()
    made = tasks(fake_wecom)
    assert sorted((r.body["sender"], r.body["external_userid"]) for r in made) == [
        ("staff01", STAFF_A), ("staff02", STAFF_B)]
    assert {r.body["chat_type"] for r in made} == {"single"}
    assert {o for o, _ in (await outcomes(h.app)).values()} == {"sent"}
    at(clock, 2026, 11, 24, 18, 0)    # the later due times of the day pass: nothing more; the results are read
    await h.settle()
    assert len(tasks(fake_wecom)) == 2
    got = await outcomes(h.app)
    assert {m: got[m][0] for m in STAFF_A} == {**{m: "sent" for m in STAFF_A[:4]}, "wmA5": "mass_failed"}
    assert "员工已确认" in got["wmA1"][1] and "不是员工的客户" in got["wmA5"][1]
    assert {got[m] for m in STAFF_B} == {("sent", "已合并进员工的群发任务，待员工确认")}  # not confirmed yet
    clock.advance(timedelta(hours=h.app.config.sop.mass_poll_max_hours + 1))
    await h.settle()
    got = await outcomes(h.app)
    assert {got[m][0] for m in STAFF_B} == {"unconfirmed"} and got["wmA1"][0] == "sent"
    polls = Counter(r.body["userid"] for r in fake_wecom.calls("externalcontact/get_groupmsg_send_result"))
    assert polls == {"staff01": 1, "staff02": 2}   # staff01's task was done after one look

    # a text naming the customer cannot be one task: each customer has their own
    at(clock, 2026, 11, 25, 9, 0)
    await h.settle()
    named = [r for r in fake_wecom.delivered("externalcontact/add_msg_template")
             if "最近喝茶还顺手吗" in r.body["text"]["content"]]
    assert sorted(r.body["external_userid"][0] for r in named) == sorted(STAFF_A + STAFF_B)
    assert all(len(r.body["external_userid"]) == 1 for r in named)


async def test_a_task_over_the_limit_is_split(make_wecom_harness: Callable[..., Any], tmp_path: Path,
                                              fake_wecom: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masssend, "TASK_RECIPIENTS", 2)
    fake_wecom.mass_limit = 2
    h = await wecom_bot(make_wecom_harness, tmp_path)
    await add_customers(h)
    at(h.app.clock, 2026, 11, 24, 9, 0)  # type: ignore[arg-type]
    await h.settle()
    made = sorted((r.body["sender"], r.body["external_userid"]) for r in tasks(fake_wecom))
    assert made == [("staff01", STAFF_A[:2]), ("staff01", STAFF_A[2:4]), ("staff01", STAFF_A[4:]),
                    ("staff02", STAFF_B[:2]), ("staff02", STAFF_B[2:])]
    rows = await outbox(h.app, "sop:mass:")
    assert len(rows) == 5 and {r.status for r in rows} == {"sent"}
    first, *more = sorted(r.key for r in rows if r.destination["sender"] == "staff01")
    assert first.startswith("sop:mass:care:tips:2026-11-24:staff01:") and more == [f"{first}:1", f"{first}:2"]


async def test_quiet_hours_hold_the_step_until_they_end(make_wecom_harness: Callable[..., Any], tmp_path: Path,
                                                       fake_wecom: Any) -> None:
    h = await wecom_bot(make_wecom_harness, tmp_path, QUIET)
    await add_customers(h)
    at(h.app.clock, 2026, 11, 24, 7, 30)  # type: ignore[arg-type]
    await h.settle()
    assert tasks(fake_wecom) == []
    at(h.app.clock, 2026, 11, 24, 8, 0)  # type: ignore[arg-type]
    await h.settle()
    assert sorted(len(r.body["external_userid"]) for r in tasks(fake_wecom)) == [3, 5]


MEMBER_SCRIPT = f"""\
id: care
name: 新客关怀
trigger: manual
per: member
quiet_hours: "off"
steps:
  - {{id: tips, at: "+1h", via: mass_send, text: {TEXT}}}
"""


def pump_of(app: BotApp) -> StepPump:
    return next(p for p in app.pumps if isinstance(p, StepPump))


async def start_members(app: BotApp) -> None:
    engine = app.get(SOP)
    script = engine.scripts["care"]
    async with app.db.session() as s:
        for member, staff in [(m, "staff01") for m in STAFF_A] + [(m, "staff02") for m in STAFF_B]:
            await engine.start(s, script, Subject(per="member", member_id=member, staff_id=staff),
                               anchor=app.clock.now(), started_by="test")


async def test_a_restart_or_a_retry_makes_no_second_task(make_config: Callable[..., Any],
                                                         make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = sop_config(make_config, write_scripts(tmp_path / "s", {"care.yaml": MEMBER_SCRIPT}), SOP__LEASE_S="60")
    first, second = RecordingSender(), RecordingSender()
    a = await started(make_bot, cfg, sender=first)
    await start_members(a)
    a.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    held = await pump_of(a).claim(100)
    assert len(held) == 8
    assert await pump_of(a).process(held) == 2     # the two tasks are queued with the steps' outcomes …
    await a.db.dispose()                           # … and the process dies before the outbox sends them
    a.started = False
    b = await started(make_bot, cfg, sender=second)
    await b.settle()
    b.clock.advance(timedelta(seconds=61))  # type: ignore[attr-defined]
    await b.settle()
    assert await pump_of(b).process(held) == 0     # the old claims again: nothing is queued twice
    await b.settle()
    sent = [d for d in first.deliveries + second.deliveries if d.kind == "mass_send"]
    assert sorted((d.destination["sender"], d.destination["external_userids"]) for d in sent) == [
        ("staff01", STAFF_A), ("staff02", STAFF_B)]
    assert len(await outbox(b, "sop:mass:")) == 2
    assert Counter((s.state, s.outcome) for s in await steps(b)) == {("done", "sent"): 8}


async def test_a_claim_taken_over_after_its_lease_makes_the_same_task_once(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = sop_config(make_config, write_scripts(tmp_path / "s", {"care.yaml": MEMBER_SCRIPT}), SOP__LEASE_S="60",
                     SOP__POLL_BATCH="3")
    dead, alive = RecordingSender(), RecordingSender()
    a = await started(make_bot, cfg, sender=dead)
    b = await started(make_bot, cfg, sender=alive)
    await start_members(a)
    a.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    held = await pump_of(a).claim(3)              # replica A claims three and dies before writing anything
    assert await pump_of(b).drain() > 0           # B takes the other five, and with them the rest of the day …
    a.clock.advance(timedelta(seconds=61))  # type: ignore[attr-defined]
    await b.settle()                              # … then A's three once their lease ran out
    assert await pump_of(a).process(held) == 0
    await b.outbox_pump.drain()
    sent = [d for d in alive.deliveries if d.kind == "mass_send"]
    got = Counter(m for d in sent for m in d.destination["external_userids"])
    assert got == Counter(STAFF_A + STAFF_B) and dead.deliveries == []
    assert len({d.key for d in sent}) == len(sent) <= 4   # at most one task more per staff for the held three


def test_the_shipped_mass_send_texts_are_written_for_everyone() -> None:
    """The example's 群发 steps merge: none names the customer (one text for every customer of the day)."""
    import yaml

    shipped = Path(__file__).resolve().parent.parent / "sop_templates"
    found = 0
    for path in sorted(shipped.glob("*.yaml")):
        script = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(script, dict) or "steps" not in script:
            continue
        for step in script["steps"]:
            if step.get("via") != "mass_send":
                continue
            found += 1
            text = step.get("text") or (shipped / "templates" / step["template"]).read_text(encoding="utf-8")
            assert "member.name" not in text, f"{path.name}:{step['id']}"
    assert found >= 5
