"""Segment sends through the pipeline: /send previews, /confirm queues one 群发 task per staff member,
quiet hours, the once-a-day rule, bad segments, and the results polled from WeCom (/sends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.campaigns.models import CampaignSend, CampaignTask
from bot.senders.base import Delivery
from bot.testing import Harness
from tests import campaigns_support

wecom_harness = campaigns_support.wecom_harness  # the fixtures
make_wecom_harness = campaigns_support.make_wecom_harness

TEXT = "新品白茶到了，老朋友优先预订～"


async def customers(h: Harness) -> None:
    """wmA, wmB through staff01, wmC through staff02 (contacts); wmD only in the group (no staff)."""
    for member, name, staff in (("wmA", "阿安", "staff01"), ("wmB", "阿北", "staff01"), ("wmC", "阿川", "staff02")):
        await h.add_contact(member, name, staff=staff)
        await h.join(member, name, chat="g1", chat_name="禾屿茶友会")
    await h.join("wmD", "阿东", chat="g1", chat_name="禾屿茶友会")
    for member in ("wmA", "wmC", "wmD"):
        await h.admin(f"/tag add {member} 白茶爱好者", group=False)
    for member in ("wmA", "wmB"):
        await h.admin(f"/purchase {member} 268", group=False)


def code_of(prompt: str) -> str:
    return prompt.split("/confirm ")[1][:4]


def mass_sends(sent: list[Delivery]) -> list[Delivery]:
    """The segment sends' tasks (the tiers feature's upgrade greetings are mass sends too)."""
    return [d for d in sent if d.kind == "mass_send" and d.key.startswith("send:")]


async def count(app: BotApp, model: type) -> int:
    async with app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_preview_then_confirm_queues_one_task_per_staff_member(harness: Harness) -> None:
    await customers(harness)
    (prompt,) = await harness.admin(f"/send tier:vip {TEXT}", group=False)
    assert "群发预览：tier:vip" in prompt and "客户 2 人，由 1 位员工" in prompt
    assert "· staff01：2 人" in prompt and f"文案：{TEXT}" in prompt and "/confirm" in prompt
    assert mass_sends(harness.sent) == [] and await count(harness.app, CampaignSend) == 0  # nothing before /confirm

    (prompt,) = await harness.admin(f"/send tag:白茶爱好者 {TEXT}", group=False)
    assert "客户 2 人，由 2 位员工" in prompt and "· staff01：1 人" in prompt and "· staff02：1 人" in prompt
    assert "没有负责员工 1 人" in prompt  # wmD joined the group but added nobody
    sent = await harness.say(f"/confirm {code_of(prompt)}", sender="admin01", name="管理员", staff=True,
                             group=False)
    tasks = mass_sends(sent)
    assert sorted((d.destination["sender"], d.destination["external_userids"]) for d in tasks) == [
        ("staff01", ["wmA"]), ("staff02", ["wmC"])]
    assert {d.text for d in tasks} == {TEXT}
    (answer,) = [d.text for d in sent if d.kind != "mass_send"]
    assert "2 位客户，2 个群发任务" in answer and "跳过没有负责员工的 1 人" in answer
    assert await count(harness.app, CampaignTask) == 2
    harness.app.clock.advance(timedelta(seconds=601))  # type: ignore[attr-defined]
    await harness.settle()
    (status,) = await harness.admin("/sends", group=False)
    assert "staff01：1 人，未查询（发送方没有返回 msgid" in status  # the recording sender has no msgid


async def test_a_customer_gets_one_segment_send_a_day(harness: Harness) -> None:
    await customers(harness)
    (prompt,) = await harness.admin(f"/send tier:vip {TEXT}", group=False)
    await harness.admin(f"/confirm {code_of(prompt)}", group=False)
    (prompt,) = await harness.admin("/send group:禾屿茶友会 周末茶会报名开始啦", group=False)
    assert "客户 1 人" in prompt and "· staff02：1 人" in prompt  # wmC; wmA and wmB had today's already
    assert "今天（2026-11-23）已收到过群发 2 人" in prompt and "没有负责员工 1 人" in prompt
    (again,) = await harness.admin(f"/send tier:vip {TEXT}", group=False)
    assert "都发不了" in again and "已收到过群发 2 人" in again and "/confirm" not in again
    harness.app.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    await harness.settle()  # what the day had due
    (tomorrow,) = await harness.admin(f"/send tier:vip {TEXT}", group=False)
    assert "客户 2 人" in tomorrow and "已收到过群发" not in tomorrow


async def test_a_send_confirmed_in_quiet_hours_waits_for_their_end(harness: Harness) -> None:
    await customers(harness)
    harness.app.clock.set(datetime(2026, 11, 23, 15, 30, tzinfo=UTC))  # type: ignore[attr-defined] # 23:30 local
    await harness.settle()  # what the day had due
    (prompt,) = await harness.admin(f"/send tier:vip {TEXT}", group=False)
    assert "现在是静默时段（22:00-08:00），确认后在 11-24 08:00 发出" in prompt
    sent = await harness.admin(f"/confirm {code_of(prompt)}", group=False)
    assert any("静默时段（22:00-08:00），11-24 08:00 发出" in t for t in sent)
    assert mass_sends(harness.sent) == []  # queued, not sent
    async with harness.app.db.read() as s:
        (send,) = (await s.execute(select(CampaignSend))).scalars().all()
    assert send.day == "2026-11-24" and send.due_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    harness.app.clock.set(datetime(2026, 11, 24, 0, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    (task,) = mass_sends(await harness.settle())
    assert task.destination["external_userids"] == ["wmA", "wmB"]


@pytest.mark.parametrize(("command", "answer"), [
    (f"/send vip {TEXT}", "不认识的人群「vip」"),
    (f"/send city:杭州 {TEXT}", "不认识的人群「city:杭州」"),
    (f"/send tier:黄金 {TEXT}", "没有叫「黄金」的等级"),
    (f"/send tag:没人有的标签 {TEXT}", "没有成员带标签「没人有的标签」"),
    (f"/send group:不存在的群 {TEXT}", "找不到群「不存在的群」"),
    (f"/send tier:seed {TEXT}", "人群 tier:seed 里没有客户"),
    ("/send tier:vip", "缺少参数 <文案…>"),
    ("/send tier:vip " + "长" * 700, "群发一条最多 2048 字节"),
])
async def test_bad_or_empty_segments_queue_nothing(harness: Harness, command: str, answer: str) -> None:
    await customers(harness)
    (text,) = await harness.admin(command, group=False)
    assert answer in text and "该操作需要确认" not in text
    assert mass_sends(harness.sent) == [] and await count(harness.app, CampaignSend) == 0


async def test_send_is_for_operators(harness: Harness) -> None:
    await customers(harness)
    (text,) = await harness.say_texts(f"/send tier:vip {TEXT}", sender="wmA", name="阿安", group=False)
    assert "群发预览" not in text and await count(harness.app, CampaignSend) == 0


async def test_results_are_polled_and_shown_by_sends(wecom_harness: Harness, fake_wecom: Any) -> None:
    h = wecom_harness
    await customers(h)
    fake_wecom.unconfirmed = {"staff02"}
    fake_wecom.invalid_externals = {"wmA"}
    (prompt,) = await h.admin(f"/send tag:白茶爱好者 {TEXT}", group=False)
    await h.admin(f"/confirm {code_of(prompt)}", group=False)
    created = [r for r in fake_wecom.delivered("externalcontact/add_msg_template")
               if r.body["text"]["content"] == TEXT]  # (upgrade greetings are 群发 tasks too)
    assert sorted((r.body["sender"], r.body["external_userid"]) for r in created) == [
        ("staff01", ["wmA"]), ("staff02", ["wmC"])]
    (status,) = await h.admin("/send status", group=False)
    assert "已发送 0，失败 0，未发送 2" in status and "等待结果" in status
    h.app.clock.advance(timedelta(seconds=601))  # type: ignore[attr-defined]
    await h.settle()
    polls = fake_wecom.calls("externalcontact/get_groupmsg_send_result")
    assert sorted((r.body["userid"], r.body["msgid"]) for r in polls) == sorted(
        (r.body["sender"], r.answer["msgid"]) for r in created)
    (status,) = await h.admin("/sends", group=False)
    assert "tag:白茶爱好者 · 2 人 · 已发送 0，失败 1，未发送 1" in status
    assert "staff01：1 人，已完成（不是好友 1" in status and "staff02：1 人，等待结果" in status
    fake_wecom.unconfirmed = set()
    h.app.clock.advance(timedelta(seconds=601))  # type: ignore[attr-defined]
    await h.settle()
    (status,) = await h.admin("/sends", group=False)
    assert "已发送 1，失败 1，未发送 0" in status
    assert len(fake_wecom.calls("externalcontact/get_groupmsg_send_result")) == 3  # staff01's was done: not again


async def test_typed_in_a_group_the_preview_comes_privately_and_confirm_works_there(harness: Harness) -> None:
    await customers(harness)
    sent = await harness.say(f"/send tier:vip {TEXT}", sender="admin01", name="管理员", staff=True)
    (private,) = [d for d in sent if d.kind == "app_message"]
    assert private.to == ["admin01"] and "客户 2 人" in private.text
    assert all("客户 2 人" not in d.text for d in sent if d.kind == "reply")  # the group sees a notice only
    sent = await harness.say(f"/confirm {code_of(private.text)}", sender="admin01", name="管理员", staff=True)
    assert len(mass_sends(sent)) == 1


async def test_a_send_text_is_checked_with_the_compliance_lexicon(harness: Harness) -> None:
    await customers(harness)
    (refused,) = await harness.admin("/send tier:vip 这款茶包治百病，快来买", group=False)
    assert "没有通过合规检查" in refused and "包治百病" in refused and "/confirm" not in refused
    assert await count(harness.app, CampaignSend) == 0
    (prompt,) = await harness.admin("/send tier:vip 这是我们最好的白茶", group=False)
    assert "⚠️" in prompt and "最好的" in prompt and "/confirm" in prompt  # a review term: a warning only
