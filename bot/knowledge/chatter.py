"""Chatter: the messages the knowledge base leaves alone — the step before matching.

Members write 好的, 收到, 谢谢, 哈哈, 👍, 在吗, 晚安 … all day. None of it is a question, so
none of it gets an answer, a "did you mean" list or a "can't answer" reply, and none of it is
recorded as a miss. :func:`chatter_kind` decides, from the word lists of ``chatter.txt`` (this
package's, plus the knowledge directory's own ``chatter.txt``, same format):

1. WeCom emoji codes (``[微笑]``), emoji, punctuation are dropped and runs of three or more equal
   characters shortened to two (哈哈哈哈 → 哈哈). Nothing left: chatter (kind ``emoji``).
2. The chatter phrases (sections 问候, 应答, 致谢, 告别, 笑, 称赞, 客套) are taken out of the message;
   Latin ones only as whole words (``ok`` is not found in ``book``).
3. **Nothing of substance left**: when what remains has no content word — every word is a stop
   word, a 泛词 (消息, 东西, 时间 …) or a number of up to four digits — and does not ask anything
   (a question mark or word, or a 请求 word), the message is chatter: 「你好，第12条消息」.
4. **A closing remark**: a message that starts or ends with an acknowledgement, thanks, farewell,
   laughter, praise or small-talk phrase (two characters or more; greetings open a message, they do
   not close it), asks nothing, requests nothing and names no problem (a 转折 word: 但是, 不, 没, 坏,
   破 …) is chatter as a whole: 「好的我看看退款」, 「收到发货了谢谢」. 「收到了，盒子压坏了」 and
   「好的，我想退货」 are not; 「你好 退款」 is not either (a greeting followed by a topic).

5. **A remark nothing answers**: after matching, a message that asks nothing and that no entry
   answers or is suggested for is chatter too (kind ``remark``, decided in
   :meth:`bot.knowledge.matcher.Matcher.match`): 「今天好忙」 gets silence, not "can't answer".

The 泛词 also serve the matcher: an entry must explain at least one of the question's content
words — words that are not stop words, 泛词, question words or short numbers — to answer it or be
suggested (and ``MatchSettings.min_support`` of them), so a lone 收到, 消息 or 时间 supports nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import ahocorasick_rs

from bot.knowledge.text import QUESTION_RX, inside_latin_word, normalize, word_list
from bot.textnorm import fold
from bot.yamldoc import Problem

if TYPE_CHECKING:
    from bot.textnorm import fold
from bot.knowledge.text import Analyzer

CHATTER_FILE = Path(__file__).with_name("chatter.txt")

# Section name in the file → kind.
SECTIONS: dict[str, str] = {
    "问候": "greeting", "应答": "ack", "致谢": "thanks", "告别": "farewell", "笑": "laughter", "称赞": "praise",
    "客套": "smalltalk", "泛词": "generic", "请求": "request", "转折": "problem",
}
# How /kb search names each kind.
CHATTER_NAMES = {**{kind: name for name, kind in SECTIONS.items()}, "emoji": "表情和标点", "generic": "没有内容",
                 "remark": "没有提问、也没有知识能回答的话"}
OPENERS = frozenset({"greeting"})
SECTION_RX = re.compile(r"^\s*[\[【]\s*(.+?)\s*[\]】]\s*$")
WECOM_CODE = re.compile(r"\[[^\[\]\s]{1,5}\]")
RUNS = re.compile(r"(.)\1{2,}")
SHORT_NUMBER = re.compile(r"\d{1,4}")

Sections = dict[str, list[str]]


def squeeze(text: str) -> str:
    """Runs of three or more equal characters shortened to two."""
    return RUNS.sub(r"\1\1", text)


def parse_sections(text: str, path: str = "chatter.txt") -> tuple[Sections, list[Problem]]:
    """The words of a chatter file by kind; an unknown section or words before any section are problems."""
    out: Sections = {}
    problems: list[Problem] = []
    kind: str | None = None   # None: before any section; "": under an unknown one (already reported)
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = SECTION_RX.match(line)
        if m:
            kind = SECTIONS.get(m.group(1), "")
            if not kind:
                problems.append(Problem(path, n, f"没有「{m.group(1)}」这个分组，可用的分组：{'、'.join(SECTIONS)}"))
            continue
        if kind is None:
            problems.append(Problem(path, n, "词要写在分组下面，先写一行分组名，例如 [应答]"))
            kind = ""
        if kind:
            out.setdefault(kind, []).extend(w for w in (squeeze(w) for w in word_list(line)) if w)
    return out, problems


@cache
def builtin_sections() -> Sections:
    sections, problems = parse_sections(CHATTER_FILE.read_text(encoding="utf-8"), CHATTER_FILE.name)
    assert not problems, problems
    return sections


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


class ChatterWords:
    """The compiled word lists: the built-in ones plus a knowledge directory's additions."""

    def __init__(self, *sections: Mapping[str, Iterable[str]]) -> None:
        phrases: dict[str, str] = {}
        generic: set[str] = set()
        request: set[str] = set()
        problem: set[str] = set()
        for part in sections:
            for kind, words in part.items():
                if kind == "generic":
                    generic.update(words)
                elif kind == "request":
                    request.update(words)
                elif kind == "problem":
                    problem.update(words)
                else:
                    for w in words:
                        phrases.setdefault(w, kind)
        self.phrases = phrases
        self.generic = frozenset(generic)
        self._patterns = list(phrases)
        match = ahocorasick_rs.MatchKind.LeftmostLongest
        self._phrases = ahocorasick_rs.AhoCorasick(self._patterns, matchkind=match) if phrases else None
        self.request = frozenset(request)
        self._problem = ahocorasick_rs.AhoCorasick(sorted(problem), matchkind=match) if problem else None

    def spans(self, text: str) -> list[Span]:
        """The chatter phrases in ``text`` (normalised), Latin ones as whole words only."""
        if self._phrases is None:
            return []
        out = []
        for i, start, end in self._phrases.find_matches_as_indexes(text):
            pattern = self._patterns[i]
            if not inside_latin_word(text, start, end, pattern):
                out.append(Span(start, end, self.phrases[pattern]))
        return out

    def asks(self, text: str, analyzer: Analyzer) -> bool:
        """Whether ``text`` asks or requests something: a question mark or word, or a 请求 word — one of two
        characters or more anywhere, a single character as a word of its own (想, not the 想 of 理想)."""
        if QUESTION_RX.search(text):
            return True
        request = self.request
        if any(len(w) >= 2 and w in text for w in request):
            return True
        return any(t in request for t in analyzer.tokenizer.cut(text, HMM=False))

    def names_problem(self, text: str) -> bool:
        return self._problem is not None and bool(self._problem.find_matches_as_indexes(text))


def chatter_kind(text: str, analyzer: Analyzer) -> str | None:
    """The kind of chatter ``text`` is (``greeting``, ``ack``, ``thanks``, ``farewell``, ``laughter``,
    ``praise``, ``smalltalk``, ``emoji`` or ``generic``), or None when it may be a question."""
    words = analyzer.chatter
    norm = squeeze(normalize(WECOM_CODE.sub(" ", text)))
    if not norm:
        return "emoji"
    spans = words.spans(norm)
    rest = norm
    for s in spans:
        rest = rest[:s.start] + " " * (s.end - s.start) + rest[s.end:]
    if words.asks(rest, analyzer):
        return None
    generic = words.generic
    content = [t for t in analyzer.terms(analyzer.prepare(rest))
               if t not in generic and not SHORT_NUMBER.fullmatch(t)]
    if not content:
        return spans[0].kind if spans else "generic"
    if words.names_problem(rest):
        return None
    edges = [s for s in (spans[:1] + spans[-1:]) if s.end - s.start >= 2 and s.kind not in OPENERS
             and (not norm[:s.start].strip() or not norm[s.end:].strip())]
    return edges[0].kind if edges else None


def asks_something(text: str, analyzer: Analyzer) -> bool:
    """Whether ``text`` asks or requests anything (a question mark or word, a 请求 word)."""
    return analyzer.chatter.asks(fold(text), analyzer)


def is_chatter(text: str, analyzer: Analyzer) -> bool:
    """Whether ``text`` is chatter (:func:`chatter_kind`): no answer, no suggestions, no miss."""
    return chatter_kind(text, analyzer) is not None
