"""/sop commands: listing, previews with real dates, starting, pausing, stopping, status, migrating; bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.storage.models import AuditLog
from bot.testing import Harness
from tests.sop_support import at, repo_scripts, runs, sop_config, sop_sent, started, steps


async def confirm(h: Harness, prompt: str, **kw: Any) -> list[str]:
    assert "/confirm" in prompt, prompt
    code = prompt.split("/confirm ")[1][:4]
    return await h.admin(f"/confirm {code}", **kw)


async def said(h: Harness, command: str, **kw: Any) -> str:
    """The whole answer (long answers are split into several messages)."""
    kw.setdefault("group", False)
    return "\n".join(await h.admin(command, **kw))


async def audits(app: BotApp) -> list[Any]:
    t = AuditLog.__table__
    async with app.db.read() as s:
        return list((await s.execute(select(t).order_by(t.c.id))).all())


async def test_list_and_show(harness: Harness) -> None:
    text = await said(harness, "/sop list")
    assert "SOP 脚本共 6 个" in text and "newcomer-7d — 新人7天激活" in text and "运行中 0" in text
    text = await said(harness, "/sop show lifecycle-7")
    assert "触发：添加好友，每位成员一次" in text and "免打扰：21:30-09:00" in text
    assert "1. [+0m] 欢迎语 · 引导" in text and "条件 member.purchases == 0 and days_since" in text


async def test_preview_has_real_local_dates_quiet_hours_and_rendered_text(harness: Harness) -> None:
    await harness.join("wmBob", "Bob", chat="g1", chat_name="禾屿茶友会1群")
    text = await said(harness, "/sop preview newcomer-7d 本群 2026-11-23 21:50", chat="g1", group=True,
                      chat_name="禾屿茶友会1群")
    assert "从 2026-11-23 21:50 开始，群「禾屿茶友会1群」" in text
    # +0m at 21:50 is fine; +30m falls in 22:00-08:00 and waits until 08:00
    assert "11-23 周一 21:50 · 第1步 · 群内回复 · 进群欢迎" in text
    assert "11-24 周二 08:00 · 第2步 · 提醒员工 · 进群欢迎（免打扰，原定 22:20）" in text
    assert "11-24 周二 09:30 · 第3步 · 群内回复 · 激活" in text
    assert "欢迎 小明 加入禾屿茶友会1群🍵" in text
    assert "条件 member.checkins == 0：示例成员会收到" in text
    text = await said(harness, "/sop preview live-weekly")
    assert "11-25 周三 12:00 · 第2步（第 1 次） · 群内回复 · 直播预告" in text
    assert "12-02 周三 12:00 · 第2步（第 2 次）" in text and "12-16 周三 12:00" not in text  # 3 occurrences listed


async def test_start_for_a_group_and_a_weekly_step_repeats(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    (text,) = await harness.admin("/sop start live-weekly 本群", chat="g1", chat_name="新人群")
    assert "已为 新人群 启动「每周直播提醒」（运行编号 1" in text
    (again,) = await harness.admin("/sop start live-weekly g1", group=False)
    assert "已经有一次「每周直播提醒」在运行（编号 1）" in again
    at(clock, 2026, 11, 25, 12, 0)
    (notice,) = sop_sent(await harness.settle())
    assert notice.key == "sop:1:wed-notice:0" and notice.chat_id == "g1" and "今晚 20:00" in notice.text
    wed = [s for s in await steps(harness.app) if s.step_key == "wed-notice"]
    assert [(s.occurrence, s.state) for s in wed] == [(0, "done"), (1, "pending")]
    assert wed[1].due_at - wed[0].due_at == timedelta(days=7)
    mon = [s for s in await steps(harness.app) if s.step_key == "mon-review"]
    assert [(s.occurrence, s.outcome) for s in mon] == [(0, "skipped_late"), (1, "")]  # 11-23 19:50 was missed
    at(clock, 2026, 11, 30, 19, 50)
    (review,) = sop_sent(await harness.settle())
    assert review.key == "sop:1:mon-review:1"


async def test_start_for_a_member(harness: Harness) -> None:
    await harness.join("wmBob", "Bob", chat="g1")
    await harness.leave("wmBob", chat="g1")
    text = await said(harness, "/sop start newcomer-7d @wmBob", chat="g1", group=True)
    assert "已为 Bob@新人群 启动「新人7天激活」" in text
    (welcome,) = [d for d in sop_sent(harness.sent) if d.key.startswith("sop:2:")]
    assert welcome.to == ["wmBob"] and welcome.text.startswith("欢迎 Bob")


async def test_pause_holds_the_steps_and_resume_follows_the_late_rule(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 25, 11, 0)
    await harness.admin("/sop start live-weekly 本群", chat="g1")
    (text,) = await harness.admin("/sop pause 1", group=False)
    assert "已暂停运行 1" in text
    at(clock, 2026, 11, 25, 12, 10)
    assert sop_sent(await harness.settle()) == []
    (text,) = await harness.admin("/sop status #1", group=False)
    assert "已暂停" in text
    assert "已恢复运行 1" in await said(harness, "/sop resume 1")
    (notice,) = sop_sent(harness.sent)  # 10 minutes late: within the 30 min grace, sent
    assert notice.key == "sop:1:wed-notice:0"
    await harness.admin("/sop pause 1", group=False)
    at(clock, 2026, 11, 25, 21, 0)
    await harness.admin("/sop resume 1", group=False)  # 19:50 was missed by more than 30 min: skipped
    assert len(sop_sent(harness.sent)) == 1
    start = next(s for s in await steps(harness.app) if s.step_key == "wed-start")
    assert (start.state, start.outcome) == ("done", "skipped_late")
    (text,) = await harness.admin("/sop resume 1", group=False)
    assert "现在是「运行中」，不能恢复，没有改动" in text


async def test_stop_asks_for_confirmation_then_cancels_what_is_left(harness: Harness) -> None:
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    await harness.join("wmBob", "Bob")
    (prompt,) = await harness.admin("/sop stop 1", group=False)
    assert (await runs(harness.app))[0].status == "running"
    (text,) = await confirm(harness, prompt, group=False)
    assert "已停止运行 1（newcomer-7d · Bob@新人群）" in text
    (run,) = await runs(harness.app)
    assert run.status == "stopped" and run.end_reason == "管理员 手动停止"
    at(harness.app.clock, 2026, 11, 24, 9, 30)
    assert sop_sent(await harness.settle()) == []
    assert [s.outcome for s in await steps(harness.app, run.id)].count("stopped") == 8


async def test_status_lists_runs_and_one_run_step_by_step(harness: Harness) -> None:
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    await harness.join("wmBob", "Bob", chat="g1", chat_name="新人群")
    await harness.join("wmCarol", "Carol", chat="g2", chat_name="禾屿茶友会2群")
    (text,) = await harness.admin("/sop status", group=False)
    assert "SOP 运行 2 个" in text
    assert "#2 新人7天激活 · Carol@禾屿茶友会2群 · 运行中 · 1/9 · 下一步 11-23 10:30" in text
    (text,) = await harness.admin("/sop status 禾屿茶友会2群", group=False)
    assert "「禾屿茶友会2群」的SOP 运行 1 个" in text and "Bob" not in text
    text = await said(harness, "/sop status #1")
    assert "运行 #1：新人7天激活 · Bob@新人群 · 运行中" in text
    assert "11-23 10:00 第1步（welcome） · 群内回复 · 已发送" in text
    assert "11-24 09:30 第3步（day1-gift） · 群内回复 · 待发送" in text


MIGRATE_V1 = """\
id: flow
name: 流程
trigger: manual
per: group
quiet_hours: "off"
steps:
  - {id: a, at: "+0m", via: reply, text: "A1"}
  - {id: b, at: "+1h", via: reply, text: "B1"}
  - {id: c, at: "+2h", via: reply, text: "C1"}
"""
MIGRATE_V2 = """\
id: flow
name: 流程
trigger: manual
per: group
quiet_hours: "off"
steps:
  - {id: a, at: "+0m", via: reply, text: "A2"}
  - {id: b, at: "+3h", via: reply, text: "B2"}
  - {id: d, at: "+4h", via: reply, text: "D2"}
  - {id: e, at: "+10m", via: reply, text: "E2"}
"""


async def test_migrate_moves_running_runs_to_the_new_version(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "flow.yaml").write_text(MIGRATE_V1, encoding="utf-8")
    app = await started(make_bot, sop_config(make_config, d))
    h = Harness(app)
    await h.admin("/sop start flow 本群", chat="g1")
    assert [x.text for x in sop_sent(h.sent)] == ["A1"]
    (d / "flow.yaml").write_text(MIGRATE_V2, encoding="utf-8")
    app.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    await h.settle()  # the file is reloaded; the running run keeps version 1
    (text,) = await h.admin("/sop status #1", group=False)
    assert "当前文件是" in text and "/sop migrate flow 1" in text
    (prompt,) = await h.admin("/sop migrate flow", group=False)
    (text,) = await confirm(h, prompt, group=False)
    assert "迁移到版本" in text and "重新排期 1 步 · 新增 1 步 · 取消 1 步 · 已过时间跳过 1 步" in text
    app.clock.advance(timedelta(hours=4))  # type: ignore[attr-defined]
    await h.settle()
    # a was sent under v1 and is not resent; b takes v2's text and time; c is dropped; d is new;
    # e (+10m) was already past when the run moved and is recorded, not sent in a burst.
    assert [x.text for x in sop_sent(h.sent)] == ["A1", "B2", "D2"]
    outcomes = {s.step_key: (s.state, s.outcome) for s in await steps(app)}
    assert outcomes == {"a": ("done", "sent"), "b": ("done", "sent"), "c": ("cancelled", "migrated"),
                        "d": ("done", "sent"), "e": ("done", "skipped_migrated")}
    (run,) = await runs(app)
    assert run.migrated_from and run.version != run.migrated_from and run.status == "done"
    (prompt,) = await h.admin("/sop migrate flow", group=False)
    (text,) = await confirm(h, prompt, group=False)
    assert "没有需要迁移的运行" in text


@pytest.mark.parametrize(("command", "problem"), [
    ("/sop start", "缺少参数 <脚本id>"),
    ("/sop start newcomer-7d", "缺少参数 <群|@成员>"),
    ("/sop start nope 本群", "没有脚本 nope；可用：checkin-21d、first-order-care"),
    ("/sop start newcomer-7d 本群", "脚本 newcomer-7d 是 per: member"),
    ("/sop start live-weekly @wmBob", "脚本 live-weekly 是 per: group"),
    ("/sop start live-weekly 没有这个群", "找不到群「没有这个群」"),
    ("/sop start newcomer-7d @小王", "找不到成员 小王"),
    ("/sop pause abc", "运行编号 应是整数，收到 'abc'"),
    ("/sop pause 0", "运行编号 不能小于 1"),
    ("/sop pause 999", "没有编号为 999 的运行"),
    ("/sop show", "缺少参数 <脚本id>"),
    ("/sop preview newcomer-7d 不存在的群 2026-11-23 10:00", "找不到群「不存在的群」"),
    ("/sop status #999", "没有编号为 999 的运行"),
    ("/sop list extra", "多余的参数：extra"),
])
async def test_bad_arguments_get_the_usage_and_change_nothing(harness: Harness, command: str, problem: str) -> None:
    await harness.join("wmBob", "Bob", chat="g1")
    before = (await runs(harness.app), await steps(harness.app))
    (text,) = await harness.admin(command, chat="g1")
    assert problem in text and "用法：/sop" in text, text
    assert (await runs(harness.app), await steps(harness.app)) == before
    assert (await audits(harness.app))[-1].outcome == "usage_error"


@pytest.mark.parametrize(("command", "problem"), [("/sop stop 42", "没有编号为 42 的运行"),
                                                ("/sop migrate nope", "没有脚本 nope")])
async def test_confirmed_commands_check_their_arguments_when_confirmed(harness: Harness, command: str,
                                                                       problem: str) -> None:
    (prompt,) = await harness.admin(command, group=False)
    (text,) = await confirm(harness, prompt, group=False)
    assert problem in text and "用法：" in text


async def test_members_may_not_run_sop_commands(harness: Harness) -> None:
    for command in ("/sop list", "/sop start live-weekly 本群", "/sop stop 1"):
        (text,) = await harness.say_texts(command, sender="wmBob", name="Bob")
        assert "需要运营权限" in text
    assert await runs(harness.app) == []
    assert {a.outcome for a in await audits(harness.app)} == {"denied"}


async def test_an_operator_granted_in_chat_may(harness: Harness) -> None:
    await harness.admin("/role grant @staff02 operator", group=False)
    (text,) = await harness.say_texts("/sop start live-weekly 本群", sender="staff02", name="小张", staff=True)
    assert "已为 新人群 启动" in text
    (run,) = await runs(harness.app)
    assert run.started_by == "operator:staff02"


async def test_the_example_scripts_can_be_copied_and_edited(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    d = repo_scripts(tmp_path / "copy")
    app = await started(make_bot, sop_config(make_config, d))
    text = await said(Harness(app), "/sop list")
    assert "SOP 脚本共 6 个" in text and "⚠️" not in text
