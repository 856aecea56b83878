"""Issue 15: advertising-law claims, the evasions staff use to move customers off-platform, and context
(a word with another meaning, sound-alikes that are words of their own, private chats inside WeCom)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.compliance.config import ModerationConfig
from bot.compliance.store import ALERTS
from bot.config import Config
from bot.testing import Harness
from bot.textcheck import matcher_for
from bot.yamldoc import FileProblems
from moderation.lexicon import lexicon_from_dir
from moderation.matcher import Matcher
from moderation.variants import load_meanings, load_variants

REPO = Path(__file__).resolve().parent.parent
STARTER = REPO / "moderation" / "lexicons"
AD = "广告法/夸大宣传"
PC = "私下联系"


@pytest.fixture(scope="module")
def engine() -> Matcher:
    lexicon, problems = lexicon_from_dir(STARTER)
    assert problems == []
    return matcher_for(ModerationConfig(), lexicon)


def alerting(m: Matcher, text: str) -> list[tuple[str, str, str]]:
    return [(h.term, h.category, h.level) for h in m.scan(text) if h.level in ("reject", "review")]


@pytest.mark.parametrize(("text", "term", "level"), [
    ("这款茶能治失眠", "能治", "reject"),
    ("喝了能降血压", "能降血压", "reject"),
    ("这茶抗癌", "抗癌", "reject"),
    ("药效好", "药效", "reject"),
    ("这款茶包治百病", "包治百病", "reject"),
    ("我们的茶是最好的", "最好的", "review"),
    ("国家级非遗", "国家级", "review"),
    ("顶级大红袍", "顶级", "review"),
    ("100% 有效", "100%有效", "review"),
    ("收藏这饼稳赚", "稳赚", "reject"),
    ("保本，收益翻倍", "收益翻倍", "reject"),
])
def test_advertising_law_claims(engine: Matcher, text: str, term: str, level: str) -> None:
    assert (term, AD, level) in alerting(engine, text)


@pytest.mark.parametrize("text", [
    "最近天气冷，注意保暖", "最后一天活动", "第一次买可以先试小包装", "第一步先温杯", "今天第一天上班",
    "最好是用90度的水", "最好在冰箱里冷藏", "最好的方法是用盖碗", "这个问题唯一的办法是重新下单",
    "您先去医院治疗，身体要紧", "在吃降压药的话先问问医生", "满100减20", "第一时间给您发货",
    "绝对不会泄露您的信息", "国家治理",
])
def test_ordinary_uses_of_absolute_and_medical_words(engine: Matcher, text: str) -> None:
    assert alerting(engine, text) == []


@pytest.mark.parametrize(("text", "category"), [
    ("加v", PC), ("+v 聊", PC), ("加V tea_lover2024", PC), ("加我 v：tea_lover2024", PC), ("找我v", PC),
    ("加薇", PC), ("加卫星", PC), ("v我", PC), ("扫码加我", PC), ("二维码发你", PC), ("扫我的码", PC),
    ("微信同号", PC), ("长按识别加我", PC),
    ("威：tea_lover2024", "联系方式"), ("薇：tealover", "联系方式"), ("v tea_lover2024", "联系方式"),
])
def test_off_platform_evasions(engine: Matcher, text: str, category: str) -> None:
    assert any(c == category and lvl == "reject" for _t, c, lvl in alerting(engine, text)), engine.scan(text)


@pytest.mark.parametrize("text", ["选V领的那款", "V1.0 版本更新了", "我们的卫星发射成功", "权威 top100",
                                  "威 tealover", "欢迎扫码加入企业微信群"])
def test_letters_and_words_alone_are_not_contact(engine: Matcher, text: str) -> None:
    assert alerting(engine, text) == []


def test_within_forms_never_stand_alone() -> None:
    v = load_variants()
    assert "v" in v.within["微信"]
    assert ("加v", "letter") in v.expansions("加微信")
    assert all(form != "v" for form, _how in v.expansions("微信"))


def test_a_word_with_another_meaning_is_not_raised(engine: Matcher) -> None:
    assert alerting(engine, "别用滚开的水泡绿茶") == []
    assert alerting(engine, "水滚开了") == []
    # the phrase covers only its own place: 滚开 elsewhere in the message is still a hit
    assert ("滚开", "辱骂", "reject") in alerting(engine, "水滚开了你也滚开")


def test_a_sound_alike_that_is_a_word_of_its_own_is_not_raised(engine: Matcher) -> None:
    assert alerting(engine, "私下练习很重要") == []
    assert ("私下联系", PC, "reject") in alerting(engine, "丝下联系")  # the table's form stays
    assert ("加我微信", PC, "review") in alerting(engine, "加我唯芯")   # 唯芯 is no word: still sounds like it


def test_private_chat_inside_wecom_is_configurable() -> None:
    lexicon, _ = lexicon_from_dir(STARTER)
    default = matcher_for(ModerationConfig(), lexicon)
    assert alerting(default, "想要的私信我") == []
    assert ("加我微信", PC, "reject") in alerting(default, "私信我，加我微信")
    strict = matcher_for(ModerationConfig(in_app_contact={}), lexicon)
    assert ("私信我", PC, "reject") in alerting(strict, "想要的私信我")


def test_meanings_table_is_checked(tmp_path: Path) -> None:
    p = tmp_path / "meanings.yaml"
    p.write_text("滚开:\n  - 开水\n", encoding="utf-8")
    with pytest.raises(FileProblems) as exc:
        load_meanings(p)
    assert "应包含" in str(exc.value.problems[0])
    assert "滚开的水" in load_meanings()["滚开"]


# -- through the pipeline: a staff message → an alert (or none) ------------------------------------------------

@pytest.fixture
async def mbot(make_bot: Callable[..., BotApp], make_config: Callable[..., Config]) -> AsyncIterator[BotApp]:
    app = make_bot(cfg=make_config(MODERATION__REVIEWERS='["rev01"]'))
    await app.start()
    yield app


async def _alerts(app: BotApp) -> list[Any]:
    async with app.db.read() as s:
        return list((await s.execute(select(ALERTS).order_by(ALERTS.c.id))).all())


async def test_staff_messages_through_the_pipeline(mbot: BotApp) -> None:
    h = Harness(mbot)
    for text in ("别用滚开的水泡绿茶", "想要的私信我", "私下练习很重要", "第一次买可以先试小包装"):
        await h.say(text, sender="staff01", name="张三", staff=True, mention=False)
    assert [r for r in await _alerts(mbot) if r.status == "open"] == []
    await h.say("这款茶能治失眠，加V tea_lover2024", sender="staff01", name="张三", staff=True, mention=False)
    rows = [(r.term, r.category, r.level) for r in await _alerts(mbot)]
    assert ("能治", AD, "reject") in rows
    assert ("加微信", PC, "reject") in rows


def test_the_shipped_example_content_raises_no_alert(engine: Matcher) -> None:
    from moderation.eval.shipped import shipped_texts

    texts = shipped_texts()
    wheres = {where.split("/")[0] for where, _text in texts}
    assert {"knowledge_base", "sop_templates"} <= wheres and any("moments.yaml" in w for w, _t in texts)
    raised = [(where, alerting(engine, text)) for where, text in texts if alerting(engine, text)]
    assert raised == []


async def test_a_false_positive_at_full_strength_proposes_no_allow_term(mbot: BotApp) -> None:
    h = Harness(mbot)
    await h.say("这款茶包治百病", sender="staff01", name="张三", staff=True, mention=False)
    await h.say("有事发微信给我", sender="staff01", name="张三", staff=True, mention=False)
    rows = {r.term: r for r in await _alerts(mbot)}
    claim, broad = rows["包治百病"], rows["微信"]
    assert claim.level == "reject" and not claim.cut
    await h.admin("/role grant @rev01 reviewer", group=False)
    said = (await h.say_texts(f"/alerts fp {claim.id}", sender="rev01", name="王审核", staff=True, group=False))[0]
    assert "误报" in said and "/word allow" not in said  # 茶包治百病 would hide the claim from then on
    said = (await h.say_texts(f"/alerts fp {broad.id}", sender="rev01", name="王审核", staff=True, group=False))[0]
    assert "/word allow 私下联系" in said  # a review-level broad term still gets its wider phrase
