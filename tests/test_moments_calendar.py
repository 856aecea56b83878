"""The Moments calendar: the file contract, overrides and campaigns, and each slot of each date published once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotApp
from bot.senders.console import RecordingSender
from bot.sop import MOMENTS
from bot.sop.moments import ChatChanges, load_calendar, parse_calendar
from bot.sop.publisher import approval_reminder
from bot.templates import Templates
from bot.testing import Harness
from bot.yamldoc import FileProblems
from tests.sop_support import REPO, SH, at, local, outbox, posts, sop_config, started, write_scripts

CALENDAR = """\
staff: [ahe]
week:
  monday:
    - {time: "08:30", theme: 早安, text: "早安，今天是{{ weekday }}"}
    - time: "20:00"
      theme: 晚安
      text: 晚安
      audience: {tags: [白茶爱好者], tiers: [vip]}
      staff: [xiaoyu]
      images: ["https://static.heyutea.example/a.jpg"]
      links: [{title: 直播, url: "https://heyutea.example/live"}]
  tuesday:
    - {time: "09:00", theme: 周二, text: 周二好, via: remind_staff}
overrides:
  - {date: 2026-11-30, skip: true, note: 休息}
  - date: 2026-12-01
    slots: [{time: "10:00", theme: 替换, text: 只有这一条}]
campaigns:
  - id: c1
    name: 小活动
    from: 2026-11-24
    to: 2026-11-24
    slots: [{time: "12:00", text: 活动开始}]
"""


def calendar_dir(tmp_path: Path, text: str = CALENDAR) -> Path:
    return write_scripts(tmp_path / "s", {"moments.yaml": text})


async def moments_bot(make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path,
                      text: str = CALENDAR, sender: Any = None, **overrides: str) -> BotApp:
    cfg = sop_config(make_config, calendar_dir(tmp_path, text), moments=True, **overrides)
    return await started(make_bot, cfg, sender=sender or RecordingSender())


def moments_of(app: BotApp) -> list[Any]:
    return [d for d in app.sender.deliveries if d.key.startswith("moment:")]  # type: ignore[attr-defined]


def test_the_shipped_calendar_a_week_with_holidays_and_a_campaign() -> None:
    cal = load_calendar(REPO / "sop_templates" / "moments.yaml", templates=Templates(SH),
                        templates_dir=REPO / "sop_templates" / "templates")
    assert [len(cal.week[i]) for i in range(7)] == [2, 1, 2, 1, 2, 2, 1]
    monday = cal.plan(date(2026, 11, 23), SH)
    assert [(p.slot.hhmm, p.slot.theme) for p in monday.slots] == [("08:30", "早安茶语"), ("19:30", "作业点评直播预告")]
    assert monday.slots[0].at == local(2026, 11, 23, 8, 30)
    xmas = cal.plan(date(2026, 12, 25), SH)
    assert xmas.note == "圣诞节" and [p.slot.id for p in xmas.slots] == ["2026-12-25-1000"]
    assert cal.plan(date(2027, 1, 1), SH).skipped_day and cal.plan(date(2027, 1, 1), SH).slots == ()
    sale = cal.plan(date(2026, 12, 11), SH)
    assert sale.note == "双十二囤茶节" and "double12-noon" in [p.slot.id for p in sale.slots]
    assert cal.plan(date(2026, 12, 13), SH).note == ""


def test_chat_changes_lay_over_the_file() -> None:
    cal = parse_calendar(CALENDAR, "m.yaml", templates=Templates(SH))
    changes = ChatChanges(skips={"2026-11-23": {"monday-2000": "admin01"}},
                          sets={(0, "08:30"): ("新的早安", "admin01"), (0, "12:00"): ("午间加一条", "admin01")},
                          approvals={"2026-11-23": "admin01"})
    plan = cal.plan(date(2026, 11, 23), SH, changes, force_approval=True)
    assert [(p.slot.id, p.slot.source, p.skipped_by, p.replaced_by) for p in plan.slots] == [
        ("monday-0830", "新的早安", "", "admin01"), ("chat-monday-1200", "午间加一条", "", "admin01"),
        ("monday-2000", "晚安", "admin01", "")]
    assert plan.approval_required and plan.approved_by == "admin01"
    assert cal.plan(date(2026, 11, 30), SH, changes).slots == ()  # the file's holiday wins over a weekly chat change


@pytest.mark.parametrize(("text", "expected"), [
    (CALENDAR.replace("monday:", "mondy:", 1), "m.yaml:3: week：未知字段 mondy（是不是 monday？）"),
    (CALENDAR.replace('"08:30"', '"8.30"'), "m.yaml:4: time：时刻 '8.30' 应写成 HH:MM"),
    (CALENDAR.replace("via: remind_staff", "via: sms"), "m.yaml:13: via 只能是 moment_task"),
    (CALENDAR.replace("{date: 2026-11-30, skip: true, note: 休息}", "{date: someday, skip: true}"),
     "m.yaml:15: override 的 date 应是日期"),
    (CALENDAR.replace("to: 2026-11-24", "to: 2026-11-20"), "m.yaml:22: campaign 的 to 早于 from"),
    (CALENDAR.replace('text: "早安，今天是{{ weekday }}"', 'text: "早安 {{ weekday"'), "m.yaml:4: text 模板有误"),
    (CALENDAR.replace("staff: [ahe]", "staff: ahe\napproval: maybe"), "m.yaml:2: approval 应是 true"),
    (CALENDAR + "  - {id: c1, from: 2026-12-01, slots: []}\n", "m.yaml:24: campaign id c1 重复了"),
    (CALENDAR.replace("https://heyutea.example/live", "live"), "m.yaml:11: links 每项应是网址"),
    (CALENDAR.replace("audience: {tags:", "audience: {tag:"), "m.yaml:8: audience：未知字段 tag（是不是 tags？）"),
    (CALENDAR.replace("{time: \"08:30\",", "{tme: \"08:30\","), "m.yaml:4: 时段：未知字段 tme（是不是 time？）"),
    (CALENDAR.replace("  - id: c1\n", "  - id: " + "c" * 60 + "\n"), "m.yaml:23: 时段 id 应是不超过 64 个字符的文字"),
])
def test_calendar_problems_name_the_line(text: str, expected: str) -> None:
    with pytest.raises(FileProblems) as exc:
        parse_calendar(text, "m.yaml", templates=Templates(SH))
    assert any(str(p).startswith(expected) for p in exc.value.problems), [str(p) for p in exc.value.problems]


async def test_each_slot_is_published_once_as_a_moment_task(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await moments_bot(make_config, make_bot, tmp_path, MOMENTS__TAG_IDS='{"白茶爱好者": "etWhite"}',
                            TIERS__WECOM_TAG_IDS='{"vip": "etVip"}')
    clock = app.clock
    at(clock, 2026, 11, 23, 8, 29)  # type: ignore[arg-type]
    await app.settle()
    assert moments_of(app) == []
    at(clock, 2026, 11, 23, 8, 30)  # type: ignore[arg-type]
    await app.settle()
    await app.settle()
    (morning,) = moments_of(app)
    assert morning.kind == "moment_task" and morning.key == "moment:2026-11-23:monday-0830"
    assert morning.text == "早安，今天是周一"
    assert morning.destination == {"visible": {"users": ["ahe"]}, "to": []}
    at(clock, 2026, 11, 23, 20, 5)  # type: ignore[arg-type]
    await app.settle()
    evening = moments_of(app)[1]
    assert evening.destination["visible"] == {"users": ["xiaoyu"], "tags": ["etWhite", "etVip"]}
    assert [a["msgtype"] for a in evening.payload["attachments"]] == ["image", "link"]
    at(clock, 2026, 11, 24, 9, 0)  # type: ignore[arg-type]
    await app.settle()
    at(clock, 2026, 11, 24, 12, 0)  # type: ignore[arg-type]
    await app.settle()
    tuesday = {d.key: d for d in moments_of(app)[2:]}
    remind = tuesday["moment:2026-11-24:tuesday-0900"]
    assert remind.kind == "remind_staff" and remind.to == ["ahe"] and "周二好" in remind.text
    assert "moment:2026-11-24:c1-1200" in tuesday  # the campaign's slot
    assert [(p.slot_id, p.state) for p in await posts(app)] == [
        ("monday-0830", "unpolled"), ("monday-2000", "unpolled"), ("tuesday-0900", "reminded"), ("c1-1200", "queued")]


async def test_two_replicas_and_a_restart_publish_each_slot_once(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    cfg = sop_config(make_config, calendar_dir(tmp_path), moments=True)
    a = await started(make_bot, cfg, sender=RecordingSender())
    b = await started(make_bot, cfg, sender=RecordingSender())
    at(a.clock, 2026, 11, 23, 8, 0)  # type: ignore[arg-type]
    await asyncio.gather(a.settle(), b.settle())
    at(a.clock, 2026, 11, 23, 9, 0)  # type: ignore[arg-type]
    services = (a.get(MOMENTS), b.get(MOMENTS))
    await asyncio.gather(*(s.publish_due() for s in services * 3))
    await asyncio.gather(a.settle(), b.settle())
    await a.stop()
    c = await started(make_bot, cfg, sender=RecordingSender())
    await c.settle()
    sent = [d for app in (a, b, c) for d in moments_of(app)]
    assert [d.key for d in sent] == ["moment:2026-11-23:monday-0830"]
    assert len(await outbox(c, "moment:")) == 1 and len(await posts(c)) == 1


async def test_a_slot_found_after_the_grace_is_recorded_as_missed_not_sent(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await moments_bot(make_config, make_bot, tmp_path, MOMENTS__LATE_GRACE="1h")
    at(app.clock, 2026, 11, 23, 8, 0)  # type: ignore[arg-type]
    await app.settle()  # the bot's first look: the calendar counts from here
    at(app.clock, 2026, 11, 23, 9, 30)  # type: ignore[arg-type]
    await app.settle()
    assert [d.key for d in moments_of(app)] == ["moment:2026-11-23:monday-0830"]  # 60 min late: still in grace
    at(app.clock, 2026, 11, 24, 9, 30)  # type: ignore[arg-type]  # the bot was down all evening
    await app.settle()
    rows = {p.slot_id: (p.state, p.detail) for p in await posts(app)}
    assert rows["monday-2000"] == ("missed", "超过宽限期 1h 才被发现，没有发送")
    assert rows["tuesday-0900"][0] == "reminded" and "c1-1200" not in rows
    assert [d.key for d in moments_of(app)][1:] == ["moment:2026-11-24:tuesday-0900"]


async def test_a_holiday_skip_posts_nothing(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await moments_bot(make_config, make_bot, tmp_path)
    at(app.clock, 2026, 11, 30, 0, 0)  # type: ignore[arg-type]
    await app.settle()
    at(app.clock, 2026, 11, 30, 21, 0)  # type: ignore[arg-type]
    await app.settle()
    assert moments_of(app) == [] and await posts(app) == []
    at(app.clock, 2026, 12, 1, 10, 0)  # type: ignore[arg-type]
    await app.settle()
    assert [d.text for d in moments_of(app)] == ["只有这一条"]


async def test_with_approval_nothing_goes_out_until_the_day_is_approved(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await moments_bot(make_config, make_bot, tmp_path, MOMENTS__APPROVAL="true", BOT__OPS_USERS='["ops01"]')
    h = Harness(app)
    at(app.clock, 2026, 11, 22, 18, 0)  # type: ignore[arg-type]
    await approval_reminder(app, app.get(MOMENTS), app.clock.now())
    (ask,) = await h.settle()
    assert ask.kind == "app_message" and ask.to == ["ops01"] and "明天（2026-11-23 周一）的朋友圈等待审批" in ask.text
    assert "早安，今天是周一" in ask.text and "/moments approve 2026-11-23" in ask.text
    at(app.clock, 2026, 11, 23, 8, 45)  # type: ignore[arg-type]
    await h.settle()
    assert moments_of(app) == [] and await posts(app) == []
    texts = await h.admin("/moments approve 2026-11-23", group=False)
    assert "管理员 已审批 2026-11-23 周一 的朋友圈" in texts[0]
    assert [d.key for d in moments_of(app)] == ["moment:2026-11-23:monday-0830"]  # 15 min late, within grace
    at(app.clock, 2026, 11, 24, 12, 0)  # type: ignore[arg-type]  # Tuesday was never approved
    await h.settle()
    rows = {p.slot_id: (p.state, p.detail) for p in await posts(app)}
    assert rows == {"monday-0830": ("unpolled", rows["monday-0830"][1]),
                    "monday-2000": ("missed", "超过宽限期 2h 才被发现，没有发送"),
                    "tuesday-0900": ("missed", "没有在宽限期内审批")}  # c1-1200 (12:00) still waits for approval
    assert len(moments_of(app)) == 1
