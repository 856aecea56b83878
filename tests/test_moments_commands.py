"""/moments commands: the week ahead, today, skip, approve, set and unset; bad input changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.sop.models import MomentOverride
from bot.testing import Harness
from tests.sop_support import REPO, at, edit, posts, sop_config, started

# The shipped calendar, published with the console-like recording sender.


async def calendar_bot(make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path,
                       **overrides: str) -> Harness:
    import shutil

    d = tmp_path / "s"
    shutil.copytree(REPO / "sop_templates", d)
    app = await started(make_bot, sop_config(make_config, d, moments=True, **overrides))
    return Harness(app)


async def said(h: Harness, command: str, **kw: Any) -> str:
    kw.setdefault("group", False)
    return "\n".join(await h.admin(command, **kw))


async def overrides(app: BotApp) -> list[Any]:
    t = MomentOverride.__table__
    async with app.db.read() as s:
        return list((await s.execute(select(t).order_by(t.c.key))).all())


async def confirm(h: Harness, prompt: str) -> str:
    code = prompt.split("/confirm ")[1][:4]
    return await said(h, f"/confirm {code}")


async def test_week_shows_the_next_seven_days_with_status(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 8, 0)
    await h.settle()
    at(h.app.clock, 2026, 11, 23, 10, 0)
    await h.settle()
    text = await said(h, "/moments week")
    assert text.startswith("📅 朋友圈计划 2026-11-23 起 7 天：")
    assert "【11-23 周一】" in text and "【11-29 周日】" in text and "【11-30 周一】" not in text
    assert "08:30 早安茶语 · 已提交，等待结果" in text and "19:30 作业点评直播预告 · 待发布" in text
    assert "【11-24 周二】\n  12:30 茶知识 · 待发布\n    【周二茶知识】白茶的三种喝法🍵" in text
    text = await said(h, "/moments week 2026-12-24")
    assert "【12-25 周五】圣诞节" in text and "10:00 圣诞茶礼 · 待发布 · 节日安排" in text
    text = await said(h, "/moments week 2026-12-29")
    assert "【01-01 周五】元旦休息\n  这天不发（节日安排）" in text


async def test_today_lists_delivery_audience_and_staff(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 27, 9, 0)
    text = await said(h, "/moments today")
    assert text.startswith("📅 今天（2026-11-27 周五）的朋友圈：")
    assert "20:30 VIP 新品优先 · 待发布\n  发布方式：企业微信朋友圈任务 · 员工：ahe、xiaoyu\n  可见：vip、seed" in text


async def test_skip_a_slot_or_a_day_after_confirmation(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 7, 0)
    prompt = await said(h, "/moments skip 2026-11-23 08:30")
    assert await overrides(h.app) == []
    text = await confirm(h, prompt)
    assert "已跳过 2026-11-23 周一的朋友圈：\n- 08:30 早安茶语" in text
    prompt = await said(h, "/moments skip 2026-11-25")
    text = await confirm(h, prompt)
    assert "已跳过 2026-11-25 周三全天的朋友圈" in text and "- 18:30 今晚直播" in text
    at(h.app.clock, 2026, 11, 23, 20, 0)
    sent = [d.key for d in await h.settle() if d.key.startswith("moment:")]
    assert sent == ["moment:2026-11-23:monday-1930"]
    states = {p.slot_id: (p.state, p.detail) for p in await posts(h.app)}
    assert states["monday-0830"] == ("skipped", "admin01 在聊天中跳过")
    text = await said(h, "/moments week 2026-11-25")
    assert "10:00 茶园日记 · 将跳过（admin01）" in text


async def test_approve_with_approval_on(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path, MOMENTS__APPROVAL="true")
    at(h.app.clock, 2026, 11, 23, 7, 0)
    text = await said(h, "/moments week")
    assert "【11-23 周一】 · 待审批：/moments approve 2026-11-23" in text and "08:30 早安茶语 · 待审批" in text
    await h.admin("/role grant @rev01 reviewer", group=False)
    (text,) = await h.say_texts("/moments approve 2026-11-23", sender="rev01", name="审核员", staff=True,
                                group=False)
    assert "审核员 已审批 2026-11-23 周一 的朋友圈" in text and "08:30 早安茶语 · 待发布" in text
    (text,) = await h.say_texts("/moments skip 2026-11-24", sender="rev01", name="审核员", staff=True)
    assert "需要运营权限" in text
    at(h.app.clock, 2026, 11, 23, 8, 30)
    assert [d.key for d in await h.settle()] == ["moment:2026-11-23:monday-0830"]


async def test_set_and_unset_a_weekly_text_from_chat(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 7, 0)
    text = await said(h, "/moments set 周一 08:30 周一早安，今天喝{{ weekday }}的第一泡茶")
    assert "已设置每周一 08:30 的朋友圈（替换文件里的「早安茶语」文案）" in text and "week.monday" in text
    text = await said(h, "/moments set wednesday 12:00 午休时间，泡一杯白牡丹吧")
    assert "已设置每周三 12:00 的朋友圈（新增时段）" in text
    text = await said(h, "/moments week")
    assert "08:30 早安茶语 · 待发布 · 聊天设置\n    周一早安，今天喝周一的第一泡茶" in text
    assert "12:00 聊天设置 · 待发布 · 聊天设置\n    午休时间，泡一杯白牡丹吧" in text
    at(h.app.clock, 2026, 11, 23, 8, 30)
    (morning,) = [d for d in await h.settle() if d.key.startswith("moment:")]
    assert morning.key == "moment:2026-11-23:monday-0830" and morning.text == "周一早安，今天喝周一的第一泡茶"
    assert morning.payload["attachments"][0]["msgtype"] == "image"  # the file's picture is kept
    text = await said(h, "/moments unset 周三 12:00")
    assert "已撤销每周三 12:00" in text
    assert "12:00 聊天设置" not in await said(h, "/moments week")


@pytest.mark.parametrize(("command", "problem"), [
    ("/moments skip 2026-11-22", "2026-11-22 已经过去了"),
    ("/moments skip 11/30", "日期 应是日期 YYYY-MM-DD"),
    ("/moments skip 2026-11-24 09:99", "2026-11-24 没有时段 09:99；这天的时段：12:30 tuesday-1230"),
    ("/moments skip 2027-01-01", "2027-01-01 本来就没有要发的朋友圈"),
    ("/moments approve 2026-11-01", "2026-11-01 已经过去了，不能再审批"),
    ("/moments approve", "缺少参数 <日期>"),
    ("/moments set funday 08:30 文案", "星期应是 周一…周日 或 monday…sunday，收到 'funday'"),
    ("/moments set 周一 8点 文案", "时间 应是时间 HH:MM"),
    ("/moments set 周一 08:30", "缺少参数 <文案…>"),
    ("/moments set 周一 08:30 {{ oops", "文案里的模板有问题"),
    ("/moments unset 周二 07:00", "周二 07:00 没有聊天里设置的文案"),
    ("/moments week 下周", "开始日期 应是日期 YYYY-MM-DD"),
])
async def test_bad_arguments_get_the_usage_and_change_nothing(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path, command: str,
        problem: str) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 7, 0)
    text = await said(h, command)
    if "确认" in text and "/confirm" in text:
        text = await confirm(h, text)
    assert problem in text and "用法：/moments" in text, text
    assert await overrides(h.app) == [] and await posts(h.app) == []


async def test_an_already_published_slot_cannot_be_skipped(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 8, 0)
    await h.settle()
    at(h.app.clock, 2026, 11, 23, 9, 0)
    await h.settle()
    text = await confirm(h, await said(h, "/moments skip 2026-11-23 08:30"))
    assert "这些时段已经处理过了（08:30），不能再跳过" in text
    assert await overrides(h.app) == []


async def test_a_broken_calendar_keeps_the_old_plan_and_reload_names_the_line(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    edit(h.app.config.moments.calendar, 'time: "08:30"', 'time: "8:3O"')
    text = await said(h, "/moments reload")
    assert "moments.yaml 有问题，没有加载（继续使用上一个可用版本）" in text
    assert "moments.yaml:12: time：时刻 '8:3O'" in text
    text = await said(h, "/moments week 2026-11-23")
    assert "08:30 早安茶语" in text and "日历文件有问题，继续使用上一个可用版本" in text


async def test_members_may_not_use_moments_commands(harness: Harness) -> None:
    (text,) = await harness.say_texts("/moments week", sender="wmBob", name="Bob")
    assert "需要运营权限" in text


async def test_a_past_slot_never_queued_is_not_called_publishing(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await started(make_bot, sop_config(make_config, REPO / "sop_templates", moments=False))
    h = Harness(app)
    at(h.app.clock, 2026, 11, 27, 22, 10)  # 20:00 is past the 2h grace, 20:30 within it; publishing is off
    text = await said(h, "/moments today")
    assert "发布中" not in text
    assert "20:00 周末茶单 · 已错过（朋友圈发布没有开启：moments.enabled = false）" in text
    assert "20:30 VIP 新品优先 · 未发布（朋友圈发布没有开启：moments.enabled = false）" in text


def test_slot_status_says_why_a_past_slot_has_no_post() -> None:
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from bot.sop.publisher import slot_status

    now = datetime(2026, 11, 27, 21, 0)
    plan = SimpleNamespace(approval_required=False, approved_by="")
    waiting = SimpleNamespace(approval_required=True, approved_by="")
    recent = SimpleNamespace(skipped_by="", at=now - timedelta(minutes=30))
    old = SimpleNamespace(skipped_by="", at=now - timedelta(hours=3))
    later = SimpleNamespace(skipped_by="", at=now + timedelta(hours=1))
    kw: Any = {"grace": timedelta(hours=2), "late_grace": "2h"}
    assert slot_status(plan, later, None, now, **kw) == "待发布"  # type: ignore[arg-type]
    assert slot_status(plan, recent, None, now, **kw).startswith("未发布（已到时间，还没有排队")  # type: ignore[arg-type]
    assert slot_status(plan, old, None, now, **kw).startswith("已错过（超过宽限期 2h 仍没有排队")  # type: ignore[arg-type]
    assert slot_status(waiting, recent, None, now, **kw).startswith("待审批（已到时间，2h 内审批")  # type: ignore[arg-type]
    assert slot_status(waiting, old, None, now, **kw) == "已错过（没有在宽限期内审批）"  # type: ignore[arg-type]
