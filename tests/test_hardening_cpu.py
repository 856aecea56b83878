"""Nothing a member, an operator or a file sends can hang the bot or flood a chat with CPU-heavy work:
operator templates are tried when they are added, regexes run on RE2, long texts cost linear time, the
heavy calls run off the event loop and outside the handler's transaction, and an event whose processing
crashes or hangs the process fails after its attempts instead of looping.

No timing asserts: work that used to take quadratic (or exponential) time runs under a hang detector
whose limit is far beyond what linear work needs, and structural facts (which thread, whether SQLite's
writer is held) are recorded."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.config import Config
from bot.context import Context
from bot.events import MessageEvent
from bot.inbox import Incoming
from bot.knowledge import KNOWLEDGE
from bot.knowledge.base import build_matcher
from bot.knowledge.loader import parse_text
from bot.knowledge.matcher import MatchSettings
from bot.knowledge.models import KbEntryRow
from bot.knowledge.patterns import PatternRefused, compile_pattern
from bot.knowledge.text import Synonyms
from bot.routing import Router
from bot.storage.models import InboxRow
from bot.testing import Harness
from moderation.lexicon import LEVEL_RANK, lexicon_from_dir
from moderation.matcher import Hit, Matcher, _Cand, _outermost

REPO = Path(__file__).resolve().parent.parent
HANG_S = 60  # a hang detector, not a speed check: the linear work below takes well under a second


def ends(fn: Callable[[], Any]) -> Any:
    """``fn()``, failing the test if it has not ended within HANG_S seconds."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the test below
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_S)
    assert not worker.is_alive(), "did not end: more than linear work"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


# ── #5 long texts: linear work ──

@pytest.fixture(scope="module")
def moderation() -> Matcher:
    lexicon, problems = lexicon_from_dir(REPO / "moderation" / "lexicons")
    assert problems == []
    return Matcher(lexicon)


@pytest.mark.parametrize("text", [
    "a." * 100_000, "vx:" + "a_" * 100_000, "微 信 " * 50_000, "a" * 200_000, "a.com " * 33_000,
], ids=["dots", "underscores", "spaced-words", "letters", "hosts"])
def test_a_long_message_is_scanned_in_linear_time(moderation: Matcher, text: str) -> None:
    hits = ends(lambda: moderation.scan(text))
    assert all(text[h.start:h.end] == h.matched for h in hits)


def test_contact_details_are_still_found_at_the_end_of_a_long_message(moderation: Matcher) -> None:
    text = "a." * 20_000 + " 加我微信 abc_12345 或者 13800138000"
    kinds = {h.source for h in ends(lambda: moderation.scan(text)) if h.stage == "detector"}
    assert {"wechat_id", "phone"} <= kinds


def _inside(c: _Cand, o: _Cand) -> bool:
    """The pairwise definition the sweep in _outermost must agree with."""
    return (o is not c and o.hit.category == c.hit.category
            and o.compact_start <= c.compact_start and c.compact_end <= o.compact_end
            and o.compact_end - o.compact_start > c.compact_end - c.compact_start
            and LEVEL_RANK[o.hit.level] >= LEVEL_RANK[c.hit.level])


def test_the_overlap_sweep_agrees_with_every_pair() -> None:
    rnd = random.Random(12)
    for _ in range(300):
        cands = []
        for _ in range(rnd.randint(1, 14)):
            start = rnd.randint(0, 8)
            end = start + rnd.randint(1, 5)
            hit = Hit(term="t", category=rnd.choice("ab"), level=rnd.choice(list(LEVEL_RANK)), start=start, end=end,
                      matched="", stage="exact", normalised="", cut=False, source="")
            cands.append(_Cand(hit=hit, compact_start=start, compact_end=end, form=rnd.choice("xyz")))
        assert _outermost(cands) == [c for c in cands if not any(_inside(c, o) for o in cands)]


@pytest.fixture(scope="module")
def kb() -> Any:
    entries = []
    for f in sorted((REPO / "knowledge_base").glob("*.yaml")):
        load = parse_text(f.read_text(encoding="utf-8"), f.name)
        entries += load.entries
    synonyms, _ = Synonyms.parse((REPO / "knowledge_base" / "synonyms.txt").read_text(encoding="utf-8"))
    return build_matcher(entries, synonyms, [], MatchSettings())


@pytest.mark.parametrize("text", ["a" * 20_000, "怎么退款？" * 4_000, "a1" * 10_000],
                         ids=["one-long-word", "many-clauses", "letters-and-digits"])
def test_a_long_question_is_matched_in_bounded_time(kb: Any, text: str) -> None:
    ends(lambda: kb.match(text))


def test_a_long_question_is_matched_on_its_start(kb: Any) -> None:
    assert kb.match("怎么退款" + "。" * 5000).entry == kb.match("怎么退款").entry is not None


# ── #2 regular expressions from operators ──

@pytest.mark.parametrize("pattern", [r"(?<!\d)\d{12}", r"\d{12}(?!\d)", r"(a)\1", "(a{100}){100}", "x" * 600])
def test_patterns_re2_cannot_take_are_refused_in_chinese(pattern: str) -> None:
    with pytest.raises(PatternRefused) as exc:
        compile_pattern(pattern)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(exc.value))


KB_FILE = """\
- id: refund
  questions: [怎么退款]
  answer: 收到商品7天内可以退款
"""


@pytest.fixture
async def h(make_bot: Callable[..., BotApp], make_config: Callable[..., Config],
            tmp_path: Path) -> AsyncIterator[Harness]:
    d = tmp_path / "kb"
    d.mkdir()
    (d / "faq.yaml").write_text(KB_FILE, encoding="utf-8")
    app = make_bot(cfg=make_config(KNOWLEDGE__DIR=str(d)))
    await app.start()
    try:
        yield Harness(app)
    finally:
        await app.stop()


async def operator(h: Harness, text: str) -> str:
    return "\n".join(await h.admin(text, group=False))


async def test_a_catastrophic_regex_keyword_answers_in_linear_time(h: Harness) -> None:
    said = await operator(h, "/kb add\nid: redos\n匹配: 正则\n关键词: (a+)+b\n答案: 找到了")
    assert "已新增" in said, said
    kb = h.app.get(KNOWLEDGE)
    ends(lambda: kb.matcher.match("a" * 40 + "c"))        # Python's re: 2**40 steps
    assert (await h.say_texts("a" * 40 + "c", group=False)) != ["找到了"]
    assert await h.say_texts("aaab", group=False) == ["找到了"]


async def test_a_regex_re2_cannot_take_is_refused_when_added(h: Harness) -> None:
    said = await operator(h, "/kb add\nid: order\n匹配: 正则\n关键词: (?<!\\d)\\d{16}\n答案: 收到订单号")
    assert "没有保存" in said and "前后断言" in said, said
    async with h.app.db.read() as s:
        assert (await s.execute(select(KbEntryRow))).first() is None


# ── #1 templates: tried when added, never a flood at run time ──

@pytest.mark.parametrize(("answer", "why"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "步数"),
    ("{{ 'a' * 5000 }}", "条消息"),
    ("{{ member.name * 3000 }}", "条消息"),
])
async def test_kb_add_refuses_an_answer_that_cannot_render_or_floods(h: Harness, answer: str, why: str) -> None:
    said = await operator(h, f"/kb add 怎么开发票 {answer}")
    assert "没有保存" in said and why in said, said
    async with h.app.db.read() as s:
        assert (await s.execute(select(KbEntryRow))).first() is None


async def test_kb_edit_refuses_an_answer_that_floods(h: Harness) -> None:
    said = await operator(h, "/kb edit refund 答案 {{ '好' * 2000 }}")
    assert "没有保存" in said and "条消息" in said, said
    assert await h.say_texts("怎么退款", group=False) == ["收到商品7天内可以退款"]


async def test_an_answer_too_long_at_run_time_sends_the_failure_text_once(h: Harness,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    # A row written before answers were tried (or by hand): it renders 15,000 bytes — 8 messages.
    kb = h.app.get(KNOWLEDGE)
    async with h.app.db.session() as s:
        now = h.app.clock.now()
        s.add(KbEntryRow(entry_id="long", state="active", created_by="x", created_at=now, updated_by="x",
                         updated_at=now,
                         data={"id": "long", "questions": ["怎么开发票"], "answer": "{{ '发' * 5000 }}"}))
    await kb.reload(False)
    for _ in range(2):
        replies = await h.say_texts("怎么开发票", group=False)
        assert len(replies) == 1 and "发发发" not in replies[0], replies
    assert sum("cannot be sent" in r.getMessage() for r in caplog.records) == 1


SCRIPT = """\
id: welcome
trigger: member_joined
steps:
  - at: +0m
    via: reply
    text: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
"""


def test_an_sop_step_that_cannot_render_is_refused_by_the_loader(tmp_path: Path) -> None:
    from bot.cli import main

    d = tmp_path / "sop"
    d.mkdir()
    (d / "welcome.yaml").write_text(SCRIPT, encoding="utf-8")
    code = ends(lambda: main(["sop", "check", str(d)]))
    assert code != 0


async def test_moments_set_refuses_a_text_that_cannot_render(h: Harness) -> None:
    said = await operator(h, "/moments set 周一 08:30 {{ 'a' * 3000 }}")
    assert "2,000" in said or "2000" in said, said


# ── #5 off the event loop and outside the transaction ──

async def test_the_scan_and_the_match_run_off_the_loop_without_the_writer(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    gate = h.app.db._write_lock
    seen: dict[str, tuple[bool, bool]] = {}
    kb = h.app.get(KNOWLEDGE)
    real_match = type(kb.matcher).match

    def match(self: Any, text: str, where: Any = None) -> Any:
        seen["match"] = (threading.get_ident() != loop_thread, bool(gate is not None and gate._held))
        return real_match(self, text, where)

    monkeypatch.setattr(type(kb.matcher), "match", match)
    assert await h.say_texts("怎么退款", group=False) == ["收到商品7天内可以退款"]
    assert seen["match"] == (True, False)


async def test_the_moderation_scan_runs_off_the_loop_without_the_writer(
        make_bot: Callable[..., BotApp], monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers

    app = make_bot(features=[handlers.feature("moderation")])
    await app.start()
    try:
        loop_thread = threading.get_ident()
        gate = app.db._write_lock
        seen: list[tuple[bool, bool]] = []
        real_scan = Matcher.scan

        def scan(self: Matcher, text: str) -> Any:
            seen.append((threading.get_ident() != loop_thread, bool(gate is not None and gate._held)))
            return real_scan(self, text)

        monkeypatch.setattr(Matcher, "scan", scan)
        await Harness(app).say("加我微信 abc_12345", mention=False)
        assert seen == [(True, False)]
    finally:
        await app.stop()


# ── #1 crash loop: a claim counts as an attempt; the row fails and its chat goes on ──

def echo(app: BotApp) -> Router:
    r = Router("echo")

    @r.message()
    async def say_back(event: MessageEvent, ctx: Context) -> None:
        await ctx.reply(event.text)

    return r


def incoming(i: int) -> Incoming:
    payload = {"type": "message", "chat": {"id": "g1", "type": "group"}, "sender": {"id": "wmA", "staff": False},
               "text": f"m{i}", "mentions_bot": False, "channel": "webhook"}
    return Incoming(dedup_key=f"k{i}", channel="webhook", kind="message", payload=payload, chat_key="chat:g1")


async def test_a_row_whose_processing_never_finishes_fails_after_its_attempts(
        make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[echo])
    await app.start()
    try:
        pump = app.inbox_pump
        await app.accept(incoming(1))
        lease = timedelta(seconds=app.config.inbox.lease_s + 1)
        for attempt in range(1, pump.max_attempts + 1):
            claimed = await pump.claim(10)  # the process crashes or hangs with this row, every time
            assert [r.dedup_key for r in claimed] == ["k1"] and claimed[0].attempts == attempt
            app.clock.advance(lease)  # type: ignore[attr-defined]
        await app.accept(incoming(2))  # the chat's next event
        h = Harness(app)
        assert [d.text for d in await h.settle()] == ["m2"]
        async with app.db.read() as s:
            rows = {r.dedup_key: r for r in (await s.execute(select(InboxRow))).scalars()}
        assert rows["k1"].status == "failed" and rows["k1"].attempts == pump.max_attempts
        assert "never finished" in (rows["k1"].error or "")
        assert rows["k2"].status == "done"
        assert await pump.claim(10) == []
    finally:
        await app.stop()


def test_the_attempts_are_configured(make_config: Callable[..., Config]) -> None:
    assert make_config(INBOX__MAX_ATTEMPTS="2").inbox.max_attempts == 2
