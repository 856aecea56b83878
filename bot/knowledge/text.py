"""Text as the matcher sees it: folded, synonyms made canonical, segmented by jieba.

The same :class:`Analyzer` prepares the stored questions and the members'
questions, so whatever it does to one it does to the other: traditional →
simplified and full-width → half-width (``bot.textnorm.fold``), punctuation and
emoji dropped, every synonym replaced by the first word of its line in
``synonyms.txt``, then jieba segmentation (search mode, with the entries'
keywords and the synonyms in its dictionary) and stop words removed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ahocorasick_rs
import jieba

from bot.knowledge.loader import Problem
from bot.textnorm import fold

NON_WORD = re.compile(r"[\W_]+")
STOPWORDS_FILE = Path(__file__).with_name("stopwords.txt")
# Questions that end like this, or start with these, ask something (used for unprompted group answers).
QUESTION_RX = re.compile(r"[?？]|吗|呢|么|怎|如何|什么|啥|哪|几|多少|多久|能不能|可不可以|是不是|有没有|要不要|咋|"
                         r"求问|请问")


def normalize(text: str) -> str:
    """Folded text with punctuation, symbols and emoji turned into single spaces."""
    return NON_WORD.sub(" ", fold(text)).strip()


def compact(text: str) -> str:
    """Folded text with nothing but letters, digits and CJK (for exact and keyword comparisons)."""
    return NON_WORD.sub("", fold(text))


def looks_like_question(text: str, ignore: Iterable[str] = ()) -> bool:
    """Whether ``text`` asks something, not counting the words in ``ignore`` (a keyword such as 几点直播)."""
    folded = fold(text)
    for word in ignore:
        folded = folded.replace(fold(word), " ")
    return bool(QUESTION_RX.search(folded))


def _words(line: str) -> list[str]:
    return [w for w in re.split(r"[\s,，、;；|｜/]+", line.strip()) if w]


def read_word_list(path: Path) -> list[str]:
    words: list[str] = []
    if not path.is_file():
        return words
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0]
        words.extend(compact(w) for w in _words(line))
    return [w for w in words if w]


_BUILTIN_STOPWORDS: frozenset[str] | None = None


def builtin_stopwords() -> frozenset[str]:
    global _BUILTIN_STOPWORDS
    if _BUILTIN_STOPWORDS is None:
        _BUILTIN_STOPWORDS = frozenset(read_word_list(STOPWORDS_FILE))
    return _BUILTIN_STOPWORDS


@dataclass(slots=True)
class Synonyms:
    """Lines of words that mean the same; the first word of a line is the canonical one."""

    groups: list[tuple[str, ...]] = field(default_factory=list)
    canonical: dict[str, str] = field(default_factory=dict)
    _ac: ahocorasick_rs.AhoCorasick | None = None
    _patterns: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, path: str = "synonyms.txt") -> tuple[Synonyms, list[Problem]]:
        problems: list[Problem] = []
        syn = cls()
        where: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0]
            words = [compact(w) for w in _words(line)]
            words = [w for w in words if w]
            if not words:
                continue
            if len(words) < 2:
                problems.append(Problem(path, n, f"同义词一行至少要两个词，这一行只有「{words[0]}」"))
                continue
            group: list[str] = []
            for w in words:
                if w in where and where[w] != n:
                    problems.append(Problem(path, n, f"「{w}」已经在第 {where[w]} 行出现过，一个词只能属于一组"))
                    continue
                if w not in group:
                    group.append(w)
                    where[w] = n
            if len(group) >= 2:
                syn.groups.append(tuple(group))
        if problems:
            return cls(), problems
        syn._build()
        return syn, []

    @classmethod
    def load(cls, path: Path, name: str | None = None) -> tuple[Synonyms, list[Problem]]:
        shown = name or str(path)
        if not path.is_file():
            return cls(), []
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(), [Problem(shown, 0, f"无法读取：{exc}")]
        return cls.parse(text, shown)

    def _build(self) -> None:
        self.canonical = {w: g[0] for g in self.groups for w in g}
        self._patterns = list(self.canonical)
        if self._patterns:
            self._ac = ahocorasick_rs.AhoCorasick(self._patterns, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    @property
    def words(self) -> list[str]:
        return list(self.canonical)

    def apply(self, text: str) -> str:
        """Replace every synonym in ``text`` (already normalised) with its canonical word."""
        if self._ac is None:
            return text
        matches = self._ac.find_matches_as_indexes(text)
        if not matches:
            return text
        out: list[str] = []
        pos = 0
        for idx, start, end in matches:
            out.append(text[pos:start])
            out.append(self.canonical[self._patterns[idx]])
            pos = end
        out.append(text[pos:])
        return "".join(out)


_base_lock = threading.Lock()
_base: jieba.Tokenizer | None = None


def _base_tokenizer() -> jieba.Tokenizer:
    """jieba's default dictionary, loaded once per process (about half a second)."""
    global _base
    with _base_lock:
        if _base is None:
            jieba.setLogLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            tk.initialize()
            _base = tk
        return _base


def make_tokenizer(user_words: Iterable[str]) -> jieba.Tokenizer:
    """A private jieba tokenizer: the default dictionary plus ``user_words`` kept whole.

    Private, so that one knowledge base's words never change how another feature
    (or the previous version of this base, still serving) segments text.
    """
    base = _base_tokenizer()
    tk = jieba.Tokenizer()
    tk.FREQ = dict(base.FREQ)
    tk.total = base.total
    tk.initialized = True
    for w in sorted(set(user_words)):
        if len(w) >= 2 and not w.isascii():
            tk.add_word(w)
    return tk


class Analyzer:
    """Turns text into the terms the matcher compares."""

    def __init__(self, synonyms: Synonyms | None = None, stopwords: Iterable[str] = (),
                 user_words: Iterable[str] = ()) -> None:
        self.synonyms = synonyms or Synonyms()
        self.extra_stopwords = tuple(stopwords)
        self.source_words = frozenset(user_words)
        canon = self.synonyms.canonical
        self.stopwords = frozenset(canon.get(w, w) for w in (*builtin_stopwords(), *self.extra_stopwords))
        words = {canon.get(compact(w), compact(w)) for w in self.source_words}
        words.update(self.synonyms.words)
        self.user_words = frozenset(w for w in words if self._is_word(w))
        self.tokenizer = make_tokenizer(self.user_words)
        # A user word kept whole ("赚积分") also yields what the default dictionary makes of it
        # ("赚", "积分"), so a question phrased around it ("积分怎么赚") still shares its terms.
        base = _base_tokenizer()
        self.pieces: dict[str, tuple[str, ...]] = {}
        for w in self.user_words:
            parts = tuple(p for p in base.cut(w, HMM=False) if p != w and p.strip())
            if parts:
                self.pieces[w] = parts

    def _is_word(self, w: str) -> bool:
        # A keyword that is a phrase ("白茶怎么泡") would glue its function words to whatever
        # follows it; only word-like keywords join the dictionary (phrases still trigger as keywords).
        if not 2 <= len(w) <= 6:
            return False
        base = _base_tokenizer()
        return not any(p in self.stopwords for p in base.cut(w, HMM=False))

    def prepare(self, text: str) -> str:
        """Normalised text with synonyms made canonical (words separated by single spaces)."""
        return self.synonyms.apply(normalize(text))

    def terms(self, prepared: str) -> list[str]:
        """Distinct search-mode jieba terms of prepared text, without stop words and spaces, in order."""
        stop = self.stopwords
        pieces = self.pieces
        out: dict[str, None] = {}
        for t in self.tokenizer.cut_for_search(prepared, HMM=False):
            if t in pieces:
                out.update((p, None) for p in pieces[t] if p not in stop)
            if t.strip() and t not in stop:
                out[t] = None
        return list(out)

    def canon(self, text: str) -> str:
        """Compact canonical form: what exact and keyword comparisons use."""
        return self.prepare(text).replace(" ", "")


def char_features(terms: Iterable[str]) -> frozenset[str]:
    """Characters and character pairs inside the terms: what still matches when segmentation differs."""
    out: set[str] = set()
    for t in terms:
        out.update(t)
        out.update(t[i:i + 2] for i in range(len(t) - 1))
    return frozenset(out)
