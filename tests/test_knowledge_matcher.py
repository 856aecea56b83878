"""The matcher: each mode, normalisation, synonyms, threshold and suggestions, scopes and priority."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.knowledge.base import build_matcher
from bot.knowledge.entry import Where
from bot.knowledge.loader import parse_text
from bot.knowledge.matcher import Matcher, MatchSettings
from bot.knowledge.text import Analyzer, Synonyms, general_weight, intents

ENTRIES = """\
- id: refund
  questions: [怎么退款, 退款流程是什么]
  keywords: [七天无理由]
  answer: 收到商品7天内可以退款
- id: refund-time
  questions: [退款多久到账]
  answer: 退款1-3个工作日到账，微信零钱即时到账
- id: points-earn
  questions: [积分怎么获得]
  answer: 打卡得积分
- id: points-use
  questions: [积分怎么兑换礼品]
  answer: 积分商城兑换
- id: points-expire
  questions: [积分会过期吗]
  answer: 积分次年底过期
- id: live
  questions: [直播几点开始]
  keywords: [几点直播]
  answer: 每周三晚8点直播
- id: storage
  questions: [茶叶怎么保存]
  answer: 常温避光密封保存，绿茶放冰箱冷藏
- id: human
  match: contains
  questions: [人工客服]
  keywords: [转人工, 找客服]
  answer: 马上来
- id: menu
  match: exact
  questions: [菜单]
  answer: 这是菜单
- id: order
  match: regex
  keywords: ['(?:^|\\D)(\\d{12,})(?:\\D|$)']
  answer: 收到订单号
- id: vip
  questions: [VIP专属福利有哪些]
  scope: {tiers: [vip]}
  answer: VIP福利
- id: rules
  questions: [群规是什么]
  scope: {chat: group}
  answer: 群规
- id: newbie-rules
  questions: [新人群规是什么]
  scope: {groups: [新人群]}
  priority: 5
  answer: 新人群的群规
"""


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    load = parse_text(ENTRIES, "t.yaml")
    assert load.ok, load.problems
    synonyms, problems = Synonyms.parse("退款 退钱 返款\n多久 几天\n")
    assert not problems
    return build_matcher(load.entries, synonyms, [], MatchSettings())


def answer(m: Matcher, text: str, where: Where | None = None) -> tuple[str | None, str]:
    r = m.match(text, where)
    return (r.entry.id if r.entry else None), r.mode


def test_exact_question_and_its_normalised_forms(matcher: Matcher) -> None:
    assert answer(matcher, "怎么退款") == ("refund", "exact")
    assert answer(matcher, "怎麼退款？") == ("refund", "exact")        # traditional, punctuation
    assert answer(matcher, "  怎么 退款！！") == ("refund", "exact")
    assert answer(matcher, "积分怎么兑换礼品～") == ("points-use", "exact")


def test_full_width_and_case_fold(matcher: Matcher) -> None:
    assert answer(matcher, "ｖｉｐ专属福利有哪些", Where("single", tier="vip")) == ("vip", "exact")
    assert answer(matcher, "１２３４５６７８９０１２３") == ("order", "regex")  # full-width digits


def test_exact_mode_needs_the_whole_message(matcher: Matcher) -> None:
    assert answer(matcher, "菜单") == ("menu", "exact")
    r = matcher.match("把菜单发我")
    assert r.entry is None or r.entry.id != "menu"


def test_contains_mode_triggers_on_keywords_and_questions(matcher: Matcher) -> None:
    assert answer(matcher, "你好我要转人工谢谢") == ("human", "contains")
    assert answer(matcher, "帮我找客服") == ("human", "contains")
    assert answer(matcher, "人工客服") == ("human", "exact")  # questions of a contains entry with keywords: exact only
    m = build_matcher(parse_text("- id: c\n  match: contains\n  questions: [发票]\n  answer: x\n", "c").entries,
                      Synonyms(), [], MatchSettings())
    assert answer(m, "怎么开发票啊") == ("c", "contains")  # without keywords, the questions are the triggers


def test_regex_mode(matcher: Matcher) -> None:
    r = matcher.match("我的订单号 202611230001234 帮忙看下")
    assert (r.entry.id, r.mode) == ("order", "regex") and r.answer.keywords == ("202611230001234",)
    assert answer(matcher, "订单 12345")[0] != "order"


def test_auto_keyword_then_meaning(matcher: Matcher) -> None:
    r = matcher.match("请问晚上几点直播呀")
    assert (r.entry.id, r.mode) == ("live", "keyword") and r.answer.keywords == ("几点直播",)
    assert answer(matcher, "七天无理由可以吗") == ("refund", "keyword")
    # Meaning: synonyms make 退钱 the same as 退款, and 几天 the same as 多久.
    r = matcher.match("退钱要几天到账")
    assert (r.entry.id, r.mode) == ("refund-time", "bm25") and r.score >= MatchSettings().threshold
    assert "退款" in r.answer.terms


def test_the_answer_text_counts_as_weaker_evidence(matcher: Matcher) -> None:
    r = matcher.match("绿茶要冷藏吗")
    assert r.candidates and r.candidates[0].entry.id == "storage"


def test_ambiguous_question_gets_numbered_suggestions(matcher: Matcher) -> None:
    r = matcher.match("积分")
    assert r.entry is None and r.mode == "suggest"
    assert {s.entry.id for s in r.suggestions} == {"points-earn", "points-use", "points-expire"}
    assert len(r.suggestions) <= 3


def test_threshold_decides_between_answer_and_suggestion(matcher: Matcher) -> None:
    question = "退款要等几天"
    strict = Matcher(matcher.entries, matcher.analyzer, replace(matcher.settings, threshold=0.99))
    lenient = Matcher(matcher.entries, matcher.analyzer, replace(matcher.settings, threshold=0.05))
    assert strict.match(question).entry is None
    assert strict.match(question).suggestions[0].entry.id == "refund-time"
    assert lenient.match(question).entry is not None
    none = Matcher(matcher.entries, matcher.analyzer, replace(matcher.settings, threshold=0.99, suggest_floor=0.99))
    assert none.match(question).mode == "none"


def test_unrelated_questions_get_nothing(matcher: Matcher) -> None:
    for q in ("今天天气怎么样", "帮我订机票", "哈哈哈哈", "", "？？？"):
        r = matcher.match(q)
        assert r.entry is None and r.mode in ("none", "suggest", "chatter"), q
    assert matcher.match("哈哈哈哈").mode == matcher.match("？？？").mode == "chatter"


def test_scopes_by_chat_group_and_tier(matcher: Matcher) -> None:
    assert answer(matcher, "群规是什么", Where("group", "g1", "老朋友群")) == ("rules", "exact")
    assert answer(matcher, "群规是什么", Where("single", "u1"))[0] != "rules"
    assert answer(matcher, "新人群规是什么", Where("group", "g9", "新人群")) == ("newbie-rules", "exact")
    assert answer(matcher, "新人群规是什么", Where("group", "g1", "老朋友群"))[0] != "newbie-rules"
    assert answer(matcher, "VIP专属福利有哪些", Where("single", tier="quality"))[0] != "vip"
    assert answer(matcher, "VIP专属福利有哪些", Where("single", tier="vip")) == ("vip", "exact")


def test_priority_wins_ties() -> None:
    text = """\
- id: low
  questions: [会员日有什么活动]
  answer: 低
- id: high
  questions: [会员日有什么活动]
  priority: 10
  answer: 高
- id: kw-low
  keywords: [直播]
  answer: 低
- id: kw-high
  keywords: [直播间]
  answer: 长
- id: kw-urgent
  keywords: [直播]
  priority: 9
  answer: 紧急
"""
    m = build_matcher(parse_text(text, "p.yaml").entries, Synonyms(), [], MatchSettings())
    assert answer(m, "会员日有什么活动") == ("high", "exact")
    assert answer(m, "今晚直播间有福利吗") == ("kw-urgent", "keyword")


def test_search_explains_candidates(matcher: Matcher) -> None:
    r = matcher.match("退款多久能到")
    top = r.candidates[0]
    assert top.entry.id == "refund-time" and top.question == "退款多久到账"
    assert top.to_json()["terms"][:2] and 0 < top.score <= 1


NEAR = """\
- id: delivery
  questions: [快递几天能收到]
  answer: 顺丰一般两三天
- id: storage
  questions: [茶叶怎么保存]
  answer: 常温避光密封
- id: brew
  questions: [白茶怎么泡]
  keywords: [白茶怎么泡]
  answer: 95度水
"""


def test_near_synonyms_count_as_a_match_but_stay_distinct_words() -> None:
    entries = parse_text(NEAR, "n.yaml").entries
    plain = build_matcher(entries, Synonyms(), [], MatchSettings())
    near, problems = Synonyms.parse("~ 收到 签收 到货\n")
    assert not problems
    m = build_matcher(entries, near, [], MatchSettings())
    without = plain.match("快递几天签收")
    with_near = m.match("快递几天签收")
    assert with_near.entry is not None and with_near.entry.id == "delivery"
    assert with_near.candidates[0].score > without.candidates[0].score
    # not a synonym: the words are not replaced, so an exact stored question stays exact only for itself
    assert m.analyzer.prepare("签收") == "签收" and m.match("快递几天能到货").mode == "bm25"


def test_dictionary_words_and_phrase_keywords_keep_shop_words_whole() -> None:
    entries = parse_text(NEAR, "n.yaml").entries
    bare = Analyzer(Synonyms(), [], [])
    assert "白茶" not in bare.terms(bare.prepare("白茶水温多少"))          # jieba alone: 白 / 茶
    from_keyword = build_matcher(entries, Synonyms(), [], MatchSettings()).analyzer
    assert "白茶" in from_keyword.user_words                               # the phrase keyword 白茶怎么泡 gives 白茶
    assert "白茶" in from_keyword.terms(from_keyword.prepare("白茶水温多少"))
    words, _ = Synonyms.parse("+ 寿眉 小方片\n")
    a = Analyzer(words, [], [])
    assert {"寿眉", "小方片"} <= set(a.terms(a.prepare("寿眉和小方片哪个好")))


def test_intents_say_what_a_question_asks_for() -> None:
    assert intents("退款 多久 到账") == frozenset({"time"})
    assert intents("退货 寄到 哪里") == frozenset({"where"})
    assert intents("创始人是谁") == frozenset({"who"})
    assert intents("怎么退款") == frozenset({"how"})
    assert intents("积分") == frozenset()
    text = """\
- id: refund-how
  questions: [退款怎么申请]
  answer: 在订单里申请售后
- id: refund-when
  questions: [退款多久到账]
  answer: 原路退回
"""
    m = build_matcher(parse_text(text, "i.yaml").entries, Synonyms(), [], MatchSettings())
    assert m.match("退款要多久").candidates[0].entry.id == "refund-when"
    assert m.match("退款怎么弄").candidates[0].entry.id == "refund-how"


def test_common_words_weigh_less_than_rare_ones() -> None:
    assert general_weight("时候") < general_weight("茶垢") <= 1.0
    assert general_weight("禾屿茶舍") == 1.0            # words the general dictionary does not know count fully


def test_a_bare_topic_word_shared_by_several_entries_gets_suggestions(matcher: Matcher) -> None:
    r = matcher.match("积分")
    assert r.entry is None and len(r.suggestions) == 3
    # a word that tells the entries apart answers
    r = matcher.match("积分过期")
    assert r.entry is not None and r.entry.id == "points-expire"


def test_typing_slips_by_sound_and_in_latin_letters(matcher: Matcher) -> None:
    # homophones the pinyin keyboard offers: 退宽 (tui kuan) is 退款, 直拨 (zhi bo) is 直播
    assert answer(matcher, "退宽多久到账")[0] == "refund-time"
    assert answer(matcher, "直拨几点开始")[0] == "live"
    # pinyin typed as letters: the initials or the whole spelling of a word of the base
    assert answer(matcher, "tk多久到账")[0] == "refund-time"
    assert answer(matcher, "tuikuan 多久到账")[0] == "refund-time"
    # corrected, the question is a stored one
    r = matcher.match("退宽多久到账")
    assert r.mode == "exact" and r.answer is not None and r.answer.question == "退款多久到账"


def test_a_slip_is_never_forced_on_a_real_word() -> None:
    from bot.knowledge.fuzzy import Speller
    from bot.knowledge.text import _base_tokenizer

    speller = Speller({"故事": 1.0, "积分": 1.0, "退款": 1.0}, _base_tokenizer(), ["的", "有"])
    assert speller.correct("退宽") == "退款"
    assert speller.correct("今天股市怎么样") == "今天股市怎么样"   # a common word in its own right
    assert speller.correct("煮几分钟") == "煮几分钟"             # 几分 is inside the word 几分钟
    assert speller.correct("vip tk ok") == "vip 退款 ok"         # letters that are no initials stay
    # a question that matched as typed keeps its answer: the corrected form only replaces a worse one
    text = "- id: story\n  questions: [品牌故事]\n  answer: 故事\n"
    m = build_matcher(parse_text(text, "s.yaml").entries, Synonyms(), [], MatchSettings())
    assert m.match("股市今天涨了吗").entry is None


def test_latin_words_read_as_chinese(matcher: Matcher) -> None:
    assert answer(matcher, "refund 多久到账")[0] == "refund-time"
    assert answer(matcher, "live 几点开始")[0] == "live"
    assert answer(matcher, "how to 退款")[0] == "refund"
    syn, problems = Synonyms.parse("邮政 ems\n")
    assert not problems
    a = Analyzer(syn, [], [])
    assert a.prepare("ems 几天") == "邮政 几天"
    assert "邮政" not in a.prepare("items")                       # only whole Latin words are replaced


def test_long_messages_weigh_the_question_clause() -> None:
    from bot.knowledge.text import clauses

    assert [r for _, r in clauses("小伙子，寄到我们县城得几天呀")] == ["say", "ask"]
    assert [r for _, r in clauses("不是问几天到，是问几天能发出")] == ["denied", "ask"]
    assert [r for _, r in clauses("没发货，是不是忘了")] == ["say", "ask"]      # 是不是 asks, it does not contrast
    assert clauses("退款怎么弄") == [("退款怎么弄", "ask")]
    text = """\
- id: ship-when
  questions: [多久发货]
  answer: 48 小时内发货
- id: arrive-when
  questions: [快递几天能到]
  answer: 1-3 天
- id: points-expire
  questions: [积分会过期吗]
  answer: 次年底过期
- id: exchange
  questions: [能换货吗]
  answer: 可以换
- id: refund
  questions: [能退款吗]
  answer: 七天无理由
"""
    m = build_matcher(parse_text(text, "l.yaml").entries, Synonyms(), [], MatchSettings())
    story = "上周给我爸买的茶叶，快递很快，换了个杯子泡，他说挺好喝的，想问下积分会过期吗"
    assert answer(m, story)[0] == "points-expire"
    flat = build_matcher(parse_text(text, "l.yaml").entries, Synonyms(), [], MatchSettings(context_weight=1.0))
    assert m.match(story).score > flat.match(story).score     # the story's words count less than the question's
    assert answer(m, "不是问快递几天能到，是问多久发货")[0] == "ship-when"
    assert answer(m, "不想退款，能换货吗")[0] == "exchange"


def test_a_keyword_that_is_the_whole_question_answers() -> None:
    text = """\
- id: mine
  questions: [我的积分有多少]
  keywords: [我的积分]
  answer: 您有 {{ member.points }} 分
- id: redeem
  questions: [积分怎么用]
  answer: 积分商城
- id: earn
  questions: [积分怎么来]
  answer: 打卡
"""
    m = build_matcher(parse_text(text, "k.yaml").entries, Synonyms(), [], MatchSettings())
    r = m.match("我的积分")
    assert r.entry is not None and r.entry.id == "mine" and r.mode == "keyword" and r.score == 1.0


def test_a_word_the_base_does_not_know_is_read_through_the_words_inside_it() -> None:
    text = "- id: ship\n  questions: [什么时候发货]\n  answer: 48 小时内\n"
    near, _ = Synonyms.parse("~ 发货 寄\n")
    m = build_matcher(parse_text(text, "p.yaml").entries, near, [], MatchSettings())
    assert m._pieces("寄过来") == ("寄", "过来")
    assert m._pieces("世界杯") == ("世界杯",)            # a single known character counts only at the start
    assert answer(m, "什么时候给我寄过来")[0] == "ship"


def test_question_words_alone_are_no_sign_of_the_same_topic() -> None:
    entries = """\
- id: live
  questions: [直播几点开始, 这周有直播吗]
  answer: 每周三晚8点直播
- id: invite
  questions: [推荐好友有奖励吗]
  answer: 每邀请一位好友得50积分
- id: founder
  questions: [创始人是谁]
  answer: 禾屿由林屿创办
"""
    m = build_matcher(parse_text(entries, "t.yaml").entries, Synonyms(), [], MatchSettings())
    # Chatter that shares only 几点 / 谁 / 推荐 with a stored question is not answered outright …
    for chatter in ("楼下超市几点关门", "谁有好看的小说推荐"):
        r = m.match(chatter)
        assert r.entry is None, (chatter, r.candidates[:1])
    # … while the same question words beside the topic's own words still answer.
    assert answer(m, "直播几点") == ("live", "bm25")
    assert answer(m, "谁是创始人")[0] == "founder"
    assert answer(m, "推荐朋友有奖励吗")[0] == "invite"
