"""Many messages coded at once: ``normalize.code`` done with numpy lookup tables.

``str.translate`` looks every character up in a Python dict (~50 ns a character,
as long as the Aho-Corasick pass itself). For a batch, the messages are joined by
``JOINER`` and turned into an array of code points; one look-up in a table that
mirrors ``normalize.CODE`` (filled from it on first sight of a character) gives,
for every character, its code and flags: a letter, digit or digit-like character
(what contact details hold), a character folded into another (Ａ, 個: its folded
form, ``normalize.REAL``, is looked up in a second table) or coded beyond the BMP.
What comes out is, for every message, exactly what ``code(text, max_gap)`` and
``Normalised.real`` give, the compact positions where the same Chinese character
comes twice, and whether the message holds a letter or digit of ``detectors.LEAD``
or five digit-like characters.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Sequence
from itertools import chain

import numpy as np

from moderation import detectors
from moderation.normalize import BREAK, CODE, CODE_BASE, CODE_LIMIT, FOLD, JOINER, REAL, SEP

_SEP, _BREAK, _JOINER = ord(SEP), ord(BREAK), ord(JOINER)
_ALONE = 0xFDD1  # stands for a character beyond the BMP in the compact text: a noncharacter, in no pattern
_utf16 = codecs.utf_16_le_decode  # (bytes.decode goes through a Python function of the codec: 4× slower)
_ZERO = np.zeros(1, dtype=np.int64)
# A character's entry (32 bits): its code if in the BMP, and flags above it.
_LEAD, _DIGIT = 1 << 16, 1 << 17  # a letter or digit of detectors.LEAD; a digit-like character
_FOLDS = 1 << 18   # kept, and folded into another character (Ａ → a, 個 → 个), in the second table
_WIDE = 1 << 19    # coded beyond the BMP
_UNKNOWN = 0xFFFFFFFF  # not looked up yet
_lock = threading.Lock()
_tables: tuple[np.ndarray, np.ndarray] | None = None  # code point → entry; code point → folded character


def _entry(cp: int) -> tuple[int, int]:
    """A character's entry and folded form (``normalize.CODE`` and ``normalize.REAL``)."""
    if cp == _JOINER:
        return _JOINER, _JOINER
    ch, code, real = chr(cp), ord(CODE[cp]), ord(REAL[cp])
    flags = (_LEAD if ch in detectors.LEAD else 0) | (_DIGIT if ch in detectors.digit_chars() else 0)
    if code > 0xFFFF:
        flags |= _WIDE
        code = _ALONE
    if code != _SEP and real != cp:  # (a separator's folded form is not kept)
        flags |= _FOLDS
    return code | flags, real


def _get_tables() -> tuple[np.ndarray, np.ndarray]:
    global _tables
    if _tables is None:
        with _lock:
            if _tables is None:  # 4.25 MiB each, touched where text is
                _tables = (np.full(0x110000, _UNKNOWN, dtype=np.uint32), np.zeros(0x110000, dtype=np.uint32))
    return _tables


class Batch:
    """The coded batch: ``compact_utf16`` for the automaton, and each message's pieces.

    Offsets come in the batch's two coordinate systems: the coded text (one character per original
    character: ``orig_*``) and the compact text (``compact_*``); each message starts at
    ``orig_starts[i]`` and ``compact_starts[i]``, and offsets handed out are the message's own.
    """

    def __init__(self, n: int, orig_starts: np.ndarray, compact_starts: np.ndarray, coded16: np.ndarray,
                 compact16: np.ndarray, real32: np.ndarray, orig_of_compact: np.ndarray, flagged: np.ndarray,
                 entries: np.ndarray, alone: set[int]) -> None:
        self._coded = coded16.tobytes()  # each message's coded text is decoded when it is checked
        self.orig_of_compact = orig_of_compact  # the coded (so original) position of each compact character
        self.orig_starts_array = orig_starts
        self.compact_utf16 = compact16.tobytes()
        self.compact_text = _utf16(self.compact_utf16)[0]
        self.real_text = real32.tobytes().decode("utf-32-le", "surrogatepass")
        self.orig_starts = orig_starts.tolist()
        self._orig_ends = self.orig_starts[1:]  # one past the JOINER that ends each message but the last
        self._orig_ends.append(coded16.size + 1)
        self.compact_starts_array = compact_starts
        self.compact_starts = compact_starts.tolist()
        self._compact_ends = self.compact_starts[1:]
        self._compact_ends.append(compact16.size + 1)
        self.alone = alone
        # compact positions where the same Chinese character (a syllable code) comes there and right after
        same = (real32[1:] == real32[:-1]).nonzero()[0]
        if same.size:
            head = compact16[same]
            same = same[(head >= CODE_BASE) & (head < CODE_LIMIT)]
        self.repeats: list[int] = same.tolist()
        # messages with a letter or digit of detectors.LEAD, and with five digit-like characters or more
        self.lead: set[int] = set()
        self.digits: set[int] = set()
        if flagged.size:
            msg = orig_starts.searchsorted(flagged, side="right") - 1
            lead = msg[(entries & _LEAD) != 0]  # (entries: the flagged characters')
            if lead.size:
                self.lead = set(np.bincount(lead, minlength=n).nonzero()[0].tolist())
            digit = msg[(entries & _DIGIT) != 0]
            if digit.size >= 5:
                self.digits = set((np.bincount(digit, minlength=n) >= 5).nonzero()[0].tolist())

    def matches(self, found: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int, int, int]]:
        """(message, pattern, compact_start, compact_end, orig_start, orig_end) of each match of the automaton
        in ``compact_utf16`` (byte offsets), the offsets into the message's compact and original text; a
        match at an odd byte (inside a character) left out."""
        if not found:
            return []
        m = np.fromiter(chain.from_iterable(found), dtype=np.int64, count=3 * len(found)).reshape(-1, 3)
        m = m[(m[:, 1] & 1) == 0]
        compact_start, compact_end = m[:, 1] >> 1, m[:, 2] >> 1  # in the batch
        msg = self.compact_starts_array.searchsorted(compact_start, side="right") - 1
        compact_base, orig_base = self.compact_starts_array[msg], self.orig_starts_array[msg]
        orig_start = self.orig_of_compact[compact_start] - orig_base
        orig_end = self.orig_of_compact[compact_end - 1] - orig_base + 1
        return list(zip(msg.tolist(), m[:, 0].tolist(), (compact_start - compact_base).tolist(),
                        (compact_end - compact_base).tolist(), orig_start.tolist(), orig_end.tolist(), strict=True))

    def coded(self, i: int) -> str:
        return _utf16(self._coded[2 * self.orig_starts[i]:2 * self._orig_ends[i] - 2])[0]

    def compact(self, i: int) -> str:
        return self.compact_text[self.compact_starts[i]:self._compact_ends[i] - 1]

    def real(self, i: int) -> str:
        return self.real_text[self.compact_starts[i]:self._compact_ends[i] - 1]


def _gap(kept: np.ndarray, length: int) -> bool:
    """Whether ``length`` places in a row are not kept (separators): ``any`` over windows that double."""
    window, span = kept, 1  # window[i]: a place in [i, i + span) is kept
    while span * 2 <= length:
        window = window[:-span] | window[span:]
        span *= 2
    if span < length:
        window = window[:span - length] | window[length - span:]
    return not window.all()


def code_batch(texts: Sequence[str], max_gap: int) -> Batch | None:
    """The batch coded, or None when a message holds JOINER itself (then scan them one by one)."""
    points = np.frombuffer(JOINER.join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    entries, folded = _get_tables()
    point_entries = entries.take(points)  # each character's entry
    # what contact details hold, a character folded or coded beyond the BMP, or not looked up yet
    flagged = (point_entries > 0xFFFF).nonzero()[0]
    fl = point_entries[flagged]
    unknown = fl == _UNKNOWN
    if unknown.any():
        for cp in np.unique(points[flagged[unknown]]).tolist():
            entry, real = _entry(cp)
            folded[cp] = real
            entries[cp] = entry  # (after its folded form: a thread that reads the entry finds both)
        point_entries = entries.take(points)
        flagged = (point_entries > 0xFFFF).nonzero()[0]
        fl = point_entries[flagged]
    coded16 = point_entries.astype(np.uint16)  # (the flags above the code fall away)
    wide = flagged[(fl & _WIDE) != 0]  # the automaton reads two bytes a character: scanned alone
    folds = flagged[(fl & _FOLDS) != 0]
    real = points
    if folds.size:
        real = points.copy()
        real[folds] = folded.take(points[folds])
    kept = coded16 != _SEP
    keep = kept.nonzero()[0]
    if keep.size < coded16.size and _gap(kept, max_gap + 1):
        # runs of more than max_gap separators become breaks (normalize.long_gaps), which stay in the
        # compact text and read as the separator itself, folded
        if real is points:
            real = points.copy()
        sep = coded16 == _SEP
        edges = np.diff(np.concatenate(([0], sep.view(np.int8), [0])))
        starts, ends = (edges == 1).nonzero()[0], (edges == -1).nonzero()[0]
        long = ends - starts > max_gap
        for gap_start, gap_end in zip(starts[long].tolist(), ends[long].tolist(), strict=True):
            coded16[gap_start:gap_end] = _BREAK
            real[gap_start:gap_end] = [ord(FOLD[cp]) for cp in points[gap_start:gap_end].tolist()]
        keep = (coded16 != _SEP).nonzero()[0]
    compact16 = coded16.take(keep)
    joins = (compact16 == _JOINER).nonzero()[0]  # a JOINER is never a separator
    if joins.size != len(texts) - 1:
        return None
    orig_starts = np.concatenate((_ZERO, keep[joins] + 1))
    alone = set((orig_starts.searchsorted(wide, side="right") - 1).tolist()) if wide.size else set()
    return Batch(len(texts), orig_starts, np.concatenate((_ZERO, joins + 1)), coded16, compact16, real.take(keep),
                 keep, flagged, fl, alone)
