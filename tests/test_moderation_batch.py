"""Scanning a batch of messages at once (``Matcher.scan_many``) gives what scanning each one gives."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import opencc
import pytest
import yaml

from bot.yamldoc import FileProblems
from moderation import detectors
from moderation.batch import _gap
from moderation.lexicon import Lexicon, lexicon_from_dir
from moderation.matcher import Matcher
from moderation.normalize import JOINER, code
from moderation.variants import load_variants

REPO = Path(__file__).resolve().parent.parent
STARTER = REPO / "moderation" / "lexicons"
EVAL = REPO / "moderation" / "eval"

WORDS = ("您好 这款 茶叶 今天 发货 价格 优惠 活动 群里 大家 直播 会员 积分 订单 售后 退换 包装 冲泡 口感 回甘 "
         "事实 实施 时时 天天 谢谢 哈哈 妈妈 一下 一个 统一 同意 唯一 为一 微博 参加 威信 饲料 折扣 口才").split()
SEPARATORS = [" ", ".", "，", "。", "！", "~", "-", "*", "\u200b", "\u3000", "😀", "🌹", "\t", "\x01", "\x02", "…",
              "！！！！", "    ", ". . . .", "\u0301"]
ODD = ["𠀀", "𐐀", "𐐀加我微信", "𝐯𝐱", "個个", "加個微信", "扣扣", "叩叩叩", "口口", "①②③④⑤⑥⑦⑧", "一三八零零一三八零零零",
       "138 0013 8000", "+86 13800138000", "qq 123456789", "vx：tea_lover2024", "微信号: zhang_san88",
       "www.example.com/tea", "a.b@example.com", "abc点com", "9860-.cn", "滚", "滚！", "滚动", "İı", "\ud800"]


def _evade(rng: random.Random, t: str, t2s: opencc.OpenCC) -> str:
    k = rng.random()
    if k < 0.2:
        return rng.choice(SEPARATORS).join(t)
    if k < 0.35:
        return "".join(c * rng.randint(1, 3) for c in t)
    if k < 0.5:
        t = t.replace("微信", rng.choice(["vx", "薇信", "威信", "V X", "唯芯"]))
        return t.replace("加", rng.choice(["+", "茄", "加"]))
    if k < 0.6:
        return t2s.convert(t)
    return t


def messages(n: int, seed: int = 3) -> list[str]:
    lexicon = lexicon_from_dir(STARTER)[0]
    terms = [t.text for t in lexicon.terms] + [t.text for t in lexicon.allow]
    rng = random.Random(seed)
    s2t = opencc.OpenCC("s2t")
    out = [c["text"] for c in yaml.safe_load((EVAL / "evasions.yaml").read_text("utf-8"))]
    out += yaml.safe_load((EVAL / "clean.yaml").read_text("utf-8"))
    out += ["", " ", "加", "加加我微微信", "加    我微信", "加\x01\x01\x01\x01我微信"]
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 9)):
            r = rng.random()
            if r < 0.45:
                parts.append(rng.choice(WORDS))
            elif r < 0.65:
                parts.append(_evade(rng, rng.choice(terms), s2t))
            elif r < 0.85:
                parts.append(rng.choice(SEPARATORS))
            else:
                parts.append(rng.choice(ODD))
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return messages(2500)


@pytest.mark.parametrize("kw", [{}, {"max_gap": 1}, {"max_gap": 5}, {"allowed_domains": ["example.com"]},
                                {"detect": False}])
def test_a_batch_gives_what_each_message_gives(texts: list[str], kw: dict[str, object]) -> None:
    m = Matcher(lexicon_from_dir(STARTER)[0], **kw)  # type: ignore[arg-type]
    one_by_one = [m.scan(t) for t in texts]
    assert m.scan_many(texts) == one_by_one
    assert sum(1 for hits in one_by_one if hits) > len(texts) // 4  # the texts do hold hits
    for t, hits in zip(texts, one_by_one, strict=True):
        for h in hits:
            assert t[h.start:h.end] == h.matched


def test_a_batch_with_the_joiner_in_a_message_is_scanned_one_by_one(texts: list[str]) -> None:
    m = Matcher(lexicon_from_dir(STARTER)[0])
    batch = [*texts[:40], f"加{JOINER}我微信", "加我微信"]
    assert m.scan_many(batch) == [m.scan(t) for t in batch]
    assert m.scan_many([]) == []


def test_detectors_alone_in_a_batch(texts: list[str]) -> None:
    m = Matcher(Lexicon())
    assert m.scan_many(texts) == [m.scan(t) for t in texts]
    assert [h.term for h in m.scan_many(["我手机 138 0013 8000"])[0]] == ["手机号"]


def test_characters_beyond_the_bmp_and_broken_utf16() -> None:
    m = Matcher(lexicon_from_dir(STARTER)[0])
    for text in ["𐐀加我微信", "\ud800加我微信", "𠀀𠀀加我微信"]:
        hits = m.scan(text)
        assert [h.term for h in hits] == ["加我微信"]
        assert text[hits[0].start:hits[0].end] == hits[0].matched
        assert m.scan_many([text, "你好"]) == [hits, []]


def test_a_doubled_variant_word_is_read_as_written() -> None:
    m = Matcher(lexicon_from_dir(STARTER)[0])
    # 扣扣 stands for QQ; read once it would be 扣, found in every 折扣
    assert m.scan("这款茶现在有折扣吗") == []
    assert m.scan("领导说要扣工资") == []
    assert [(h.term, h.stage) for h in m.scan("扣扣号多少")] == [("qq", "variant")]
    assert [(h.term, h.level) for h in m.scan("加我扣扣")] == [("加我qq", "reject")]


def test_a_variant_read_as_one_character_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "variants.yaml"
    p.write_text("qq:\n  letter: [q号, 球球]\n", encoding="utf-8")
    with pytest.raises(FileProblems) as exc:
        load_variants(p)
    [problem] = exc.value.problems
    assert problem.line == 2 and "球球" in problem.message and "reduplication.txt" in problem.message


def test_a_term_that_forms_only_when_a_run_is_read_once() -> None:
    # 私下下交易: nothing stands in the text as written; read once, 下下 joins 私下交易 across the run's end
    # (also far from a term that does stand as written)
    m = Matcher(lexicon_from_dir(STARTER)[0])
    batch = ["私下下交易", "你好", "私下下下交易呢", "今天天气好", "私私下交易", "加我微信吧，今天我们私下下交易"]
    hits = m.scan_many(batch)
    assert hits == [m.scan(t) for t in batch]
    assert [[h.term for h in hs] for hs in hits] == [["私下交易"], [], ["私下交易"], [], ["私下交易"],
                                                     ["加我微信", "私下交易"]]


def test_the_repeat_rule_asks_for_three_characters_in_a_row_of_a_term(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("category: 私下联系\nlevel: reject\nterms: [加我微信]\n", encoding="utf-8")
    m = Matcher(lexicon_from_dir(tmp_path)[0])

    def may(before: str, repeated: str, after: str) -> bool:
        return m.repeat_may_form_term(*(code(c)[1] for c in (before, repeated, after)))

    # 加我我微信: the run 我我 read once joins 加·我·微 — three characters in a row of 加我微信
    assert may("加", "我", "微") and may("我", "微", "信")
    # in sound-alike codes: 家我薇 is 加我微 by sound
    assert may("家", "我", "薇")
    # 加加我微信: the term starts at the run, and stands as written from its last character
    assert not may("你", "加", "我")
    # the three are in the term, but not in a row
    assert not may("加", "我", "信") and not may("我", "加", "微")
    assert m.scan("加我我微信")[0].term == "加我微信"
    assert m.scan("你加加我微信")[0].term == "加我微信"


def test_every_detail_but_a_link_holds_what_the_last_look_of_detect_wants(texts: list[str]) -> None:
    # detect() skips that look (the ``pre`` pattern) when it found a detail other than a link
    pre, kinds = detectors._patterns().pre, set()
    for t in [*texts, "扣扣：①②③④⑤⑥⑦⑧", "微信号: zhang_san88", "邮箱 zhangsan@example.com", "a.b (at) example.com"]:
        for d in detectors.detect(t):
            kinds.add(d.kind)
            if d.kind != "url":
                assert pre.search(t, d.start, d.end), (t, d)
    assert kinds == {"phone", "qq", "wechat_id", "email", "url"}


def test_a_run_of_separators_is_found_at_every_length() -> None:
    rng = random.Random(1)
    for _ in range(5000):
        kept = [rng.random() < 0.6 for _ in range(rng.randint(0, 30))]
        length = rng.randint(1, 9)
        written = "".join("1" if k else "0" for k in kept)
        assert _gap(np.array(kept, dtype=bool), length) == ("0" * length in written), (written, length)
