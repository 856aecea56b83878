"""Normalisation with a map back to the original text.

One ``str.translate`` does the per-character work: NFKC, case folding and
traditional → simplified (``bot.textnorm.fold_char``, one character to one),
separators (spaces, punctuation, symbols, emoji, zero-width and control
characters) become a marker, and every Chinese character becomes the code of
its toneless pinyin syllable. So the *coded* text has exactly one character per
original character, and homophones (微信 / 威信 / 薇信) share a code: one
Aho-Corasick pass over the coded text finds exact, folded and homophone
candidates at once; each candidate is then checked against the real characters.

Markers are then dropped — a run longer than ``max_gap`` becomes a hard break
instead, so separators are skipped only *inside* a term — and a run of the same
character is read once (加加我微微信 → 加我微信) unless the pair is a word of its own
(妈妈, 谢谢: ``data/reduplication.txt``). Lexicon terms go through the same steps.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pypinyin import Style, lazy_pinyin

from bot.textnorm import fold_char

DATA = Path(__file__).with_name("data")

SEP = "\x01"    # a separator of the original text (dropped)
BREAK = "\x02"  # a gap longer than max_gap: never inside a match
KEEP_SYMBOLS = frozenset("+➕")  # symbols that stand for a word (+ for 加), not separators
CODE_BASE = 0xE000  # pinyin syllables are coded in the private-use area


def is_han(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2EBEF
            or 0xF900 <= o <= 0xFAFF or 0x30000 <= o <= 0x3134F)


def is_separator(ch: str) -> bool:
    if ch in KEEP_SYMBOLS:
        return False
    cat = unicodedata.category(ch)
    return cat[0] in "ZPSC" or cat in ("Mn", "Me", "Mc")


@functools.lru_cache(maxsize=1)
def reduplication_words() -> frozenset[str]:
    words: set[str] = set()
    for line in (DATA / "reduplication.txt").read_text("utf-8").splitlines():
        if line.startswith("#"):
            continue
        words.update(w for w in line.split() if len(w) == 2 and w[0] == w[1])
    return frozenset(words)


class _Syllables:
    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def code(self, syllable: str) -> str:
        c = self.codes.get(syllable)
        if c is None:
            c = chr(CODE_BASE + len(self.codes))
            if ord(c) > 0xF8FF:
                raise RuntimeError("too many pinyin syllables")
            self.codes[syllable] = c
        return c


SYLLABLES = _Syllables()


@functools.lru_cache(maxsize=65536)
def fold1(ch: str) -> str:
    """One character folded (NFKC, case, simplified), kept as is when folding gives several characters."""
    f = fold_char(ch)
    return f if len(f) == 1 else ch


@functools.lru_cache(maxsize=65536)
def pinyin_of(ch: str) -> str:
    """The toneless pinyin of a (simplified) Chinese character, or "" if it has none."""
    py = lazy_pinyin(ch, style=Style.NORMAL, errors=lambda _x: [""])
    return py[0] if py and py[0] and py[0].isascii() else ""


class _CodeTable(dict[int, str]):
    """ord(char) → its coded form; filled on first sight, so only characters that occur cost anything."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        f = fold1(ch)
        if is_separator(f):
            out = SEP
        elif is_han(f):
            py = pinyin_of(f)
            out = SYLLABLES.code(py) if py else f
        else:
            out = f
        self[cp] = out
        return out


CODE = _CodeTable()
# A Chinese character written again right after itself (separators allowed in between): 加加, 微 微.
_REPEAT = re.compile("([\u3400-\u9fff\uf900-\ufaff])(?:[\\s\\W_]{0,3}\\1)+")


@functools.lru_cache(maxsize=16)
def _long_gap(max_gap: int) -> re.Pattern[str]:
    return re.compile(f"{SEP}{{{max_gap + 1},}}")


@dataclass(slots=True)
class Normalised:
    """A text in matching form, with the way back to the original.

    ``compact`` is what the matcher scans. Compact index ``i`` stands for the
    original characters ``original[starts[i]:ends[i]]`` (one character, or a run
    of a repeated character read once).
    """

    original: str
    coded: str
    compact: str
    _starts: list[int] | None = None
    _ends: list[int] | None = None

    def _build(self) -> None:
        if self._starts is not None:
            return
        if len(self.coded) == len(self.compact):
            self._starts = list(range(len(self.coded)))
        else:
            self._starts = [i for i, c in enumerate(self.coded) if c != SEP]
        self._ends = [i + 1 for i in self._starts]

    @property
    def starts(self) -> list[int]:
        self._build()
        assert self._starts is not None
        return self._starts

    @property
    def ends(self) -> list[int]:
        self._build()
        assert self._ends is not None
        return self._ends

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Original offsets of compact ``[a, b)``."""
        return self.starts[a], self.ends[b - 1]

    def folded(self, a: int, b: int) -> str:
        """The real (folded) characters of compact ``[a, b)``, one per compact index."""
        starts, o = self.starts, self.original
        return "".join(fold1(o[starts[k]]) for k in range(a, b))

    def gaps_skipped(self, a: int, b: int) -> bool:
        return self.ends[b - 1] - self.starts[a] != b - a


def _collapse(n: Normalised) -> Normalised:
    """Read a run of the same character once, except word-forming pairs (妈妈)."""
    starts, ends, o = n.starts, n.ends, n.original
    redup = reduplication_words()
    keep: list[int] = []
    new_ends = list(ends)
    prev_real = ""
    for i, code in enumerate(n.compact):
        real = fold1(o[starts[i]]) if "\ue000" <= code <= "\uf8ff" else ""
        if real and real == prev_real and keep and (real + real) not in redup:
            new_ends[keep[-1]] = ends[i]  # the kept character now stands for the run
            continue
        keep.append(i)
        prev_real = real
    if len(keep) == len(n.compact):
        return n
    compact = "".join(n.compact[i] for i in keep)
    return Normalised(n.original, n.coded, compact, [starts[i] for i in keep], [new_ends[i] for i in keep])


def normalise(text: str, max_gap: int = 3) -> Normalised:
    coded = text.translate(CODE)
    if SEP in coded:
        if SEP * (max_gap + 1) in coded:
            coded = _long_gap(max_gap).sub(lambda m: BREAK * len(m.group()), coded)
        compact = coded.replace(SEP, "")
    else:
        compact = coded
    n = Normalised(text, coded, compact)
    for m in _REPEAT.finditer(text):
        if m.group(1) * 2 not in reduplication_words():
            return _collapse(n)
    return n


def fold_text(text: str, max_gap: int = 3) -> str:
    """The normalised real characters of ``text`` (what a term is compared with)."""
    n = normalise(text, max_gap)
    return n.folded(0, len(n.compact)) if n.compact else ""
