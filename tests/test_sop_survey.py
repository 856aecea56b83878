"""Satisfaction surveys (``via: survey``) through the pipeline: the question 1:1, scores read from replies, the
detractor's reason and the owner's alert, the re-ask, the window, the knowledge base kept out, /nps and the report."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.events import Actor, Chat, MemberJoined, MessageEvent
from bot.insights import INSIGHTS
from bot.insights.period import Period
from bot.knowledge.models import KbMiss, KbOutcomeDay
from bot.members import MEMBERS
from bot.senders.base import Delivery
from bot.senders.wecom import WeComSender
from bot.sop.models import SopStep, SopSurvey
from bot.sop.script import SURVEY_QUESTION, parse_script
from bot.sop.survey import parse_score
from bot.testing import Harness
from bot.testing.fake_wecom import FakeWeCom
from bot.yamldoc import FileProblems
from tests.sop_support import SH, at, sop_config, sop_sent, started, write_scripts

SCRIPTS = {
    "nps.yaml": """
        id: nps-join
        name: 进群满意度
        trigger: member_joined
        per: member
        quiet_hours: "off"
        steps:
          - id: welcome
            at: "+0m"
            text: 欢迎 {{ member.name }}
          - id: ask
            at: "+1h"
            via: survey
            window: 24h
            reason: "{{ member.name }}，能说说哪里不满意吗？"
        """,
    "contact.yaml": """
        id: nps-contact
        name: 加好友满意度
        trigger: contact_added
        where: {states: [nps]}
        quiet_hours: "off"
        steps:
          - {id: ask, at: "+1h", via: survey}
        """,
}


@pytest.fixture
async def h(make_bot: Callable[..., BotApp], make_config: Callable[..., Config], tmp_path: Path) -> Harness:
    cfg = sop_config(make_config, write_scripts(tmp_path / "sop", SCRIPTS), SOP__SURVEY_ALERT_TO='["lead01"]')
    harness = Harness(await started(make_bot, cfg))
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    await harness.admin("/role grant @op01 operator")
    return harness


async def asked(h: Harness, member: str = "bob01", name: str = "Bob") -> Delivery:
    """The member joins; an hour later the survey question goes to them 1:1."""
    await h.join(member, name, chat="g1", chat_name="禾屿茶友会1群")
    h.app.clock.advance(timedelta(hours=1))
    (question,) = sop_sent(await h.settle())
    return question


async def reply(h: Harness, text: str, member: str = "bob01", name: str = "Bob") -> list[Delivery]:
    return await h.say(text, group=False, sender=member, name=name)


async def surveys(app: BotApp) -> list[Any]:
    t = SopSurvey.__table__
    async with app.db.read() as s:
        return list((await s.execute(select(t).order_by(t.c.id))).all())


async def kb_seen(app: BotApp) -> int:
    """How many messages the knowledge base has judged (answered, suggested, missed …) and its misses."""
    async with app.db.read() as s:
        outcomes = (await s.execute(select(func.coalesce(func.sum(KbOutcomeDay.__table__.c.count), 0)))).scalar()
        misses = (await s.execute(select(func.count()).select_from(KbMiss.__table__))).scalar()
    return int(outcomes or 0) + int(misses or 0)


@pytest.mark.parametrize(("text", "score"), [
    ("9", 9), ("9分", 9), ("10分", 10), ("十分", 10), ("满分！", 10), ("九", 9), ("九分", 9), ("零分", 0),
    ("给个8分吧", 8), ("嗯…我觉得 7 分吧", 7), ("０", 0), ("１０", 10), ("买了3盒，给9分", 9),
    ("11", None), ("9.5", None), ("一般般吧", None), ("8分或者9分", None), ("明天9点再说", None), ("", None),
    ("还行", None), ("十一分", None),
])
def test_scores_read_from_replies(text: str, score: int | None) -> None:
    assert parse_score(text) == score


async def test_the_question_goes_1to1_and_a_promoter_is_thanked(h: Harness) -> None:
    question = await asked(h)
    assert question.kind == "reply" and question.chat_id == "bob01" and question.to == ["bob01"]
    assert question.text == SURVEY_QUESTION
    before = await kb_seen(h.app)
    (thanks,) = await reply(h, "9")
    assert thanks.to == ["bob01"] and "感谢" in thanks.text
    (row,) = await surveys(h.app)
    assert (row.member_id, row.script_id, row.chat_id, row.score, row.answer, row.state) == (
        "bob01", "nps-join", "g1", 9, "9", "done")
    assert row.answered_at is not None and row.open_until is None
    assert await kb_seen(h.app) == before          # the score was not a question, nor a miss


@pytest.mark.parametrize(("text", "score"), [("十分", 10), ("给个8分吧", 8)])
async def test_chinese_and_chatty_scores_are_stored_and_kept_from_the_knowledge_base(h: Harness, text: str,
                                                                                      score: int) -> None:
    await asked(h)
    before = await kb_seen(h.app)
    (thanks,) = await reply(h, text)                # without the survey the knowledge base would answer these
    assert "感谢" in thanks.text or "谢谢" in thanks.text
    (row,) = await surveys(h.app)
    assert row.score == score and row.state == "done"
    assert await kb_seen(h.app) == before


async def test_a_detractor_is_asked_why_and_the_owner_told_with_score_tier_and_then_the_comment(h: Harness) -> None:
    await h.add_contact("bob01", "Bob", staff="staff07")       # Bob's owner
    await asked(h)
    sent = await reply(h, "3")
    why = next(d for d in sent if d.kind == "reply")
    assert why.text == "Bob，能说说哪里不满意吗？" and why.to == ["bob01"]
    (alert,) = [d for d in sent if d.kind == "app_message"]
    assert alert.to == ["staff07"] and "打了 3 分" in alert.text and "Bob（bob01，" in alert.text
    (row,) = await surveys(h.app)
    assert row.state == "commenting" and row.score == 3
    before = await kb_seen(h.app)
    sent = await reply(h, "茶叶收到时包装破了，客服回复太慢")
    (alert,) = [d for d in sent if d.kind == "app_message"]
    assert alert.to == ["staff07"] and "原因" in alert.text and "包装破了" in alert.text
    assert any(d.kind == "reply" and "收到您的意见" in d.text for d in sent)
    (row,) = await surveys(h.app)
    assert (row.comment, row.state) == ("茶叶收到时包装破了，客服回复太慢", "done") and row.commented_at is not None
    assert await kb_seen(h.app) == before          # the comment is not a question either
    await reply(h, "怎么退款")                       # afterwards: ordinary chat again
    assert await kb_seen(h.app) == before + 1


async def test_without_an_owner_the_configured_list_is_told_with_the_tier(h: Harness) -> None:
    await asked(h, "dan01", "Dan")
    sent = await reply(h, "零分", "dan01", "Dan")
    (alert,) = [d for d in sent if d.kind == "app_message"]
    assert alert.to == ["lead01"] and "打了 0 分" in alert.text
    async with h.app.db.read() as s:
        profile = await h.app.get(MEMBERS).profile(s, "dan01")
    assert profile is not None and profile.tier_name and f"Dan（dan01，{profile.tier_name}）" in alert.text


async def test_a_reply_that_is_no_score_gets_one_reask_then_is_ordinary_chat(h: Harness) -> None:
    await asked(h)
    before = await kb_seen(h.app)
    (again,) = await reply(h, "11")
    assert "0–10" in again.text and "再确认" in again.text
    assert await kb_seen(h.app) == before
    (row,) = await surveys(h.app)
    assert row.state == "reasked" and row.score is None
    await reply(h, "怎么退款")                       # no second re-ask: the knowledge base has it
    assert await kb_seen(h.app) == before + 1
    await reply(h, "8分")                           # a score inside the window still counts
    (row,) = await surveys(h.app)
    assert row.score == 8 and row.state == "done"


async def test_a_reply_after_the_window_is_ordinary_chat(h: Harness) -> None:
    await asked(h)
    h.app.clock.advance(timedelta(hours=24, minutes=1))
    before = await kb_seen(h.app)
    await reply(h, "给个8分吧")
    assert await kb_seen(h.app) == before + 1      # the knowledge base saw it
    (row,) = await surveys(h.app)
    assert row.score is None and row.state == "asked"


async def test_group_messages_and_other_members_are_not_answers(h: Harness) -> None:
    await asked(h)
    await h.say("9", sender="bob01", name="Bob", chat="g1", mention=False)     # in the group
    await reply(h, "9", "wmEve", "Eve")                                          # someone never asked
    (row,) = await surveys(h.app)
    assert row.score is None and row.state == "asked"


async def test_nps_against_a_hand_count_and_the_report_block(h: Harness) -> None:
    clock = h.app.clock
    answers = {"u-A": "10", "u-B": "9分", "u-C": "满分", "u-D": "8", "u-E": "六分", "u-F": "2"}
    for member, text in answers.items():
        await asked(h, member, member[2:])
        await reply(h, text, member, member[2:])
    await reply(h, "发货太慢了", "u-F", "F")
    # hand count: promoters A B C = 3, passives D = 1, detractors E F = 2 → (3 - 2) / 6 = 16.7
    text = "\n".join(await h.say_texts("/nps 7天", sender="op01", name="运营", staff=True, group=False))
    assert "NPS：16.7（6 份回答）" in text
    assert "推荐者（9–10 分）：3 人" in text and "中立者（7–8 分）：1 人" in text and "贬损者（0–6 分）：2 人" in text
    assert text.index("F（2 分") < text.index("E（6 分") and "发货太慢了" in text and "还没说原因" in text
    # in a group: answered 1:1 to the operator
    sent = await h.say("/满意度 7天", sender="op01", name="运营", staff=True, chat="g1")
    assert any(d.kind == "app_message" and d.to == ["op01"] and "NPS：16.7" in d.text for d in sent)
    stats = "\n".join(await h.say_texts("/stats 7天", sender="op01", name="运营", staff=True, group=False))
    assert "NPS：16.7（上期 —；6 份，推荐 3 / 中立 1 / 贬损 2）" in stats
    # the report: this week against the one before (no answers then)
    today = clock.now().astimezone(SH).date()
    report = await _report(h.app, Period(today - timedelta(days=6), today, SH))
    assert report["nps"] == {"available": True, "score": 16.7, "responses": 6, "promoters": 3, "passives": 1,
                             "detractors": 2, "previous": {"available": False, "score": None, "responses": 0,
                                                           "promoters": 0, "passives": 0, "detractors": 0}}
    later = Period(today + timedelta(days=7), today + timedelta(days=13), SH)
    assert (await _report(h.app, later))["nps"]["previous"]["score"] == 16.7


async def _report(app: BotApp, period: Period) -> dict[str, Any]:
    return await app.get(INSIGHTS).report(period)


@pytest.mark.parametrize("arg", ["0天", "400天", "abc", "-3"])
async def test_nps_bad_input_gets_the_usage(h: Harness, arg: str) -> None:
    (text,) = await h.say_texts(f"/nps {arg}", sender="op01", name="运营", staff=True, group=False)
    assert "用法：/nps [N天]" in text and "1 到 366" in text


async def test_members_may_not_read_nps(h: Harness) -> None:
    texts = [d.text for d in await reply(h, "/nps")]
    assert texts and not any("NPS：" in t for t in texts)


def test_a_survey_in_a_group_script_or_window_elsewhere_is_refused(tmp_path: Path) -> None:

    bad = """
        id: bad
        name: 坏
        trigger: group_created
        steps:
          - {at: "+0m", via: survey}
          - {at: "+1h", text: 你好, window: 48h}
          - {at: "+2h", via: survey, window: 10m}
        """
    with pytest.raises(FileProblems) as err:
        parse_script(textwrap.dedent(bad), "bad.yaml")
    text = str(err.value)
    assert "via: survey 私聊问一位成员，只能用于 per: member" in text
    assert "window / reason 只用于 via: survey" in text and "window 应在 1h 到 30d 之间" in text


async def test_through_wecom_the_question_the_reason_and_the_alert_are_sent(
        make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], fake_wecom: FakeWeCom,
        clock: FakeClock, tmp_path: Path) -> None:
    cfg = sop_config(wecom_config, write_scripts(tmp_path / "sop", SCRIPTS), SOP__SURVEY_ALERT_TO='["lead01"]')
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock))
    await app.start()
    at(clock, 2026, 11, 23, 10, 0)
    await app.accept_event(MemberJoined(key="j1", time=clock.now(), channel="test", chat=Chat(id="g1", name="茶友群"),
                                        member=Actor(id="zhangsan", name="张三")))
    await app.settle()
    clock.advance(timedelta(hours=1))
    await app.settle()
    await app.accept_event(MessageEvent(key="m1", time=clock.now(), channel="test", text="3分",
                                        chat=Chat(id="zhangsan", type="single", name="张三"),
                                        sender=Actor(id="zhangsan", name="张三")))
    await app.settle()
    sent = [(r.body["touser"], r.body["text"]["content"]) for r in fake_wecom.delivered("message/send")]
    assert ("zhangsan", SURVEY_QUESTION) in sent
    assert ("zhangsan", "张三，能说说哪里不满意吗？") in sent
    assert any(to == "lead01" and "打了 3 分" in text for to, text in sent)


async def test_an_external_contact_is_asked_in_the_group_and_answers_there(h: Harness) -> None:
    question = await asked(h, "wmCarol", "Carol")
    assert question.chat_id == "g1" and question.destination["mention"] == ["wmCarol"]
    assert question.text == SURVEY_QUESTION
    await reply(h, "9", "wmCarol", "Carol")          # 1:1 is not where the question was asked
    (row,) = await surveys(h.app)
    assert row.score is None
    before = await kb_seen(h.app)
    (thanks,) = await h.say("十分", sender="wmCarol", name="Carol", chat="g1", chat_name="禾屿茶友会1群")
    assert thanks.chat_id == "g1" and thanks.destination.get("mention") == ["wmCarol"] and "感谢" in thanks.text
    (row,) = await surveys(h.app)
    assert (row.asked_in, row.score, row.state) == ("g1", 10, "done")
    assert await kb_seen(h.app) == before           # @-mentioning the bot, the knowledge base would have answered
    await h.say("十分", sender="wmCarol", name="Carol", chat="g1", chat_name="禾屿茶友会1群")
    assert await kb_seen(h.app) == before + 1       # answered once: the next is ordinary chat


async def test_an_external_contact_without_a_group_is_recorded_not_asked(h: Harness) -> None:
    await h.add_contact("wmCarol", "Carol", staff="staff01", state="nps")
    h.app.clock.advance(timedelta(hours=1))
    assert sop_sent(await h.settle()) == []
    async with h.app.db.read() as s:
        outcome = (await s.execute(select(SopStep.__table__.c.outcome).where(
            SopStep.__table__.c.step_key == "ask"))).scalar()
    assert outcome == "external" and await surveys(h.app) == []


async def test_a_check_in_while_a_survey_waits_is_a_check_in(h: Harness) -> None:
    await asked(h, "wmCarol", "Carol")
    sent = await h.say("打卡 白牡丹 清甜", sender="wmCarol", name="Carol", chat="g1", chat_name="禾屿茶友会1群",
                       mention=False)
    assert not any("再确认" in d.text for d in sent)
    (row,) = await surveys(h.app)
    assert (row.state, row.score) == ("asked", None)


async def test_an_external_detractor_in_a_group_is_told_to_the_group_owner(h: Harness) -> None:
    await h.admin("/group owner @staff02", chat="g1", chat_name="禾屿茶友会1群")
    await asked(h, "wmCarol", "Carol")
    sent = await h.say("给5分", sender="wmCarol", name="Carol", chat="g1", chat_name="禾屿茶友会1群", mention=False)
    (alert,) = [d for d in sent if d.kind == "app_message"]
    assert alert.to == ["staff02"] and "打了 5 分" in alert.text
    (why,) = [d for d in sent if d.kind == "reply"]
    assert why.text == "Carol，能说说哪里不满意吗？" and why.destination.get("mention") == ["wmCarol"]


async def test_a_score_answers_the_survey_asked_after_the_suggestions(h: Harness) -> None:
    """「您是不是想问」 still open when the survey asks: the number is the score, not a pick (and not 「已过期」)."""
    await h.join("bob01", "Bob", chat="g1", chat_name="禾屿茶友会1群")
    h.app.clock.advance(timedelta(minutes=58))
    (offer,) = await reply(h, "积分")
    assert "回复数字" in offer.text
    h.app.clock.advance(timedelta(minutes=2))
    (question,) = sop_sent(await h.settle())
    assert question.text == SURVEY_QUESTION
    reason, alert = await reply(h, "2")            # a detractor's score: the survey asks why, the owner is told
    assert alert.to == ["lead01"] and "2 分" in alert.text
    assert reason.text == "Bob，能说说哪里不满意吗？"
    (row,) = await surveys(h.app)
    assert (row.score, row.state) == (2, "commenting")


async def test_a_number_picks_from_suggestions_offered_after_the_survey(h: Harness) -> None:
    """The list offered after the survey's question takes the number; the survey waits for the next reply."""
    await asked(h)
    (reask,) = await reply(h, "积分")             # no score: asked once more
    assert "0–10" in reask.text
    h.app.clock.advance(timedelta(minutes=1))
    (offer,) = await reply(h, "积分")             # then ordinary chat: the knowledge base offers a list
    assert "回复数字" in offer.text
    h.app.clock.advance(timedelta(minutes=1))
    (answer,) = await reply(h, "1")
    assert "感谢" not in answer.text and "回复数字" not in answer.text
    (row,) = await surveys(h.app)
    assert (row.score, row.state) == (None, "reasked")
    (thanks,) = await reply(h, "9")
    assert "感谢" in thanks.text
    (row,) = await surveys(h.app)
    assert (row.score, row.state) == (9, "done")
