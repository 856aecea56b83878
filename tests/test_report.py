"""The report against a hand count: two scripted weeks of joins, messages, check-ins, homework, questions,
purchases, invitations, leaves and tier changes, through the pipeline with a fake clock; then the same figures
from ``siyu report --json`` / ``--csv`` and ``/stats``. Every expected number is counted by hand from the
script below, by the definitions of docs/report.md."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.insights import INSIGHTS
from bot.insights.period import Period, parse_span
from bot.testing import Harness
from bot.tiers.models import MemberActivity

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
WEEK1 = Period(date(2026, 11, 1), date(2026, 11, 7), TZ)   # the previous period
WEEK2 = Period(date(2026, 11, 8), date(2026, 11, 14), TZ)  # the period reported


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


@pytest.fixture
async def scripted(make_bot: Callable[..., BotApp], make_config: Callable[..., Config],
                   clock: FakeClock) -> tuple[Harness, Config]:
    cfg = make_config(REPORT__SILENT_DAYS="3")
    app = make_bot(cfg=cfg)
    await app.start()
    h = Harness(app)

    async def when(day: int, hour: int, minute: int = 0) -> None:
        clock.set(at(day, hour, minute))

    # ── week 1 (11-01 … 11-07) ──
    await when(1, 10)
    await h.join("wmAnn", "Ann", chat="g1", chat_name="茶友一群", scene="qrcode")
    await when(1, 10, 5)
    await h.join("wmBob", "Bob", chat="g1", chat_name="茶友一群", inviter="wmAnn")  # Ann: referral +30 → active
    await when(2, 9)
    for i in range(3):
        await h.say(f"早上好 {i}", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await h.say("今天喝白茶", sender="wmBob", name="Bob", chat="g1", mention=False)
    await when(3, 9)
    await h.say("打卡 白牡丹 清甜", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await when(6, 15)
    await h.admin("/purchase @wmBob 100 白茶", chat="g1")                              # Bob → vip
    # ── week 2 (11-08 … 11-14) ──
    await when(8, 9)
    await h.add_contact("wmCarol", "Carol", staff="staff01", state="douyin")
    await when(8, 9, 10)
    await h.join("wmDan", "Dan", chat="g2", chat_name="茶友二群", scene="qrcode")
    await when(8, 9, 20)
    await h.join("wmEve", "Eve", chat="g1", chat_name="茶友一群", inviter="wmBob")
    await when(9, 10)
    for i in range(2):
        await h.say(f"下午茶 {i}", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await h.say("大家好", sender="wmDan", name="Dan", chat="g2", mention=False)
    await when(9, 11)
    answered = await h.say_texts("怎么退款", sender="wmCarol", name="Carol", group=False)
    assert answered and "不支持无理由退换" in answered[0]                          # kb: answered
    missed = await h.say_texts("火星上可以种茶树吗", sender="wmCarol", name="Carol", group=False)
    assert missed and "暂时还答不上来" in missed[0]                                 # kb: missed
    await when(10, 10)
    await h.say("交作业 第一课笔记", sender="wmEve", name="Eve", chat="g1", mention=False)
    await h.say("打卡 红茶", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await when(11, 14)
    await h.admin("/purchase @wmBob 200 红茶", chat="g1")
    await h.admin("/purchase @wmEve 50 绿茶", chat="g1")                               # Eve → vip
    await when(12, 10)
    await h.leave("wmDan", chat="g2")
    await when(13, 10)
    await h.say("晚安", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await when(15, 9)  # "now": the day after the period
    return h, cfg


WEEK2_EXPECTED: dict[str, Any] = {
    "users": {"new": 3, "total": 5, "by_tier": {"prospect": 2, "active": 1, "vip": 2},
              "by_channel": {"group:invite": 1, "group:qrcode": 1, "state:douyin": 1}},
    "funnel": [("prospect", 5, None, 3, None), ("active", 3, 0.6, 1, 3.2), ("quality", 2, 0.6667, 1, 0.0),
               ("vip", 2, 1.0, 1, 0.0), ("seed", 0, 0.0, 0, None)],
    "behaviour": {"messages": 8, "active": 4, "active_rate": 0.8, "checkins": 1, "checkin_members": 1,
                  "checkin_rate": 0.25, "homework": 1, "homework_members": 1, "homework_rate": 0.25, "silent": 4},
    "groups": [("g1", "茶友一群", 3, 5, 2, 0.6667), ("g2", "茶友二群", 0, 1, 1, None)],
    "kb": {"answered": 1, "suggested": 0, "missed": 1, "picked": 0, "questions": 2, "answered_rate": 0.5},
    "referral": {"invites": 1, "joined": 1, "bought": 2},
    "deals": {"purchases": 2, "buyers": 2, "gmv": 250.0, "repurchase_rate": 0.5,
              "by_tier": {"vip": {"purchases": 2, "buyers": 2, "gmv": 250.0}}},
}
WEEK1_EXPECTED: dict[str, Any] = {
    "users": {"new": 2, "total": 2, "by_tier": {"active": 1, "vip": 1},
              "by_channel": {"group:invite": 1, "group:qrcode": 1}},
    "funnel": [("prospect", 2, None, 2, None), ("active", 2, 1.0, 2, 2.6), ("quality", 1, 0.5, 1, 0.0),
               ("vip", 1, 1.0, 1, 0.0), ("seed", 0, 0.0, 0, None)],
    "behaviour": {"messages": 5, "active": 2, "active_rate": 1.0, "checkins": 1, "checkin_members": 1,
                  "checkin_rate": 0.5, "homework": 0, "homework_members": 0, "homework_rate": 0.0, "silent": 2},
    "groups": [("g1", "茶友一群", 2, 5, 2, 1.0)],
    "kb": {"answered": 0, "suggested": 0, "missed": 0, "picked": 0, "questions": 0, "answered_rate": None},
    "referral": {"invites": 1, "joined": 1, "bought": 1},
    "deals": {"purchases": 1, "buyers": 1, "gmv": 100.0, "repurchase_rate": 0.0,
              "by_tier": {"vip": {"purchases": 1, "buyers": 1, "gmv": 100.0}}},
}


def check(section: dict[str, Any], expected: dict[str, Any]) -> None:
    users = section["users"]
    assert {k: users[k] for k in expected["users"]} == expected["users"]
    funnel = [(s["tier"], s["members"], s["rate"], s["reached"], s["median_days"])
              for s in section["conversion"]["funnel"]]
    assert funnel == expected["funnel"]
    b = section["behaviour"]
    assert {k: b[k] for k in expected["behaviour"]} == expected["behaviour"]
    assert [(g["chat_id"], g["name"], g["members"], g["messages"], g["active"], g["active_rate"])
            for g in b["groups"]] == expected["groups"]
    assert {k: b["kb"][k] for k in expected["kb"]} == expected["kb"]
    assert {k: section["referral"][k] for k in expected["referral"]} == expected["referral"]
    d = section["deals"]
    assert {k: d[k] for k in expected["deals"]} == expected["deals"]
    assert section["nps"] == {"available": False, "score": None, "responses": 0, "promoters": 0, "passives": 0,
                              "detractors": 0}


def split(report: dict[str, Any], which: str) -> dict[str, Any]:
    """The report's sections for the period (``now``) or the one before (``previous``)."""
    names = ("users", "conversion", "behaviour", "referral", "deals", "nps")
    if which == "now":
        return {n: {k: v for k, v in report[n].items() if k != "previous"} for n in names}
    return {n: report[n]["previous"] for n in names}


async def test_the_report_matches_a_hand_count_of_two_scripted_weeks(scripted: tuple[Harness, Config]) -> None:
    h, _ = scripted
    report = await h.app.get(INSIGHTS).report(WEEK2)
    assert report["period"]["since"] == "2026-11-08" and report["period"]["until"] == "2026-11-14"
    assert report["period"]["previous"]["since"] == "2026-11-01"
    assert report["period"]["previous"]["until"] == "2026-11-07"
    check(split(report, "now"), WEEK2_EXPECTED)
    check(split(report, "previous"), WEEK1_EXPECTED)
    alone = await h.app.get(INSIGHTS).report(WEEK1)   # the previous period, asked for itself, is the same
    assert split(alone, "now") == split(report, "previous")


async def test_the_report_of_one_group_counts_its_members_and_what_happened_in_it(
        scripted: tuple[Harness, Config]) -> None:
    h, _ = scripted
    g1 = await h.app.get(INSIGHTS).report(WEEK2, "g1")
    g2 = await h.app.get(INSIGHTS).report(WEEK2, "g2")
    assert g1["scope"] == {"group": "g1"}
    assert (g1["users"]["new"], g1["users"]["total"], g1["users"]["by_tier"]) == (1, 3, {"active": 1, "vip": 2})
    b = g1["behaviour"]
    assert (b["messages"], b["active"], b["checkins"], b["homework"], b["silent"]) == (5, 2, 1, 1, 2)
    assert b["kb"]["questions"] == 0  # Carol asked 1:1
    assert (g1["referral"]["invites"], g1["referral"]["joined"], g1["referral"]["bought"]) == (1, 1, 2)
    assert (g1["deals"]["purchases"], g1["deals"]["gmv"]) == (2, 250.0)
    # Dan left g2 on 11-12: no member at the end of the week, but he spoke in it during the week
    assert (g2["users"]["total"], g2["behaviour"]["messages"], g2["behaviour"]["active"]) == (0, 1, 1)
    assert (g2["users"]["previous"]["total"], g2["behaviour"]["previous"]["messages"]) == (0, 0)


async def test_messages_are_counted_per_member_chat_and_day_beyond_the_daily_points_cap(harness: Harness,
                                                                                         clock: FakeClock) -> None:
    clock.set(at(20, 23, 50))
    for i in range(7):  # the ledger's message points stop at 5 a day; the count does not
        await harness.say(f"聊天 {i}", sender="wmAnn", name="Ann", chat="g1", mention=False)
    clock.set(at(21, 0, 10))  # the next local day (16:10 UTC the day before)
    await harness.say("新的一天", sender="wmAnn", name="Ann", chat="g1", mention=False)
    await harness.say("/me", sender="wmAnn", name="Ann", chat="g1")                      # a command: not counted
    await harness.say("员工发言", sender="staff01", name="小王", staff=True, chat="g1", mention=False)
    async with harness.app.db.read() as s:
        rows = (await s.execute(select(MemberActivity.day, MemberActivity.chat_id, MemberActivity.member_id,
                                       MemberActivity.messages).order_by(MemberActivity.day))).all()
    assert [tuple(r) for r in rows] == [("2026-11-20", "g1", "wmAnn", 7), ("2026-11-21", "g1", "wmAnn", 1)]


def run_cli(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "SIYU_DATABASE__URL": config.database.url, "SIYU_REPORT__SILENT_DAYS": "3"}
    return subprocess.run([sys.executable, "-m", "bot", "report", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=120)


async def test_siyu_report_prints_the_same_figures_as_json_and_csv(scripted: tuple[Harness, Config]) -> None:
    _h, cfg = scripted
    r = run_cli(cfg, "--since", "2026-11-08", "--until", "2026-11-14", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    check(split(report, "now"), WEEK2_EXPECTED)
    check(split(report, "previous"), WEEK1_EXPECTED)
    r = run_cli(cfg, "--until", "2026-11-14", "--days", "7", "--csv")
    assert r.returncode == 0, r.stderr
    rows = {row["metric"]: (row["value"], row["previous"]) for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["users.new"] == ("3", "2")
    assert rows["users.by_tier.vip"] == ("2", "1")
    assert rows["conversion.funnel.active.rate"] == ("0.6", "1.0")
    assert rows["behaviour.groups.g1.messages"] == ("5", "5")
    assert rows["behaviour.groups.g2.messages"] == ("1", "")
    assert rows["deals.gmv"] == ("250.0", "100.0")
    assert rows["nps.score"] == ("", "")
    bad = run_cli(cfg, "--since", "2026-11-14", "--until", "2026-11-08")
    assert bad.returncode != 0 and "after --until" in bad.stderr
    unknown = run_cli(cfg, "--group", "no-such-group")
    assert unknown.returncode != 0 and "no group" in unknown.stderr


async def test_stats_answers_operators_privately_and_refuses_an_unknown_span(scripted: tuple[Harness, Config],
                                                                               clock: FakeClock) -> None:
    h, _ = scripted
    clock.set(at(14, 20))
    denied = [d.text for d in await h.say("/stats", sender="wmAnn", name="Ann", chat="g1")]
    assert any("需要运营权限" in t for t in denied) and not any("运营数据" in t for t in denied)
    sent = await h.say("/stats 7天", sender="admin01", name="管理员", staff=True, chat="g1")
    private = [d for d in sent if "运营数据" in d.text]
    assert len(private) == 1 and private[0].kind == "app_message"  # answered 1:1, not in the group
    assert private[0].destination == {"to": ["admin01"]}
    assert any(d.kind == "reply" and "私信" in d.text for d in sent)
    text = private[0].text
    assert "2026-11-08 ~ 2026-11-14" in text and "新增 3（上期 2）" in text
    assert "GMV ¥250.00（上期 ¥100.00）" in text and "暂无满意度调查数据" in text
    (usage,) = await h.admin("/stats 明年", group=False)
    assert "看不懂时段「明年」" in usage


async def test_channels_take_the_earliest_group_and_days_between_steps_are_exact(
        make_bot: Callable[..., BotApp], clock: FakeClock) -> None:
    """The edges of what SQL counts now: a customer in two groups is counted by the scene of the earlier
    join, one added by staff is ``contact``; a rise 2 days 6 hours after joining is 2.25 days exactly, which
    rounds (half to even, as Python rounds 2.25) to 2.2 — not 2.3, as a day count with a rounding error would."""
    app = make_bot()
    await app.start()
    h = Harness(app)
    clock.set(at(1, 10))
    await h.join("wmAnn", "Ann", chat="g1", chat_name="茶友一群", scene="qrcode")
    clock.set(at(2, 10))
    await h.add_contact("wmCarol", "Carol", staff="staff01")
    clock.set(at(3, 16))
    await h.join("wmBob", "Bob", chat="g1", chat_name="茶友一群", inviter="wmAnn")  # Ann: referral +30 → active
    clock.set(at(4, 10))
    await h.join("wmAnn", "Ann", chat="g2", chat_name="茶友二群", scene="invite")  # her second group, later
    clock.set(at(8, 9))
    report = await app.get(INSIGHTS).report(WEEK1)
    assert report["users"]["new"] == 3
    assert report["users"]["by_channel"] == {"contact": 1, "group:invite": 1, "group:qrcode": 1}
    active = next(s for s in report["conversion"]["funnel"] if s["tier"] == "active")
    assert (active["reached"], active["median_days"]) == (1, 2.2)


async def test_stats_reads_before_its_transaction_so_callbacks_are_taken_while_it_computes(
        scripted: tuple[Harness, Config], clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """/stats computes its report before the command's write transaction opens, on read sessions of its own:
    held half-way through its statements, the bot still takes a callback's event (the inbox write a
    callback's 200 waits for) and answers health checks; released, it answers with the same figures."""
    h, _ = scripted
    clock.set(at(14, 20))
    spoken = await ann_messages_on_the_14th(h)
    store = h.app.get(INSIGHTS).store
    reading, go = asyncio.Event(), asyncio.Event()
    real = store.activity_by_chat

    async def held(*args: Any, **kw: Any) -> Any:
        reading.set()
        await go.wait()
        return await real(*args, **kw)

    monkeypatch.setattr(store, "activity_by_chat", held)
    stats = asyncio.create_task(h.say("/stats 7天", sender="admin01", name="管理员", staff=True, group=False))
    await asyncio.wait_for(reading.wait(), 60)
    taken = await asyncio.wait_for(h.app.accept_event(h.message("还在吗", sender="wmAnn", name="Ann", chat="g1",
                                                                mention=False)), 60)
    assert taken and (await h.app.health())["status"] == "ok"
    assert not stats.done()  # the report is still being computed
    go.set()
    answer = [d.text for d in await asyncio.wait_for(stats, 60) if "运营数据" in d.text]
    assert len(answer) == 1 and "新增 3（上期 2）" in answer[0] and "GMV ¥250.00（上期 ¥100.00）" in answer[0]
    await h.settle()  # Ann's message, taken meanwhile, is handled once the inbox gets to it
    assert await ann_messages_on_the_14th(h) == spoken + 1


async def test_stats_reads_nothing_for_a_member_without_the_role_or_for_a_bad_span(
        scripted: tuple[Harness, Config], monkeypatch: pytest.MonkeyPatch) -> None:
    """The report is read before the transaction only for an author who may run /stats with a span that
    parses: a customer typing /stats, or an operator typing a bad span, costs no report."""
    h, _ = scripted
    insights = h.app.get(INSIGHTS)
    asked: list[Period] = []
    real = insights.report

    async def counted(period: Period, chat_id: str | None = None) -> dict[str, Any]:
        asked.append(period)
        return await real(period, chat_id)

    monkeypatch.setattr(insights, "report", counted)
    denied = await h.say_texts("/stats 30天", sender="wmAnn", name="Ann", chat="g1")
    assert any("需要运营权限" in t for t in denied)
    (usage,) = await h.admin("/stats 明年", group=False)
    assert "看不懂时段「明年」" in usage and asked == []
    await h.admin("/stats 7天", group=False)
    assert asked == [parse_span("7天", date(2026, 11, 15), TZ)]  # once, before the transaction


async def ann_messages_on_the_14th(h: Harness) -> int:
    async with h.app.db.read() as s:
        return sum((await s.execute(select(MemberActivity.messages).where(
            MemberActivity.day == "2026-11-14", MemberActivity.member_id == "wmAnn"))).scalars().all())


def test_spans_are_local_days_ending_today() -> None:
    today = date(2026, 11, 12)  # a Thursday
    assert parse_span("今天", today, TZ) == Period(today, today, TZ)
    assert parse_span("本周", today, TZ) == Period(date(2026, 11, 9), today, TZ)
    assert parse_span("本月", today, TZ) == Period(date(2026, 11, 1), today, TZ)
    assert parse_span("30天", today, TZ) == Period(date(2026, 10, 14), today, TZ)
    assert parse_span("近7天", today, TZ).previous() == Period(date(2026, 10, 30), date(2026, 11, 5), TZ)
    assert parse_span("0天", today, TZ) is None and parse_span("明年", today, TZ) is None
    p = parse_span("今天", today, TZ)
    assert p.start.isoformat() == "2026-11-11T16:00:00+00:00" and p.end.isoformat() == "2026-11-12T16:00:00+00:00"
