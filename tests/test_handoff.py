"""Human handoff (转人工) through the pipeline: messages in, deliveries out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.handoff import HANDOFF
from bot.handoff.models import Handoff
from bot.senders.base import Delivery
from bot.storage.models import ScheduledTask
from bot.testing import Harness

ON_DUTY = '["duty01"]'


@pytest.fixture
def handoff_config(make_config: Callable[..., Config]) -> Config:
    return make_config(HANDOFF__ON_DUTY=ON_DUTY, HANDOFF__ESCALATE_TO='["boss01"]', HANDOFF__ESCALATE_AFTER_MIN="15",
                       CONSOLE__PUBLIC_URL="https://bot.example.com")


@pytest.fixture
async def h(make_bot: Callable[..., BotApp], handoff_config: Config) -> AsyncIterator[Harness]:
    app = make_bot(cfg=handoff_config)
    await app.start()
    try:
        harness = Harness(app)
        await harness.admin("/role grant @op01 operator")
        yield harness
    finally:
        await app.stop()


def kinds(sent: list[Delivery]) -> list[tuple[str, tuple[str, ...]]]:
    return [(d.kind, tuple(d.to)) for d in sent]


async def handoffs(app: BotApp) -> list[Handoff]:
    async with app.db.read() as s:
        return list((await s.execute(select(Handoff).order_by(Handoff.id))).scalars().all())


async def op(h: Harness, text: str, **kw: object) -> list[Delivery]:
    kw.setdefault("sender", "op01")
    kw.setdefault("name", "小林")
    kw.setdefault("staff", True)
    kw.setdefault("group", False)
    return await h.say(text, **kw)  # type: ignore[arg-type]


async def test_one_to_one_request_tells_the_member_and_the_on_duty_staff_once(h: Harness) -> None:
    sent = await h.say("你好，我要转人工", group=False)
    assert kinds(sent) == [("app_message", ("duty01",)), ("reply", ("wmAlice",))]
    notice, told = sent[0].text, sent[1].text
    assert "【转人工 #1】Alice（wmAlice，潜客）在私聊要求人工" in notice and "你好，我要转人工" in notice
    assert "https://bot.example.com/console/handoffs?id=1" in notice
    assert "已经为您转接人工客服" in told and "15 分钟内" in told and "先不自动回答" in told
    again = await h.say("转人工！！", group=False)
    assert kinds(again) == [("reply", ("wmAlice",))]   # reminded, nobody told twice
    assert "已经在为您转接人工客服" in again[0].text
    rows = await handoffs(h.app)
    assert len(rows) == 1 and rows[0].status == "open" and rows[0].notified == ["duty01"]
    assert [m["text"] for m in rows[0].messages] == ["你好，我要转人工", "转人工！！"]


async def test_group_complaint_without_mention_opens_one_and_tells_the_group_owner(h: Harness) -> None:
    await h.admin("/group owner @staff07", chat="g1")
    sent = await h.say("我要投诉，茶叶收到是碎的", mention=False)
    assert kinds(sent) == [("app_message", ("staff07",)), ("reply", ("wmAlice",))]
    assert "在群「新人群」要求人工" in sent[0].text and "触发词：投诉" in sent[0].text
    assert sent[1].chat["id"] == "g1" and sent[1].destination.get("mention") == ["wmAlice"]
    (row,) = await handoffs(h.app)
    assert (row.member_id, row.chat_id, row.reason, row.trigger) == ("wmAlice", "g1", "request", "投诉")


async def test_one_to_one_the_staff_member_who_added_the_contact_is_told(h: Harness) -> None:
    await h.add_contact("wmCarol", "Carol", staff="staff05")
    sent = await h.say("找真人", group=False, sender="wmCarol", name="Carol")
    assert kinds(sent) == [("app_message", ("staff05",)), ("reply", ("wmCarol",))]


async def test_anger_opens_one_and_a_plain_question_or_a_negation_does_not(h: Harness) -> None:
    assert await handoffs(h.app) == []
    await h.say("不用转人工了，谢谢", group=False)
    await h.say("退钱要几天到账", group=False)
    assert await handoffs(h.app) == []
    sent = await h.say("你们就是骗子", group=False, sender="wmBob", name="B\u202eob")
    assert ("app_message", ("duty01",)) in kinds(sent)
    assert "情绪激动" in sent[0].text and "触发词：骗子" in sent[0].text
    assert "Bob（wmBob" in sent[0].text                             # the name without its bidi override


async def test_nobody_answering_asks_for_a_person(h: Harness) -> None:
    """「人呢？？怎么没人回」 is a customer waiting for a person, not a question for the knowledge base."""
    sent = await h.say("人呢？？？怎么没人回", group=False, sender="wmDan", name="Dan")
    assert kinds(sent) == [("app_message", ("duty01",)), ("reply", ("wmDan",))]
    assert "触发词：没人回" in sent[0].text and "已经为您转接人工客服" in sent[1].text


async def test_staff_never_open_one(h: Harness) -> None:
    await h.say("客户说要投诉，我来转人工处理", sender="staff02", name="王姐", staff=True, mention=False)
    await h.say("转人工", sender="staff02", name="王姐", staff=True, group=False)
    assert await handoffs(h.app) == []


async def test_out_of_working_hours_the_member_is_told_when_someone_answers(h: Harness, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))   # 23:00 in Shanghai
    sent = await h.say("人工客服", group=False)
    told = next(d.text for d in sent if d.kind == "reply")
    assert "下班时间" in told and "09:00-21:00" in told and "明天 09:00" in told
    notice = next(d.text for d in sent if d.kind == "app_message")
    assert "非服务时间" in notice
    clock.set(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))   # 01:00 next day: the next opening is "today"
    sent = await h.say("真人在吗", group=False, sender="wmBob", name="Bob")
    assert "今天 09:00" in next(d.text for d in sent if d.kind == "reply")


async def test_the_knowledge_base_stays_silent_while_open_and_answers_after_close(h: Harness) -> None:
    assert await h.say_texts("怎么退款", group=False)              # the knowledge base answers before
    await h.say("转人工", group=False)
    assert await h.say("怎么退款", group=False) == []
    assert await h.say("怎么退款", mention=True) == []             # in a group, @-mentioning the bot
    assert await h.say("积分", group=False) == []                   # no suggestions either
    assert await h.say_texts("怎么退款", group=False, sender="wmBob", name="Bob")   # others are still answered
    (row,) = await handoffs(h.app)
    assert row.follow_ups == 3
    await op(h, "/handoff close 1")
    assert await h.say_texts("怎么退款", group=False)


async def test_take_and_close_tell_the_member_and_answer_staff_privately(h: Harness, clock: FakeClock) -> None:
    await h.say("我要投诉", mention=False)
    clock.advance(timedelta(minutes=7))
    (listing,) = await op(h, "/handoff list")
    assert "#1 Alice · 群「新人群」 · 等待 7 分钟" in listing.text and "「我要投诉」" in listing.text
    sent = await op(h, "/handoff take 1", group=True, chat="g1")   # typed in the customer group
    by_kind = {d.kind: d for d in sent}
    assert by_kind["app_message"].to == ["op01"] and "已接手 #1" in by_kind["app_message"].text
    member = [d for d in sent if d.kind == "reply" and d.to == ["wmAlice"]]
    assert len(member) == 1 and "客服「小林」已经接手" in member[0].text
    assert not any("已接手" in d.text for d in sent if d.kind == "reply")   # staff's answer stays out of the group
    (listing,) = await op(h, "/转人工 列表")
    assert "小林" not in listing.text and "op01 处理中" in listing.text
    sent = await op(h, "/handoff close 1")
    assert sorted(kinds(sent)) == [("reply", ("op01",)), ("reply", ("wmAlice",))]
    closed = {tuple(d.to): d.text for d in sent}
    assert "本次人工服务已结束" in closed[("wmAlice",)] and "已结束 #1" in closed[("op01",)]
    (row,) = await handoffs(h.app)
    assert (row.status, row.taken_by, row.closed_by, row.open_key) == ("closed", "op01", "op01", None)


async def test_bad_arguments_get_chinese_usage_and_change_nothing(h: Harness) -> None:
    await h.say("转人工", group=False)
    (unknown,) = await op(h, "/handoff take 99")
    assert "没有编号为 #99" in unknown.text and "/handoff take" in unknown.text
    (typo,) = await op(h, "/handoff take abc")
    assert "/handoff take" in typo.text
    await op(h, "/handoff close 1")
    before = await handoffs(h.app)
    sent = await op(h, "/handoff close 1")
    assert len(sent) == 1 and "#1 已经结束了" in sent[0].text and "op01 结束" in sent[0].text
    (again,) = await op(h, "/handoff take 1")
    assert "已经结束" in again.text
    after = await handoffs(h.app)
    assert [(r.status, r.closed_at, r.taken_by) for r in after] == [(r.status, r.closed_at, r.taken_by) for r in before]
    (denied,) = await h.say_texts("/handoff list", group=False, sender="wmBob", name="Bob")
    assert "需要运营权限" in denied


async def test_an_untaken_handoff_escalates_exactly_once(h: Harness, clock: FakeClock) -> None:
    await h.say("转人工", group=False)
    await h.say("我要投诉", group=False, sender="wmBob", name="Bob")
    await op(h, "/handoff take 2")
    clock.advance(timedelta(minutes=14))
    assert [d for d in await h.settle() if d.to == ["boss01"]] == []
    clock.advance(timedelta(minutes=2))
    sent = await h.settle()
    assert kinds(sent) == [("app_message", ("boss01",))]           # #2 was taken: only #1 escalates
    assert "【转人工超时 #1】" in sent[0].text and "已等待 16 分钟" in sent[0].text and "duty01" in sent[0].text
    clock.advance(timedelta(minutes=30))
    assert await h.settle() == []
    service = h.app.get(HANDOFF)
    async with h.app.db.session() as s:                           # the timer run again: still once
        await service.escalate(s, {"id": 1}, None)
    assert await h.settle() == []
    rows = await handoffs(h.app)
    assert rows[0].escalated_at is not None and rows[1].escalated_at is None
    async with h.app.db.read() as s:
        tasks = (await s.execute(select(func.count()).select_from(ScheduledTask))).scalar_one()
    assert tasks == 2


async def test_off_hours_escalation_counts_from_the_next_opening(h: Harness, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))   # 23:00 in Shanghai
    await h.say("转人工", group=False)
    clock.set(datetime(2026, 11, 24, 1, 10, tzinfo=UTC))   # 09:10: ten minutes of working time
    assert await h.settle() == []
    assert await h.say("怎么退款", group=False) == []          # still left to staff overnight and in the morning
    clock.set(datetime(2026, 11, 24, 1, 16, tzinfo=UTC))
    assert kinds(await h.settle()) == [("app_message", ("boss01",))]


async def test_the_hold_runs_out_and_the_member_is_back_with_the_bot(h: Harness, clock: FakeClock) -> None:
    await h.say("转人工", group=False)
    assert await h.say("怎么退款", group=False) == []
    clock.advance(timedelta(hours=4, minutes=1))
    assert await h.say_texts("怎么退款", group=False)
    (listing,) = await op(h, "/handoff list")
    assert "没有等待人工的客户" in listing.text
    sent = await h.say("还是要转人工", group=False)                  # a new one, told again
    assert ("app_message", ("duty01",)) in kinds(sent)
    assert [r.status for r in await handoffs(h.app)] == ["closed", "open"]


async def test_the_console_calls_the_same_service(h: Harness, clock: FakeClock) -> None:
    from bot.effects import Effects
    from bot.handoff.service import HandoffError

    await h.say("转人工", group=False)
    clock.advance(timedelta(minutes=3))
    service = h.app.get(HANDOFF)
    async with h.app.db.session() as s:
        items, total = await service.list_open(s)
        assert total == 1 and items[0].waited_min == 3 and items[0].member == "Alice"
        fx = Effects(h.app, s, source="console:take")
        taken, before = await service.take(fx, 1, "op02", "小周")
        assert taken.status == "taken" and before == ""
        with pytest.raises(HandoffError) as exc:
            await service.take(fx, 1, "op02", "小周")
        assert "已经由您接手" in exc.value.text
    fx.kick()
    sent = await h.settle()
    (told,) = [d.text for d in sent if d.to == ["wmAlice"]]
    assert told == "Alice，客服「小周」已经接手您的问题，会直接和您联系，请留意消息～"


async def test_a_handoff_opened_in_a_batch_holds_the_next_events_of_that_batch(h: Harness) -> None:
    """The live holds are read once per transaction: the handoff the first event opens keeps the knowledge
    base away from the member's next message in the same batch, and once it is closed the bot answers again."""
    app = h.app
    for text in ("我要转人工", "怎么退款"):
        await app.accept_event(h.message(text, group=False))
    assert await app.inbox_pump.drain_once() == 2  # one batch
    sent = await h.settle()
    assert kinds(sent) == [("app_message", ("duty01",)), ("reply", ("wmAlice",))]
    assert "已经为您转接人工客服" in sent[1].text
    (row,) = await handoffs(app)
    assert [m["text"] for m in row.messages] == ["我要转人工", "怎么退款"]

    await op(h, f"/handoff close {row.id}")  # committed: the next transaction reads the holds again
    sent = await h.say("怎么退款", group=False)
    assert kinds(sent) == [("reply", ("wmAlice",))] and "转接人工" not in sent[0].text  # the bot answers again
