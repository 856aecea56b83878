"""Alerts end to end: watched messages, routing, dedup, escalation, digest, reviewer and /word commands."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.compliance import MODERATION
from bot.compliance.store import ALERTS, MESSAGES
from bot.config import Config
from bot.testing import Harness

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mod_config(make_config: Callable[..., Config]) -> Config:
    return make_config(MODERATION__REVIEWERS='["rev01"]', MODERATION__ESCALATE_TO='["boss01"]',
                       MODERATION__ESCALATE_AFTER_H="4", MODERATION__GROUP_OWNER_FALLBACK='["owner01"]',
                       MODERATION__ARCHIVE_SECRET="archive-secret")


@pytest.fixture
async def mbot(make_bot: Callable[..., BotApp], mod_config: Config) -> AsyncIterator[BotApp]:
    app = make_bot(cfg=mod_config)
    await app.start()
    yield app


@pytest.fixture
def h(mbot: BotApp) -> Harness:
    return Harness(mbot)


async def alerts(app: BotApp) -> list[Any]:
    async with app.db.read() as s:
        return list((await s.execute(select(ALERTS).order_by(ALERTS.c.id))).all())


async def staff_says(h: Harness, text: str, **kw: Any) -> list[Any]:
    kw.setdefault("sender", "staff01")
    kw.setdefault("name", "张三")
    kw.setdefault("staff", True)
    kw.setdefault("mention", False)
    return await h.say(text, **kw)


async def test_staff_message_in_a_group_raises_an_alert_with_context(h: Harness, mbot: BotApp) -> None:
    await h.say("请问这款茶怎么泡？", mention=False)
    await h.say("多少钱一盒", sender="wmBob", name="Bob", mention=False)
    sent = await staff_says(h, "您好，加 我 v x 吧，私下给您优惠")
    rows = await alerts(mbot)
    assert len(rows) >= 1
    a = next(r for r in rows if r.term == "加我微信")
    assert (a.sender_id, a.chat_id, a.category, a.level, a.stage, a.audience) == \
        ("staff01", "g1", "私下联系", "reject", "variant", "staff")
    assert a.matched == "加 我 v x" and a.normalised == "加我vx"
    assert a.text[a.span_start:a.span_end] == a.matched
    assert a.lexicon_version == mbot.get(MODERATION).matcher.version
    assert [c["text"] for c in a.context] == ["请问这款茶怎么泡？", "多少钱一盒"]
    assert a.status == "open"
    kinds = {(d.kind, tuple(d.to), d.destination.get("robot")) for d in sent}
    assert ("group_robot", (), "compliance") in kinds
    assert ("app_message", ("rev01",), None) in kinds
    robot = next(d for d in sent if d.kind == "group_robot")
    for piece in ("张三", "staff01", "新人群", "加我微信", "加 我 v x", "请问这款茶怎么泡", f"/alerts ack {a.id}"):
        assert piece in robot.text
    # the chat itself hears nothing from moderation
    assert not any(d.kind == "reply" for d in sent)


async def test_clean_staff_messages_and_commands_raise_nothing(h: Harness, mbot: BotApp) -> None:
    await staff_says(h, "用微信支付就可以，付款后自动发货")
    await staff_says(h, "他在群里很有威信")
    await h.admin("/word list", mention=False)
    assert await alerts(mbot) == []


async def test_customer_message_goes_to_the_group_owner_not_compliance(h: Harness, mbot: BotApp) -> None:
    sent = await h.say("宝妈兼职日结，扫码领取福利", sender="wmSpam", name="广告哥", mention=False)
    rows = await alerts(mbot)
    assert rows and all(r.audience == "customer" for r in rows)
    assert {r.category for r in rows} <= {"广告", "垃圾链接", "辱骂", "联系方式", "链接"}
    assert [d.kind for d in sent if d.kind in ("group_robot", "app_message")] == ["app_message"]
    assert sent[-1].to == ["owner01"] and "群防骚扰" in sent[-1].text
    # once the tiers feature knows the owner, the owner is told
    await h.admin("/group owner @lisi")
    sent = await h.say("招代理，一件代发", sender="wmSpam2", name="广告妹", mention=False)
    assert [d.to for d in sent if d.kind == "app_message"] == [["lisi"]]
    # a customer's 1:1 chat with the bot is not watched
    await h.say("加我微信", sender="wmCarol", group=False)
    assert all(r.sender_id != "wmCarol" for r in await alerts(mbot))


async def test_a_customer_writing_staff_words_is_not_a_compliance_alert(h: Harness, mbot: BotApp) -> None:
    sent = await h.say("加我微信，我发你截图", sender="wmDan", name="Dan", mention=False)
    assert await alerts(mbot) == []
    assert not any(d.kind == "group_robot" for d in sent)


async def test_dedup_window_per_staff_term_chat(h: Harness, mbot: BotApp, clock: FakeClock) -> None:
    first = await staff_says(h, "加我微信")
    again = await staff_says(h, "加我微信哈")
    rows = [r for r in await alerts(mbot) if r.term == "加我微信"]
    assert len(rows) == 1 and rows[0].repeats == 1
    assert any(d.kind == "group_robot" for d in first)
    assert not any(d.kind in ("group_robot", "app_message") for d in again)
    other_chat = await staff_says(h, "加我微信", chat="g2", chat_name="VIP群")
    assert any(d.kind == "group_robot" for d in other_chat)
    clock.advance(timedelta(minutes=31))
    later = await staff_says(h, "加我微信")
    assert any(d.kind == "group_robot" for d in later)
    assert len([r for r in await alerts(mbot) if r.term == "加我微信"]) == 3


async def test_unacknowledged_reject_is_escalated(h: Harness, mbot: BotApp, clock: FakeClock) -> None:
    await staff_says(h, "好评返现5元，转账给我")
    rows = await alerts(mbot)
    rejects = [r for r in rows if r.level == "reject"]
    assert len(rejects) >= 2
    await h.admin(f"/alerts ack {rejects[0].id}", mention=False)
    clock.advance(timedelta(hours=3))
    assert not [d for d in await h.settle() if "boss01" in d.to]
    clock.advance(timedelta(hours=1, minutes=1))
    escalated = [d for d in await h.settle() if d.to == ["boss01"]]
    assert len(escalated) == len(rejects) - 1
    assert "合规升级" in escalated[0].text and f"#{rejects[1].id}" in escalated[0].text
    by_id = {r.id: r for r in await alerts(mbot)}
    assert by_id[rejects[0].id].escalated_at is None and by_id[rejects[1].id].escalated_at is not None
    clock.advance(timedelta(hours=5))
    assert not [d for d in await h.settle() if d.to == ["boss01"]]


async def test_daily_digest(h: Harness, mbot: BotApp, clock: FakeClock) -> None:
    await staff_says(h, "加我微信吧")
    await staff_says(h, "这款是全网第一", sender="staff02", name="李四")
    await staff_says(h, "今天的直播讲冲泡方法，大家准时来", sender="staff02", name="李四")
    clock.advance(timedelta(hours=23, minutes=30))  # 10:00 → 09:30 next day: the 09:00 digest covers them
    assert await mbot.scheduler.fire("moderation-digest", at=clock.now())
    sent = await h.settle()
    digest = [d for d in sent if "合规日报" in d.text]
    assert {d.kind for d in digest} == {"group_robot", "app_message"}
    text = digest[0].text
    for piece in ("新增预警 2 条", "私下联系 1", "广告法/夸大宣传 1", "张三 1", "李四 1", "加我微信×1", "待处理 2 条",
                  "本周关键词分析", "直播"):
        assert piece in text, text
    assert not await mbot.scheduler.fire("moderation-digest", at=clock.now())  # once per firing


async def test_reviewer_commands_and_roles(h: Harness, mbot: BotApp) -> None:
    await staff_says(h, "有事发微信，我用微信支付给你转")
    rows = await alerts(mbot)
    a = next(r for r in rows if r.term == "微信")
    denied = await h.say_texts("/alerts", sender="rev01", name="王审核", staff=True, group=False)
    assert "需要" in denied[0] and "权限" in denied[0]
    await h.admin("/role grant @rev01 reviewer", group=False)
    say = lambda text: h.say_texts(text, sender="rev01", name="王审核", staff=True, group=False)  # noqa: E731
    listing = (await say("/alerts"))[0]
    assert f"#{a.id}" in listing and "待处理" in listing
    shown = (await say(f"/alerts show {a.id}"))[0]
    for piece in ("张三", "新人群", "微信", "原文", "【微信】"):
        assert piece in shown
    acked = (await say(f"/alerts ack {a.id} 已联系员工"))[0]
    assert "已确认" in acked and "备注：已联系员工" in acked
    assert {r.id: r.note for r in await alerts(mbot)}[a.id] == "已联系员工"
    assert "无需重复" in (await say(f"/alerts ack {a.id}"))[0]
    fp = (await say(f"/alerts fp {a.id} 只是说发消息"))[0]
    assert "误报" in fp and "/word allow 私下联系" in fp
    assert "没有编号" in (await say("/alerts show 99999"))[0]
    assert "用法" in (await say("/alerts show abc"))[0] or "整数" in (await say("/alerts show abc"))[0]
    assert "#" in (await say("/alerts all"))[0]
    by_id = {r.id: r for r in await alerts(mbot)}
    assert by_id[a.id].status == "false_positive" and by_id[a.id].acked_by == "rev01"
    from bot.compliance.models import ModerationFalsePositive

    async with mbot.db.read() as s:
        fps = (await s.execute(select(ModerationFalsePositive.__table__))).all()
    assert len(fps) == 1 and fps[0].alert_id == a.id and fps[0].proposed_allow
    # reviewers cannot change the lexicon
    assert "权限" in (await say("/word add 私下联系 加我私人号"))[0]


async def test_word_commands_swap_the_matcher(h: Harness, mbot: BotApp) -> None:
    service = mbot.get(MODERATION)
    before = service.matcher
    out = await h.admin("/word add 私下联系 加我私人号", group=False)
    assert "已添加" in out[0]
    await h.settle()
    assert service.matcher is not before
    await staff_says(h, "加 我 私 人 号")
    assert any(r.term == "加我私人号" and r.level == "reject" for r in await alerts(mbot))
    # allow terms through the database
    await h.admin("/word allow 私下联系 微信发货通知", group=False)
    await h.settle()
    await staff_says(h, "微信发货通知已经推送了", chat="g3")
    assert not any(r.chat_id == "g3" for r in await alerts(mbot))
    # deleting a file term hides it; adding it back restores it
    assert "已删除" in (await h.admin("/word del 加我微信", group=False))[0]
    await h.settle()
    assert "加我微信" not in {t.text for t in service.matcher.lexicon.terms}
    await h.admin("/word add 私下联系 加我微信", group=False)
    await h.settle()
    assert "加我微信" in {t.text for t in service.matcher.lexicon.terms}
    listing = (await h.admin("/word list 私下联系", group=False))[0]
    assert "加我私人号" in listing and "群内添加" in listing
    assert "用法" in (await h.admin("/word add 私下联系", group=False))[0]
    assert "规范化后为空" in (await h.admin("/word add 私下联系 ！！！", group=False))[0]
    assert "只能是" in (await h.admin("/word add 私下联系 加我小号 block", group=False))[0]


async def test_word_commands_are_admin_only(h: Harness) -> None:
    out = await h.say_texts("/word add 私下联系 abc", sender="staff01", staff=True, group=False)
    assert "权限" in out[0]


async def test_broken_lexicon_file_keeps_the_old_matcher(make_bot: Callable[..., BotApp],
                                                         make_config: Callable[..., Config],
                                                         tmp_path: Path, clock: FakeClock) -> None:
    lex = tmp_path / "lex"
    lex.mkdir()
    (lex / "contact.yaml").write_text("category: 私下联系\nlevel: reject\nterms: [加我微信]\n", encoding="utf-8")
    app = make_bot(cfg=make_config(MODERATION__LEXICON_DIR=str(lex), MODERATION__REVIEWERS='["rev01"]'))
    await app.start()
    service = app.get(MODERATION)
    good = service.matcher
    assert [t.text for t in good.lexicon.terms] == ["加我微信"]
    (lex / "contact.yaml").write_text("category: 私下联系\nlevel: reject\nterms: [加我微信\n", encoding="utf-8")
    os.utime(lex / "contact.yaml", ns=(10**18, 10**18))
    clock.advance(timedelta(seconds=10))
    await app.settle()
    assert service.matcher is good
    assert service.problems and "contact.yaml:" in service.problems[0]
    h = Harness(app)
    await staff_says(h, "加我微信")
    assert len(await alerts(app)) == 1
    (lex / "contact.yaml").write_text("category: 私下联系\nlevel: reject\nterms: [加我微信, 私聊我]\n",
                                      encoding="utf-8")
    os.utime(lex / "contact.yaml", ns=(2 * 10**18, 2 * 10**18))
    clock.advance(timedelta(seconds=10))
    await app.settle()
    assert service.matcher is not good and service.problems == []
    assert {t.text for t in service.matcher.lexicon.terms} == {"加我微信", "私聊我"}


async def test_moderation_failure_never_breaks_the_answer_path(h: Harness, mbot: BotApp,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service = mbot.get(MODERATION)

    def boom(_text: str) -> list[Any]:
        raise RuntimeError("scanner down")

    monkeypatch.setattr(service.matcher, "scan", boom)
    out = await h.say_texts("/whoami", sender="staff01", staff=True)
    assert out and "staff01" in out[0]
    async with mbot.db.read() as s:
        assert (await s.execute(select(MESSAGES))).all() == []  # the failing handler rolled back alone


async def test_a_term_said_many_times_in_one_message_is_one_alert(h: Harness, mbot: BotApp) -> None:
    await staff_says(h, "加我微信 " * 300)
    rows = [r for r in await alerts(mbot) if r.term == "加我微信"]
    assert len(rows) == 1
    assert (rows[0].span_start, rows[0].repeats) == (0, 0)  # the first place it is said, and not a repeat


FP_CASES = [
    "有事发微信，我用微信支付给你转",   # review 微信 beside 微信支付
    "发个微信吧",                      # review 微信 → 微信吧
    "我们的茶是最好的",                # review 最好的
    "全网最低价哦",                    # review 全网最 / 最低价
    "参加微博活动",                    # a cut hit: 加微 inside 参加微博
    "加我唯芯",                        # a sound-alike: the whole message is the hit
    "微 信",                          # separators inside the hit
    "微信",                           # the term alone
    "加 我 v x 吧",                    # reject at full strength
    "这款茶包治百病",
]


@pytest.mark.parametrize("text", FP_CASES)
async def test_a_false_positive_never_proposes_an_allow_term_covering_its_own_hit(mbot: BotApp, text: str) -> None:
    from types import SimpleNamespace

    from bot.compliance.service import proposal_for
    from bot.textcheck import matcher_for
    from moderation.lexicon import with_allow

    service = mbot.get(MODERATION)
    hits = service.matcher.scan(text)
    assert hits, text
    for h in hits:
        row = SimpleNamespace(text=text, span_start=h.start, span_end=h.end, term=h.term, level=h.level, cut=h.cut,
                              stage=h.stage, matched=h.matched, category=h.category)
        proposal = proposal_for(row)
        if not proposal:
            continue
        allowed = matcher_for(service.cfg, with_allow(service.matcher.lexicon, {h.category: [proposal]}))
        # the allow term cancels the hit where the reviewer saw it …
        assert (h.category, h.term) not in {(x.category, x.term) for x in allowed.scan(text)}, (text, proposal)
        # … but the words of the hit alone, and the term itself, still raise it
        for bare in (h.matched, h.term):
            assert (h.category, h.term) in {(x.category, x.term) for x in allowed.scan(bare)}, (text, proposal, bare)


async def test_a_sound_alike_false_positive_proposes_nothing(h: Harness, mbot: BotApp) -> None:
    await staff_says(h, "加我唯芯")
    a = next(r for r in await alerts(mbot) if r.stage == "pinyin")
    fp = (await h.admin(f"/alerts fp {a.id}", group=False))[0]
    assert "误报" in fp and "/word allow" not in fp
    async with mbot.db.read() as s:
        from bot.compliance.models import ModerationFalsePositive

        row = (await s.execute(select(ModerationFalsePositive.__table__))).one()
    assert row.proposed_allow == ""


async def test_repeats_of_an_acknowledged_alert_reopen_it_and_tell_the_reviewers_once(
        h: Harness, mbot: BotApp, clock: FakeClock) -> None:
    first = await staff_says(h, "加我微信")
    a = next(r for r in await alerts(mbot) if r.term == "加我微信")
    assert any(d.kind == "group_robot" for d in first)
    await h.admin(f"/alerts ack {a.id}", group=False)
    told: list[Any] = []
    for i in range(5):  # repeat_notify_after = 3 (default): the third repeat tells, once
        clock.advance(timedelta(minutes=2))
        sent = await staff_says(h, f"加我微信{i}")
        told.append([d for d in sent if "重复违规" in d.text])
    assert [len(t) for t in told] == [0, 0, 2, 0, 0]
    assert {(d.kind, tuple(d.to)) for d in told[2]} == {("group_robot", ()), ("app_message", ("rev01",))}
    text = told[2][0].text
    for piece in ("张三", f"#{a.id}", "加我微信", "重复 3 次", "重新打开", "加我微信2"):
        assert piece in text, text
    row = next(r for r in await alerts(mbot) if r.id == a.id)
    assert (row.status, row.repeats) == ("open", 5)
    assert len([r for r in await alerts(mbot) if r.term == "加我微信"]) == 1
    # reopened, the reject alert is escalated when nobody acknowledges it again; the digest counts the repeats
    clock.advance(timedelta(hours=23))
    escalated = [d for d in await h.settle() if d.to == ["boss01"]]
    assert len(escalated) == 1 and f"#{a.id}" in escalated[0].text
    assert await mbot.scheduler.fire("moderation-digest", at=clock.now())
    digest = next(d for d in await h.settle() if "合规日报" in d.text).text
    assert "重复 5 次" in digest and "张三「加我微信」重复 5 次" in digest


async def test_repeats_of_an_open_alert_tell_without_reopening(make_bot: Callable[..., BotApp],
                                                               make_config: Callable[..., Config]) -> None:
    app = make_bot(cfg=make_config(MODERATION__REVIEWERS='["rev01"]', MODERATION__REPEAT_NOTIFY_AFTER="2"))
    await app.start()
    h = Harness(app)
    told = [[d for d in await staff_says(h, "好评返现哦") if "重复违规" in d.text] for _ in range(4)]
    assert [len(t) for t in told] == [0, 0, 2, 0]
    assert "重复 2 次" in told[2][0].text and "重新打开" not in told[2][0].text
    off = make_bot(cfg=make_config(MODERATION__REVIEWERS='["rev01"]', MODERATION__REPEAT_NOTIFY_AFTER="0"))
    await off.start()
    h = Harness(off)
    assert not [d for _ in range(4) for d in await staff_says(h, "好评返现哦") if "重复违规" in d.text]
