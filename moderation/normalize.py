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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pypinyin import Style, lazy_pinyin

from bot.textnorm import fold_char

DATA = Path(__file__).with_name("data")

SEP = "\x01"    # a separator of the original text (dropped)
BREAK = "\x02"  # a gap longer than max_gap: never inside a match
JOINER = "\ufdd0"  # between the coded texts of a batch: a noncharacter, never produced by CODE
KEEP_SYMBOLS = frozenset("+➕")  # symbols that stand for a word (+ for 加), not separators
CODE_BASE = 0xE000  # pinyin syllables are coded in the private-use area …
CODE_LIMIT = 0xE800  # … 2,048 codes at most (pypinyin has about 410 toneless syllables)


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
            if CODE_BASE + len(self.codes) >= CODE_LIMIT:
                raise RuntimeError("too many pinyin syllables")
            c = chr(CODE_BASE + len(self.codes))
            self.codes[syllable] = c
        return c


SYLLABLES = _Syllables()


def is_code(ch: str) -> bool:
    """True for a pinyin syllable code (a Chinese character of the text, coded)."""
    return "\ue000" <= ch < "\ue800"


@functools.lru_cache(maxsize=65536)
def fold1(ch: str) -> str:
    """One character folded (NFKC, case, simplified), kept as is when folding gives several characters."""
    if "\ud800" <= ch <= "\udfff":
        return ch  # a lone surrogate (broken UTF-16 in the input) has no folding; it is a separator
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


class _FoldTable(dict[int, str]):
    """ord(char) → the character folded (``fold1``), for ``str.translate``; with ``keep_separators``
    False, a separator becomes SEP as in CODE."""

    def __init__(self, keep_separators: bool) -> None:
        super().__init__()
        self.keep_separators = keep_separators

    def __missing__(self, cp: int) -> str:
        f = fold1(chr(cp))
        out = self[cp] = f if self.keep_separators or not is_separator(f) else SEP
        return out


CODE = _CodeTable()
FOLD = _FoldTable(keep_separators=True)
REAL = _FoldTable(keep_separators=False)
# A Chinese character written again right after itself (separators allowed in between): 加加, 微 微.
_REPEAT = re.compile("([\u3400-\u9fff\uf900-\ufaff])(?:[\\s\\W_]{0,3}\\1)+")


@functools.lru_cache(maxsize=16)
def _long_gap(max_gap: int) -> re.Pattern[str]:
    return re.compile(f"{SEP}{{{max_gap + 1},}}")


def _breaks(m: re.Match[str]) -> str:
    return BREAK * len(m.group())


def long_gaps(coded: str, max_gap: int) -> str:
    """A run of more than ``max_gap`` separators becomes a hard break, never skipped inside a term."""
    if SEP * (max_gap + 1) in coded:
        return _long_gap(max_gap).sub(_breaks, coded)
    return coded


def code(text: str, max_gap: int = 3) -> tuple[str, str]:
    """(coded, compact) of a text: one coded character per original one, then the separators dropped."""
    coded = text.translate(CODE)
    if SEP not in coded:
        return coded, coded
    coded = long_gaps(coded, max_gap)
    return coded, coded.replace(SEP, "")


@dataclass(slots=True)
class Normalised:
    """A text in matching form, with the way back to the original.

    ``compact`` is what the matcher scans. Compact index ``i`` stands for the
    original characters ``original[starts[i]:ends[i]]`` (one character, or a run
    of a repeated character read once), and ``real[i]`` is that character folded.
    The map and the folded characters are built on first use: a text without
    candidates never needs them.
    """

    original: str
    coded: str
    compact: str
    _starts: list[int] | None = None
    _ends: list[int] | None = None
    _real: str | None = None

    def _build(self) -> None:
        if self._starts is not None:
            return
        if len(self.coded) == len(self.compact):
            self._starts = list(range(len(self.coded)))
        else:  # the places between the separators, a run at a time
            starts: list[int] = []
            orig_start = 0
            for piece in self.coded.split(SEP):
                orig_end = orig_start + len(piece)
                starts += range(orig_start, orig_end)
                orig_start = orig_end + 1
            self._starts = starts

    @property
    def starts(self) -> list[int]:
        self._build()
        assert self._starts is not None
        return self._starts

    @property
    def ends(self) -> list[int]:
        """Where each compact character ends in the original: one past its start, or past its run."""
        if self._ends is None:
            self._ends = [i + 1 for i in self.starts]
        return self._ends

    @property
    def real(self) -> str:
        """The folded original characters, one per compact index."""
        if self._real is None:
            if self._starts is None and BREAK not in self.coded:
                # REAL drops the very characters CODE turns into separators: the two line up
                self._real = self.original.translate(REAL).replace(SEP, "")
            else:
                folded = self.original.translate(FOLD)
                self._real = "".join([folded[i] for i in self.starts])
        return self._real

    def span(self, compact_start: int, compact_end: int) -> tuple[int, int]:
        """(orig_start, orig_end): the original offsets of compact ``[compact_start, compact_end)``."""
        starts = self._starts
        if starts is None:
            if len(self.coded) == len(self.compact):
                return compact_start, compact_end
            self._build()
            starts = self._starts
            assert starts is not None
        ends = self._ends
        last = compact_end - 1
        return starts[compact_start], (ends[last] if ends is not None else starts[last] + 1)

    def folded(self, compact_start: int, compact_end: int) -> str:
        """The real (folded) characters of compact ``[compact_start, compact_end)``, one per compact index."""
        return self.real[compact_start:compact_end]


def repeated(text: str) -> bool:
    """True if a Chinese character is written again right after itself, and the pair is not a word (妈妈)."""
    redup = reduplication_words()
    return any(m.group(1) * 2 not in redup for m in _REPEAT.finditer(text))


def doubled(compact: str) -> list[int]:
    """The positions ``i`` where ``compact[i + 1]`` is the same syllable code as ``compact[i]``."""
    return [i for i in range(len(compact) - 1) if compact[i] == compact[i + 1] and is_code(compact[i])]


def _drops(n: Normalised, positions: Iterable[int]) -> list[int]:
    """The compact indices a repeat makes redundant: the same character right after itself,
    unless the pair is a word (妈妈), given every position where the syllable code doubles."""
    real, redup = n.real, reduplication_words()
    return sorted({i + 1 for i in positions if real[i] == real[i + 1] and real[i] * 2 not in redup})


def collapses(n: Normalised, positions: Iterable[int]) -> list[int]:
    """The indices ``collapse`` drops, or [] when reading repeats once changes nothing in this text."""
    drops = _drops(n, positions)
    return drops if drops and repeated(n.original) else []


def runs_of(drops: list[int]) -> list[tuple[int, int]]:
    """The (first, last) index of each run of consecutive indices in the sorted ``drops``: the characters
    dropped from one run of a repeated character."""
    runs: list[tuple[int, int]] = []
    for d in drops:
        if runs and d == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def collapse(n: Normalised, drops: list[int] | None = None) -> Normalised:
    """Read a run of the same character once, except word-forming pairs (妈妈): the kept character
    stands for the run."""
    if drops is None:
        drops = _drops(n, doubled(n.compact))
    if not drops:
        return n
    starts, ends, compact, real = n.starts, n.ends, n.compact, n.real
    keep_c: list[str] = []
    keep_r: list[str] = []
    keep_s: list[int] = []
    keep_e: list[int] = []
    last = 0
    for first_drop, last_drop in runs_of(drops):
        # keep last..first_drop-1; the kept character before the run now ends where the run ends
        keep_c.append(compact[last:first_drop])
        keep_r.append(real[last:first_drop])
        keep_s += starts[last:first_drop]
        keep_e += ends[last:first_drop - 1]
        keep_e.append(ends[last_drop])
        last = last_drop + 1
    keep_c.append(compact[last:])
    keep_r.append(real[last:])
    keep_s += starts[last:]
    keep_e += ends[last:]
    return Normalised(n.original, n.coded, "".join(keep_c), keep_s, keep_e, "".join(keep_r))


def normalise(text: str, max_gap: int = 3) -> Normalised:
    coded, compact = code(text, max_gap)
    n = Normalised(text, coded, compact)
    return collapse(n) if repeated(text) else n


def fold_text(text: str, max_gap: int = 3) -> str:
    """The normalised real characters of ``text`` (what a term is compared with)."""
    n = normalise(text, max_gap)
    return n.real if n.compact else ""
