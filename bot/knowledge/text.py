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
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ahocorasick_rs
import jieba

from bot.textnorm import fold
from bot.yamldoc import Problem

NON_WORD = re.compile(r"[\W_]+")
STOPWORDS_FILE = Path(__file__).with_name("stopwords.txt")
GLOSSARY_FILE = Path(__file__).with_name("glossary.txt")
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


# Long messages: the clauses between punctuation marks, and what each does.
CLAUSE_BREAK = re.compile(r"[,.!?;:。、…~\n]+")
# 「不是问几天到，是问几天发」「茶没坏，就是不喜欢」: the first clause says what the question is not about.
NEGATED = re.compile(r"^.{0,3}?(?:不是|不想|不要|不用|没有|没)")
CONTRAST = re.compile(r"^(?:我)?(?:而是|就是|只是|其实|是(?!不是|否)|想|要|但是?|可是|不过)")


def clauses(text: str) -> list[tuple[str, str]]:
    """The clauses of a message with their roles: ``ask`` (a question), ``say`` (a story, a greeting)
    or ``denied`` (what the member says the question is not about, before 「是……」).

    A message without punctuation is one clause; its role is ``ask``.
    """
    parts = [c.strip() for c in CLAUSE_BREAK.split(fold(text))]
    parts = [c for c in parts if c]
    if len(parts) <= 1:
        return [(parts[0] if parts else "", "ask")]
    out: list[tuple[str, str]] = []
    for n, c in enumerate(parts):
        if n + 1 < len(parts) and NEGATED.search(c) and CONTRAST.search(parts[n + 1]):
            out.append((c, "denied"))
        else:
            out.append((c, "ask" if QUESTION_RX.search(c) else "say"))
    return out


def _words(line: str) -> list[str]:
    return [w for w in re.split(r"[\s,，、;；|｜/]+", line.strip()) if w]


def word_list(text: str) -> list[str]:
    """The words of a word-list file (``#`` starts a comment)."""
    words: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        words.extend(compact(w) for w in _words(line))
    return [w for w in words if w]


def read_word_list(path: Path) -> list[str]:
    return word_list(path.read_text(encoding="utf-8")) if path.is_file() else []


_BUILTIN_STOPWORDS: frozenset[str] | None = None


def builtin_stopwords() -> frozenset[str]:
    global _BUILTIN_STOPWORDS
    if _BUILTIN_STOPWORDS is None:
        _BUILTIN_STOPWORDS = frozenset(read_word_list(STOPWORDS_FILE))
    return _BUILTIN_STOPWORDS


@dataclass(slots=True)
class Synonyms:
    """The vocabulary file: synonyms, near-synonyms and dictionary words.

    - ``退款 退钱 退费`` — words that mean the same; the first is the canonical one and every
      other word is replaced by it before matching. A word belongs to one such line only.
    - ``~ 收到 到货 签收`` — words of related meaning: each keeps its own identity, but a question
      word and a stored word of the same ``~`` line count as a partial match. A word may be on
      several ``~`` lines.
    - ``+ 白茶 岩茶 盖碗`` — words jieba must keep whole (the shop's own vocabulary).
    """

    groups: list[tuple[str, ...]] = field(default_factory=list)
    canonical: dict[str, str] = field(default_factory=dict)
    related: list[tuple[str, ...]] = field(default_factory=list)   # canonical forms, one tuple per ~ line
    dictionary: tuple[str, ...] = ()                                  # + words (canonical forms)
    _ac: ahocorasick_rs.AhoCorasick | None = None
    _patterns: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, path: str = "synonyms.txt") -> tuple[Synonyms, list[Problem]]:
        problems: list[Problem] = []
        syn = cls()
        where: dict[str, int] = {}
        related: list[tuple[int, list[str]]] = []
        dictionary: list[str] = []
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            marker = line[:1] if line[:1] in ("~", "～", "+", "＋") else ""
            words = [compact(w) for w in _words(line[1:] if marker else line)]
            words = [w for w in words if w]
            if not words:
                continue
            if marker in ("+", "＋"):
                dictionary.extend(words)
                continue
            if len(words) < 2:
                kind = "近义词" if marker else "同义词"
                problems.append(Problem(path, n, f"{kind}一行至少要两个词，这一行只有「{words[0]}」"))
                continue
            if marker:
                related.append((n, words))
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
        for _, words in related:
            canon = tuple(dict.fromkeys(syn.apply(w) for w in words))
            if len(canon) >= 2:
                syn.related.append(canon)
        syn.dictionary = tuple(dict.fromkeys(syn.apply(w) for w in dictionary))
        return syn, []

    def _build(self) -> None:
        self.canonical = {w: g[0] for g in self.groups for w in g}
        self._patterns = list(self.canonical)
        if self._patterns:
            self._ac = ahocorasick_rs.AhoCorasick(self._patterns, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    @property
    def words(self) -> list[str]:
        """Every word the file names (they all join jieba's dictionary)."""
        return list(dict.fromkeys([*self.canonical, *(w for g in self.related for w in g), *self.dictionary]))

    @property
    def content(self) -> tuple[object, ...]:
        """What the file says, for change detection."""
        return tuple(self.groups), tuple(self.related), self.dictionary

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
            pattern = self._patterns[idx]
            if inside_latin_word(text, start, end, pattern):
                continue
            out.append(text[pos:start])
            out.append(self.canonical[pattern])
            pos = end
        out.append(text[pos:])
        return "".join(out)


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def inside_latin_word(text: str, start: int, end: int, pattern: str) -> bool:
    """Whether a Latin-letter pattern was found inside a longer Latin word ("ems" in "items")."""
    return (_is_latin(pattern[0]) and start > 0 and _is_latin(text[start - 1])) or \
        (_is_latin(pattern[-1]) and end < len(text) and _is_latin(text[end]))


class Glossary:
    """Latin-letter words and phrases members type (refund, what time, zm) and the Chinese word meant.

    ``bot/knowledge/glossary.txt``: one line per Chinese word, ``中文: english, phrase, abbreviation``.
    Matched as whole words in normalised (lower-case, space-separated) text.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.table: dict[str, str] = {}
        for latin, chinese in pairs:
            key = " ".join(latin.casefold().split())
            if key and chinese:
                self.table.setdefault(key, chinese)
        phrases = sorted(self.table, key=len, reverse=True)
        self._rx = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(p).replace(r"\ ", " +") for p in phrases)
                              + r")(?![a-z0-9])") if phrases else None

    @classmethod
    def parse(cls, text: str) -> Glossary:
        pairs: list[tuple[str, str]] = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            chinese, latin = line.split(":", 1)
            pairs += [(w, compact(chinese)) for w in re.split(r"[,，、;；]", latin) if w.strip()]
        return cls(pairs)

    def apply(self, normalized: str) -> str:
        if self._rx is None or not any("a" <= c <= "z" for c in normalized):
            return normalized
        return self._rx.sub(lambda m: f" {self.table[' '.join(m.group(1).split())]} ", normalized)


_GLOSSARY: Glossary | None = None


def builtin_glossary() -> Glossary:
    global _GLOSSARY
    if _GLOSSARY is None:
        _GLOSSARY = Glossary.parse(GLOSSARY_FILE.read_text(encoding="utf-8"))
    return _GLOSSARY


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


# What a question asks for, whatever it is about: a member asking 多久 wants a duration, not a procedure.
# Found in the prepared text (synonyms already canonical); the matcher prefers entries whose stored
# questions ask for the same kind of thing.
INTENTS: dict[str, tuple[str, ...]] = {
    "time": ("多久", "什么时候", "几点", "哪天", "几号", "星期几", "周几", "礼拜几", "多长时间", "几天", "多快", "何时",
             "啥时候", "几个工作日", "时效", "时间"),
    "where": ("哪里", "哪儿", "在哪", "去哪", "到哪", "什么地方", "啥地方", "寄哪"),
    "who": ("谁", "什么人", "哪位"),
    "why": ("为什么", "为啥", "怎么回事", "咋回事", "怎么还", "怎么没", "怎么不", "还没"),
    "price": ("多少钱", "价格", "价钱", "几块", "几元", "贵不贵", "贵吗"),
    "which": ("哪个", "哪款", "哪种", "哪家", "哪些", "哪一", "推荐", "选什么", "买什么", "买哪", "什么茶"),
    "amount": ("多少", "几个", "几克", "几次", "几泡", "几折", "几年"),
    "how": ("怎么", "如何", "咋", "怎样", "方法", "步骤", "流程", "操作"),
}
_INTENT_WORDS = sorted({w for ws in INTENTS.values() for w in ws}, key=len, reverse=True)
_INTENT_OF = {w: k for k, ws in INTENTS.items() for w in ws}
_INTENT_AC = ahocorasick_rs.AhoCorasick(_INTENT_WORDS, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)


def intents(prepared: str) -> frozenset[str]:
    """The kinds of answer a prepared question asks for (``time``, ``where``, ``who`` …)."""
    key = prepared.replace(" ", "")
    return frozenset(_INTENT_OF[_INTENT_WORDS[i]] for i, _, _ in _INTENT_AC.find_matches_as_indexes(key))


def general_weight(word: str, floor: float = 0.35) -> float:
    """How rare a word is in general Chinese (jieba's dictionary frequencies), from ``floor`` to 1.

    A base of 60 entries cannot tell that 时候 or 东西 say little; the language can. Words the
    dictionary does not know (the shop's own vocabulary, names) count fully.
    """
    base = _base_tokenizer()
    f = base.FREQ.get(word, 0)
    if not f:
        return 1.0
    # log-rarity: about 6 for the commonest words, 16 for the rarest listed ones.
    rarity = math.log(base.total / f)
    return max(floor, min(1.0, (rarity - 6.0) / 6.0))


class Analyzer:
    """Turns text into the terms the matcher compares."""

    def __init__(self, synonyms: Synonyms | None = None, stopwords: Iterable[str] = (),
                 user_words: Iterable[str] = (), chatter: Mapping[str, list[str]] | None = None) -> None:
        # Function-level: bot.knowledge.chatter builds on this module's normalisation.
        from bot.knowledge.chatter import ChatterWords, builtin_sections

        self.synonyms = synonyms or Synonyms()
        self.extra_chatter = dict(chatter or {})
        self.chatter = ChatterWords(builtin_sections(), self.extra_chatter)
        self.glossary = builtin_glossary()
        self.extra_stopwords = tuple(stopwords)
        self.source_words = frozenset(user_words)
        canon = self.synonyms.canonical
        self.stopwords = frozenset(canon.get(w, w) for w in (*builtin_stopwords(), *self.extra_stopwords))
        words: set[str] = set()
        for w in self.source_words:
            words.update(self._content_pieces(canon.get(compact(w), compact(w))))
        words.update(self.synonyms.words)
        self.user_words = frozenset(w for w in words if self._is_word(w))
        self.tokenizer = make_tokenizer(self.user_words)
        # A user word kept whole ("赚积分") also yields what the default dictionary makes of it
        # ("赚", "积分"), so a question phrased around it ("积分怎么赚") still shares its terms.
        base = _base_tokenizer()
        self.pieces: dict[str, tuple[str, ...]] = {}
        for w in self.user_words:
            if len(w) < 3:
                continue   # 白茶 → 白, 茶 would only add noise
            parts = tuple(p for p in base.cut(w, HMM=False) if p != w and p.strip())
            if parts:
                self.pieces[w] = parts
        # Near-synonyms: each word of a ~ line carries the line's tag ("~3"); sharing a tag is a partial match.
        tags: dict[str, set[str]] = {}
        for n, group in enumerate(self.synonyms.related):
            for w in group:
                tags.setdefault(w, set()).add(f"~{n}")
        self.tags: dict[str, frozenset[str]] = {w: frozenset(t) for w, t in tags.items()}
        self._general: dict[str, float] = {}

    def _content_pieces(self, w: str) -> list[str]:
        """A keyword, and when it is a phrase ("白茶怎么泡"), its pieces between function words ("白茶")."""
        out = [w]
        if len(w) > 2:
            stop = sorted((s for s in self.stopwords if len(s) >= 2 and s in w), key=len, reverse=True)
            if stop:
                out += [p for p in re.split("|".join(map(re.escape, stop)), w) if len(p) >= 2]
        return out

    def _is_word(self, w: str) -> bool:
        # A keyword that is a phrase ("白茶怎么泡") would glue its function words to whatever
        # follows it; only word-like keywords join the dictionary (phrases still trigger as keywords).
        if not 2 <= len(w) <= 6:
            return False
        base = _base_tokenizer()
        return not any(p in self.stopwords for p in base.cut(w, HMM=False))

    def prepare(self, text: str) -> str:
        """Normalised text, Latin words read as Chinese (refund → 退款), synonyms made canonical."""
        return self.synonyms.apply(self.glossary.apply(normalize(text)))

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

    def general(self, word: str) -> float:
        """:func:`general_weight`, except that the base's own vocabulary always counts fully."""
        g = self._general.get(word)
        if g is None:
            g = 1.0 if word in self.user_words else general_weight(word)
            self._general[word] = g
        return g

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
