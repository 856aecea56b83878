"""Typing slips: words the pinyin keyboard swapped for a homophone, and words typed in Latin letters.

Most members type Chinese with a pinyin keyboard, so their slips sound right and
look wrong: 退宽 for 退款, 发飘 for 发票, 直拨 for 直播, 保值期 for 保质期. Some
type the letters themselves: ``tk`` (the initials of 退款), ``tuikuan``.

A :class:`Speller` knows the base's vocabulary (the words of its stored questions
and keywords, the vocabulary file, the question words) by sound. ``correct``
replaces a stretch of the question that is not a word of the base but sounds like
one (the same toneless pinyin) — unless the stretch is a common word in its own right or holds a
function word —, and a Latin word that spells, or abbreviates, a word of the
base. The matcher scores the corrected question next to the original and keeps
whichever fits the base better, so a correction can only help a question find
its entry, never silence one that matched as typed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import jieba
from pypinyin import Style, lazy_pinyin, pinyin

CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
LATIN_WORD = re.compile(r"(?<![a-z0-9])[a-z]+(?![a-z0-9])")
COMMON = 500        # a stretch that is a word this common in general Chinese is meant as typed (股市, 机场)
WINDOWS = (4, 3, 2)  # lengths of the stretches compared by sound, longest first
INITIALS = set("bpmfdtnlgkhjqxrzcsyw")


@functools.lru_cache(maxsize=65536)
def reading(ch: str) -> str:
    """The usual toneless pinyin reading of one character ("" for anything else)."""
    got = pinyin(ch, style=Style.NORMAL, errors="ignore")
    return got[0][0] if got and got[0] else ""


def sound(syllables: Iterable[str]) -> str:
    return " ".join(syllables)


def typed_sound(text: str) -> str:
    """How a stretch of typed text sounds: each character's usual reading ("" when one has none)."""
    out = []
    for ch in text:
        r = reading(ch)
        if not r:
            return ""
        out.append(r)
    return sound(out)


def word_sounds(word: str) -> set[str]:
    """How a known word sounds: read as a phrase (长 in 保质期 vs 长大) and character by character."""
    keys = {typed_sound(word), sound(lazy_pinyin(word, errors="ignore"))}
    keys.discard("")
    return keys


class Speller:
    """The base's vocabulary by sound, by pinyin spelling and by pinyin initials."""

    def __init__(self, words: Mapping[str, float], tokenizer: jieba.Tokenizer,
                 stopwords: Iterable[str] = ()) -> None:
        """``words`` maps each known word to its rank (the better-known word wins a shared sound)."""
        self.tokenizer = tokenizer
        self.stopwords = frozenset(stopwords)
        self.words = frozenset(words)
        self.known_latin = frozenset(w for w in words if w.isascii())
        by_sound: dict[str, tuple[float, str]] = {}
        by_spelling: dict[str, tuple[float, str]] = {}
        by_initials: dict[str, tuple[float, str]] = {}

        def keep(table: dict[str, tuple[float, str]], key: str, rank: float, w: str) -> None:
            old = table.get(key)
            if old is None or (rank, w) > old:
                table[key] = (rank, w)

        for w, rank in words.items():
            if not (2 <= len(w) <= max(WINDOWS)) or not CJK_RUN.fullmatch(w):
                continue
            for key in word_sounds(w):
                keep(by_sound, key, rank, w)
            first = lazy_pinyin(w, errors="ignore")
            if len(first) != len(w):
                continue
            keep(by_spelling, "".join(first), rank, w)
            keep(by_initials, "".join(s[0] for s in first), rank, w)
        self.by_sound = {k: w for k, (_, w) in by_sound.items()}
        self.by_spelling = {k: w for k, (_, w) in by_spelling.items()}
        self.by_initials = {k: w for k, (_, w) in by_initials.items()}

    def correct(self, prepared: str) -> str:
        """``prepared`` with slips replaced by the base's words (unchanged when there are none)."""
        if not self.by_sound:
            return prepared
        out = CJK_RUN.sub(self._fix_run, prepared)
        if any("a" <= c <= "z" for c in out):
            out = LATIN_WORD.sub(self._fix_latin, out)
        return out

    def _fix_run(self, m: re.Match[str]) -> str:
        run = m.group(0)
        if len(run) < 2:
            return run
        syllables = [reading(ch) for ch in run]
        by_sound, words = self.by_sound, self.words
        if not any(" ".join(syllables[i:i + n]) in by_sound and run[i:i + n] not in words
                   for n in WINDOWS for i in range(len(run) - n + 1)):
            return run   # nothing sounds like a word of the base without being one: no need to segment
        # A stretch starts and ends where jieba's words do (几分 inside 几分钟 is no slip), and
        # contains no function word (茶叶里有 is not 茶叶理由).
        bounds = {0}
        stops = set()
        pos = 0
        for token in self.tokenizer.cut(run, HMM=False):
            if token in self.stopwords:
                stops.add(pos)
            pos += len(token)
            bounds.add(pos)
        freq = self.tokenizer.FREQ
        out: list[str] = []
        i = 0
        while i < len(run):
            step = 1
            replacement = ""
            if i in bounds:
                for n in WINDOWS:
                    j = i + n
                    if j > len(run) or j not in bounds:
                        continue
                    w = run[i:j]
                    if w in words:
                        step = n
                        break
                    if freq.get(w, 0) >= COMMON or any(i <= s < j for s in stops):
                        continue
                    fix = by_sound.get(" ".join(syllables[i:j])) if all(syllables[i:j]) else None
                    if fix is not None:
                        step, replacement = n, fix
                        break
            out.append(replacement or run[i:i + step])
            i += step
        return "".join(out)

    def _fix_latin(self, m: re.Match[str]) -> str:
        w = m.group(0)
        if w in self.known_latin:
            return w
        if len(w) >= 4 and w in self.by_spelling:
            return self.by_spelling[w]
        if 2 <= len(w) <= 4 and set(w) <= INITIALS and w in self.by_initials:
            return self.by_initials[w]
        return w


def vocabulary(groups: Iterable[Iterable[str]]) -> dict[str, float]:
    """Words ranked by how many of ``groups`` (one per entry) use them."""
    rank: dict[str, float] = {}
    for g in groups:
        for w in set(g):
            rank[w] = rank.get(w, 0.0) + 1.0
    return rank
