"""The matcher: one Aho-Corasick pass over the normalised text, then a check of every candidate.

Stages (``Hit.stage``), the way a hit was caught:

- ``exact`` — the term as written;
- ``normalised`` — after full-width / case / traditional folding, skipped separators
  (加 我 微 信, 加.我.微.信, 加😀我微信) or a repeated character (加加我微微信);
- ``variant`` — a form of ``data/variants.yaml`` (加我vx, 加我薇信, 拼夕夕);
- ``pinyin`` — only the sound matches (加我唯芯): graded ``review`` at most, for
  terms of three Chinese characters or more that share a character with the text
  (two-character homophones are everyday words; their evasions are in the table),
  and dropped when the characters are a word of their own (他很有威信);
- ``detector`` — a phone number, QQ / WeChat id, URL or e-mail (``detectors.py``).

A hit covered by an allow term of its category is cancelled (微信支付). Latin terms
and single characters match whole words only. A hit that starts in the middle of
a word (加微 in 参加微博) is ``cut`` and graded one level down (two-character terms
to ``info``, which is recorded but raises no alert) — and dropped when it
also spans skipped separators (参加，微信扫码: two words meeting across a comma). Where hits of one
category overlap, the one inside a longer hit of at least its level is dropped.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import ahocorasick_rs

from moderation import detectors, words
from moderation.lexicon import LEVEL_RANK, Lexicon, Term, cap_level, default_scope, lower_level
from moderation.normalize import (
    Normalised,
    code,
    collapse,
    collapses,
    fold1,
    fold_text,
    is_han,
    normalise,
    reduplication_words,
    repeated,
    runs_of,
)
from moderation.variants import Variants, default_meanings, default_variants

if TYPE_CHECKING:
    from moderation.batch import Batch

STAGE_RANK = {"exact": 0, "normalised": 1, "variant": 2, "pinyin": 3, "detector": 1}
DEFAULT_DETECTOR_LEVELS = {"phone": "reject", "qq": "reject", "wechat_id": "reject", "email": "review",
                           "url": "review"}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TWICE = re.compile("([\ue000-\ue7ff])(?=\\1)")  # a syllable code followed by itself (normalize.is_code)
_BATCH = 512  # messages per automaton pass in scan_many
_LEVELS = max(LEVEL_RANK.values()) + 1
_VERDICTS = 100_000  # remembered (pattern, characters) verdicts before the memo starts afresh


class Hit(NamedTuple):
    """One hit: immutable (a tuple: made in a third of a frozen dataclass's time, and a scan makes many)."""

    term: str
    category: str
    level: str
    start: int       # offsets into the original text
    end: int
    matched: str     # original[start:end]
    stage: str
    normalised: str  # the matched characters in normalised form
    cut: bool = False
    source: str = ""  # lexicon file:line, "db" or the detector kind

    def to_json(self) -> dict[str, object]:
        return self._asdict()


# Two coordinate systems: the original text (``orig_start``, ``orig_end``; the coded text has one character
# per original one, so its offsets are the same) and the compact text the automaton reads, with the
# separators dropped and, where it matters, runs read once (``compact_start``, ``compact_end``).
Found = tuple[int, int, int]  # an automaton match: (pattern, compact_start, compact_end)
OrigSpan = tuple[int, int]    # (orig_start, orig_end)


@dataclass(slots=True)
class _Cand:
    hit: Hit
    compact_start: int
    compact_end: int
    form: str        # the term's normalised form


@dataclass(frozen=True, slots=True)
class _Entry:
    """A pattern's reading as a term (or allow term): the form it was built from and how."""

    term: Term
    form: str
    how: str           # "" (the term itself), "letter" or "homophone"
    latin_edge: bool   # the form starts or ends with a letter or digit (whole words only)
    han_count: int
    latin: bool        # the term is Latin only: no grading by Chinese word boundaries
    whole_word: bool   # the term's scope is "word"
    short: bool        # a term of two characters or less: graded down to info when it is cut


# A verdict: the entries a candidate's characters may stand for, with their stage before the
# context checks ("literal" becomes exact or normalised once the original span is known).
_Verdict = tuple[tuple[_Entry, str], ...]


class Matcher:
    """Immutable once built; a reload builds a new one and swaps the reference.

    Every Chinese character of the text is coded by its pinyin (``normalize.CODE``), so one
    Aho-Corasick pass over the coded text finds the exact, folded and sound-alike candidates
    of every term. A repeat (加我我微信) is read once only where it matters: in a text with a
    candidate or a contact detail, or where reading it once may form a term
    (``repeat_may_form_term``, the rule; the other ``*_may_form_term`` methods find the runs it
    is asked about). A text with none of these, and without what a contact detail holds
    (``detectors.gate``), is clean: nothing else is done for it. Each candidate is checked
    against the real characters; what a (pattern, characters) pair may stand for is
    remembered, so a common sound-alike (统一 / 同意) costs one dictionary look-up.
    """

    def __init__(self, lexicon: Lexicon, *, variants: Variants | None = None, max_gap: int = 3,
                 allowed_domains: Iterable[str] = (), detector_levels: Mapping[str, str] | None = None,
                 detect: bool = True, meanings: Mapping[str, Sequence[str]] | None = None) -> None:
        self.lexicon = lexicon
        self.version = lexicon.version
        self.variants = variants or default_variants()
        self.max_gap = max_gap
        self.allowed_domains = tuple(allowed_domains)
        self.detector_levels = {**DEFAULT_DETECTOR_LEVELS, **(detector_levels or {})}
        self.detect = detect
        entries: dict[str, list[_Entry]] = {}
        for term in [*lexicon.terms, *lexicon.allow, *_other_meanings(lexicon, meanings)]:
            forms = [(term.form, "")]
            if not term.allow:
                forms += self.variants.expansions(term.form)
            han_count = sum(1 for c in term.form if is_han(c))
            for form, how in forms:
                coded = normalise(form, max_gap).compact
                if coded:
                    entries.setdefault(coded, []).append(_Entry(
                        term=term, form=form, how=how, latin_edge=form[0] in _ALNUM or form[-1] in _ALNUM,
                        han_count=han_count, latin=term.latin, whole_word=term.scope == "word",
                        short=len(term.form) <= 2))
        self.patterns = list(entries)
        self.meta: list[tuple[_Entry, ...]] = [tuple(entries[p]) for p in self.patterns]
        # every three codes in a row of a pattern (repeat_may_form_term)
        self._triples = frozenset(p[i:i + 3] for p in self.patterns for i in range(len(p) - 2))
        # The automaton runs over the UTF-16 bytes of the coded text (two bytes a character, so offsets
        # halve back to characters); a text with a character beyond the BMP takes the str one. One
        # automaton for one text and for a batch (one in memory and in the cache, not two).
        self._ac = (ahocorasick_rs.BytesAhoCorasick([p.encode("utf-16-le") for p in self.patterns])
                    if self.patterns else None)
        self.ac = ahocorasick_rs.AhoCorasick(self.patterns) if self.patterns else None
        # the first characters of the table's sound-alike forms: a text with none of them holds none
        self._sound_firsts = frozenset(alt[0] for alt, _canon in self.variants.sound_alike)
        self._gate = detectors.gate()
        self._verdicts: dict[tuple[int, str], _Verdict] = {}

    @property
    def pattern_count(self) -> int:
        return len(self.patterns)

    # -- the repeat rule ----------------------------------------------------------------------------------

    def repeat_may_form_term(self, before: str, repeated: str, after: str) -> bool:
        """The repeat rule: may reading a run of one character once (加我我微信 → 加我微信) form a term
        that is not in the text as written?

        Read once, the run is a single character, now followed directly by the character after the run.
        A term that this forms must run across that place, and must not start at the run (such a term
        stands in the text as written, from the run's last character on). So the term holds three
        characters in a row: the one before the run (``before``), the run's own (``repeated``) and the
        one after the run (``after``). If no term has those three in a row, reading the run once forms
        nothing new. The characters are given as syllable codes (the compact text), so one answer covers
        every form, variant and sound-alike of every term.
        """
        return before + repeated + after in self._triples

    def _run_may_form_term(self, compact: str, real: str, run_start: int, text_start: int = 0) -> bool:
        """``repeat_may_form_term`` for the run of the character ``real[run_start]`` that starts at compact
        ``run_start`` (in a text, or in a batch's texts: the message starts at ``text_start`` and a JOINER,
        in no pattern, ends it). False when nothing comes before or after the run, and where ``run_start``
        is within a run (its start answers for it)."""
        if run_start == text_start or real[run_start - 1] == real[run_start]:
            return False
        run_end = run_start + 1
        while run_end < len(real) and real[run_end] == real[run_start]:
            run_end += 1
        return run_end < len(real) and self.repeat_may_form_term(compact[run_start - 1], compact[run_start],
                                                                 compact[run_end])

    def _repeats_may_form_term(self, n: Normalised, doubled: list[int]) -> bool:
        """Whether reading a repeated character once may form a term in ``n``, given the compact positions
        where a syllable code follows itself (among them, every place where a character does)."""
        compact, real, redup = n.compact, n.real, reduplication_words()
        size = len(real)
        for pos in doubled:
            ch = real[pos]
            if (pos + 1 < size and real[pos + 1] == ch and ch * 2 not in redup
                    and self._run_may_form_term(compact, real, pos)):
                return True
        return False

    def _codes_may_form_term(self, compact: str, doubled: list[int]) -> bool:
        """``_repeats_may_form_term`` asked of the codes alone, without the real characters (a first look
        for a text without a candidate; True where the real answer may be True): a run of a character lies
        within a run of its code (事实 is two characters of one code), so the character before it has the
        code before the code run or the run's own code, and so has the one after it."""
        size = len(compact)
        for code_start in doubled:
            repeated = compact[code_start]
            if code_start and compact[code_start - 1] == repeated:
                continue  # within a code run: its start looks for it
            code_end = code_start + 1
            while code_end < size and compact[code_end] == repeated:
                code_end += 1
            befores = (repeated, compact[code_start - 1]) if code_start else (repeated,)
            afters = (repeated, compact[code_end]) if code_end < size else (repeated,)
            if any(self.repeat_may_form_term(before, repeated, after) for before in befores for after in afters):
                return True
        return False

    def _reading_once_matters(self, n: Normalised, found: list[Found], drops: list[int]) -> bool:
        """Whether reading the repeats once (dropping the compact ``drops``) may change the hits of
        ``found``: where a run may form a term (the repeat rule), or lies within four characters of a
        candidate (its characters, its offsets, the three characters either side that grade it or the
        separators it spans may change)."""
        for first_drop, last_drop in runs_of(drops):
            if self._run_may_form_term(n.compact, n.real, first_drop - 1):
                return True
            if any(first_drop <= compact_end + 4 and compact_start - 4 <= last_drop
                   for _pid, compact_start, compact_end in found):
                return True
        return False

    # -- scanning -----------------------------------------------------------------------------------------

    def _find(self, compact: str) -> list[Found]:
        """Every pattern in ``compact``."""
        if self._ac is None or not compact:
            return []
        utf16 = compact.encode("utf-16-le")
        if len(utf16) == 2 * len(compact):
            # a match at an odd byte would start inside a character
            return [(pid, start >> 1, end >> 1)
                    for pid, start, end in self._ac.find_matches_as_indexes(utf16, overlapping=True) if not start & 1]
        assert self.ac is not None
        return self.ac.find_matches_as_indexes(compact, overlapping=True)

    def scan(self, text: str) -> list[Hit]:
        coded, compact = code(text, self.max_gap)
        found = self._find(compact)
        gated = self.detect and self._gate.search(text) is not None
        doubled = [m.start() for m in _TWICE.finditer(compact)]  # where a syllable code follows itself: 加加, 事实
        if not found and not gated and not (doubled and self._codes_may_form_term(compact, doubled)
                                            and repeated(text)):
            return []  # no candidate, no contact detail, and no repeat that may form a term when read once
        return self._check(text, coded, compact, found, gated, doubled)

    def scan_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        """``[self.scan(t) for t in texts]``, the same work per message, with the coding, the automaton
        pass, the look for repeats and the look for contact details done once per batch (``batch.py``)."""
        out: list[list[Hit]] = []
        for lo in range(0, len(texts), _BATCH):
            out += self._scan_batch(texts[lo:lo + _BATCH])
        return out

    def _scan_batch(self, texts: Sequence[str]) -> list[list[Hit]]:
        from moderation.batch import code_batch  # numpy, loaded only where batches are scanned

        out: list[list[Hit]] = [[] for _ in texts]
        if not texts:
            return out
        batch = code_batch(texts, self.max_gap)
        if batch is None:
            return [self.scan(t) for t in texts]
        gated: set[int] = set()
        if self.detect:
            search = self._gate.search
            gated = batch.lead | {i for i in batch.digits - batch.lead if search(texts[i]) is not None}
        found, spans = self._batch_found(batch)
        doubled = self._batch_doubled(batch, found, gated)
        special = gated | doubled.keys() | batch.alone
        for i, here in found.items():
            if i not in special:  # nothing to read once and no contact detail: graded as it stands
                out[i] = self._hits(texts[i], batch.real(i), here, spans[i], ())
        for i in special:
            if i in batch.alone:
                out[i] = self.scan(texts[i])
            else:
                out[i] = self._check(texts[i], batch.coded(i), batch.compact(i), found.get(i, []), i in gated,
                                     doubled.get(i, []), batch.real(i), spans.get(i))
        return out

    def _batch_found(self, batch: Batch) -> tuple[dict[int, list[Found]], dict[int, list[OrigSpan]]]:
        """Per message of the batch, what the automaton found and where each lies in the original text."""
        found: dict[int, list[Found]] = {}
        spans: dict[int, list[OrigSpan]] = {}
        if self._ac is None:
            return found, spans
        for i, pid, compact_start, compact_end, orig_start, orig_end in batch.matches(
                self._ac.find_matches_as_indexes(batch.compact_utf16, overlapping=True)):
            if i in found:
                found[i].append((pid, compact_start, compact_end))
                spans[i].append((orig_start, orig_end))
            else:
                found[i] = [(pid, compact_start, compact_end)]
                spans[i] = [(orig_start, orig_end)]
        return found, spans

    def _batch_doubled(self, batch: Batch, found: Mapping[int, object], gated: set[int]) -> dict[int, list[int]]:
        """Per message, the compact positions where a Chinese character comes twice in a row (not a word
        such as 妈妈), for the messages where reading it once may matter: with a candidate, with a contact
        detail, or where it may form a term."""
        if self._ac is None:
            return {}
        redup = reduplication_words()
        compact, real, text_starts = batch.compact_text, batch.real_text, batch.compact_starts
        doubled: dict[int, list[int]] = {}
        forms: set[int] = set()
        for pos in batch.repeats:
            if real[pos] * 2 in redup:
                continue
            i = bisect_right(text_starts, pos) - 1
            text_start = text_starts[i]
            doubled.setdefault(i, []).append(pos - text_start)
            if (i not in forms and i not in found and i not in gated
                    and self._run_may_form_term(compact, real, pos, text_start)):
                forms.add(i)
        return {i: at for i, at in doubled.items() if i in forms or i in found or i in gated}

    def _check(self, text: str, coded: str, compact: str, found: list[Found], gated: bool, doubled: list[int],
               real: str | None = None, spans: list[OrigSpan] | None = None) -> list[Hit]:
        """The hits of one text, given what the automaton found in its compact form, whether it may hold a
        contact detail, and the compact positions where a syllable code follows itself (or a set of them
        that holds every position where the characters themselves repeat); ``spans``, when given, are the
        original offsets of what was found."""
        n = Normalised(text, coded, compact, _real=real)
        if doubled and (found or self._repeats_may_form_term(n, doubled)):
            # a repeat read once may make, move or unmake a candidate, and changes the context it is graded in
            drops = collapses(n, doubled)
            if drops and (not found or self._reading_once_matters(n, found, drops)):
                again = self._find(_dropped(n.compact, drops))
                if again:
                    n = collapse(n, drops)
                found, spans = again, None
        dets = detectors.detect(text, self.allowed_domains) if gated else ()
        if not found and not dets:
            return []
        if spans is None:
            spans = [n.span(compact_start, compact_end) for _pid, compact_start, compact_end in found]
        return self._hits(text, n.real, found, spans, dets)

    def _hits(self, text: str, real: str, found: list[Found], spans: list[OrigSpan],
              dets: Sequence[detectors.Detection]) -> list[Hit]:
        """The hits of ``found`` (compact offsets into ``real``, original ``spans``) and of the contact
        details ``dets``, in the order of the text."""
        cands = self._candidates(text, real, found, spans) if found else []
        if not cands and not dets:
            return []
        hits = [c.hit for c in _best(cands)] if cands else []
        for d in dets:
            hits.append(Hit(term=detectors.KINDS[d.kind], category=detectors.CATEGORY_OF[d.kind],
                            level=self.detector_levels.get(d.kind, "review"), start=d.start, end=d.end,
                            matched=text[d.start:d.end], stage="detector", normalised=d.value, cut=False,
                            source=d.kind))
        if len(hits) > 1:
            hits.sort(key=lambda h: (h.start, -h.end, h.category))
        return hits

    # -- grading ------------------------------------------------------------------------------------------

    def _verdict(self, pid: int, folded: str) -> _Verdict:
        """What the characters ``folded``, found by pattern ``pid``, may stand for (context aside);
        remembered."""
        verdict = self._verdicts.get((pid, folded))
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[(pid, folded)] = self._new_verdict(pid, folded)
        return verdict

    def _new_verdict(self, pid: int, folded: str) -> _Verdict:
        out: list[tuple[_Entry, str]] = []
        for e in self.meta[pid]:
            term, form = e.term, e.form
            sound_alike = False
            if folded == form:
                stage, sound_alike = ("variant", e.how == "homophone") if e.how else ("literal", False)
            elif not self._sound_firsts.isdisjoint(folded) and self.variants.known_sound_alike(folded, form):
                stage, sound_alike = "variant", True
            else:
                stage, sound_alike = "pinyin", True
            if term.allow:
                if stage != "pinyin":
                    out.append((e, stage))
                continue
            if stage == "pinyin" and (e.han_count < 3 or not set(folded) & set(form)):
                continue  # two-character homophones are too common; their evasions are in the table
            if sound_alike and folded != term.form and words.is_word(folded):
                continue  # 威信, 饲料: a word of its own, not a sound-alike of the term
            if stage == "pinyin" and words.other_word(folded, form):
                continue  # 私下练习: the characters that differ are a word of their own (练习, not 联系)
            out.append((e, stage))
        return tuple(out)

    def _candidates(self, text: str, real: str, found: list[Found], spans: list[OrigSpan]) -> list[_Cand]:
        """The candidates of ``found`` that stand, graded: what their characters may stand for, whole Latin
        words, allow terms, and Chinese word boundaries (``_in_context``)."""
        cands: list[_Cand] = []
        allows: list[tuple[int, int, str]] = []
        for (pid, compact_start, compact_end), (orig_start, orig_end) in zip(found, spans, strict=True):
            folded = real[compact_start:compact_end]
            for e, stage in self._verdict(pid, folded):
                term = e.term
                if e.latin_edge and not _whole_latin(text, orig_start, orig_end, e.form):
                    continue
                if stage == "literal":
                    stage = "exact" if text[orig_start:orig_end] == term.text else "normalised"
                if term.allow:
                    allows.append((compact_start, compact_end, term.category))
                    continue
                if stage == "pinyin" and (words.crossed(real, compact_start) or words.crossed(real, compact_end)):
                    continue  # 可以直接 is not 可以治: a sound-alike whose edge lies inside a word of the text
                level = cap_level(term.level, "review") if stage == "pinyin" else term.level
                cut = False
                if not e.latin:
                    graded = _in_context(e, level, real, compact_start, compact_end,
                                         skipped=orig_end - orig_start != compact_end - compact_start)
                    if graded is None:
                        continue
                    level, cut = graded
                hit = Hit(term=term.text, category=term.category, level=level, start=orig_start, end=orig_end,
                          matched=text[orig_start:orig_end], stage=stage, normalised=folded, cut=cut,
                          source=term.source)
                cands.append(_Cand(hit=hit, compact_start=compact_start, compact_end=compact_end, form=term.form))
        if allows:
            cands = [c for c in cands if not any(
                allow_start <= c.compact_start and c.compact_end <= allow_end
                and category in (c.hit.category, ANY_CATEGORY)
                for allow_start, allow_end, category in allows)]
        return cands


ANY_CATEGORY = "*"  # an allow term of every category: a phrase of data/meanings.yaml


def _other_meanings(lexicon: Lexicon, meanings: Mapping[str, Sequence[str]] | None) -> list[Term]:
    """The context rule: the phrases of ``data/meanings.yaml`` in which a word of the lexicon means
    something else (滚开的水), as allow terms of every category, for the words the lexicon has."""
    table = default_meanings() if meanings is None else meanings
    forms = {t.form for t in lexicon.terms}
    return [Term(text=p, form=p, category=ANY_CATEGORY, level="info", source="meanings.yaml", allow=True)
            for word, phrases in table.items() if word in forms for p in phrases]


def _in_context(e: _Entry, level: str, real: str, compact_start: int, compact_end: int,
                skipped: bool) -> tuple[str, bool] | None:
    """(level, cut) of a Chinese candidate at compact ``[compact_start, compact_end)`` of ``real`` by the word
    boundaries around it (``words.crossed`` looks at three characters either side), or None when it does not
    stand: a whole-word term must not cut a word; a term that starts inside a word is cut and graded down,
    and dropped when separators were skipped (or a repeat read once) inside it — 参加，微信…: a word
    boundary and a separator, two words that meet by chance."""
    if e.whole_word:
        if words.crossed(real, compact_start) or words.crossed(real, compact_end):
            return None
        return level, False
    if not words.crossed(real, compact_start):
        return level, False
    if skipped:
        return None
    return ("info" if e.short else lower_level(level)), True


def _whole_latin(text: str, orig_start: int, orig_end: int, form: str) -> bool:
    """A term that starts or ends with a letter or digit must not continue a word of the original (devx):
    ``text[orig_start:orig_end]`` is where it was found."""
    if form[0] in _ALNUM and orig_start > 0 and fold1(text[orig_start - 1]) in _ALNUM:
        return False
    return not (form[-1] in _ALNUM and orig_end < len(text) and fold1(text[orig_end]) in _ALNUM)


def _dropped(text: str, drops: list[int]) -> str:
    """``text`` without the characters at the (sorted) indices ``drops``."""
    pieces, last = [], 0
    for d in drops:
        pieces.append(text[last:d])
        last = d + 1
    pieces.append(text[last:])
    return "".join(pieces)


def _best(cands: list[_Cand]) -> list[_Cand]:
    """One hit per term and place; drop a hit inside a longer one of its category with at least its level."""
    if len(cands) == 1:
        return cands
    by_key: dict[tuple[str, str, int, int], _Cand] = {}
    for c in cands:
        key = (c.hit.category, c.form, c.compact_start, c.compact_end)
        old = by_key.get(key)
        if old is None or ((STAGE_RANK[c.hit.stage], -LEVEL_RANK[c.hit.level])
                           < (STAGE_RANK[old.hit.stage], -LEVEL_RANK[old.hit.level])):
            by_key[key] = c
    return _outermost(list(by_key.values()))


def _outermost(cands: list[_Cand]) -> list[_Cand]:
    """``cands`` (in their order) without those lying inside a longer one of their category with at least
    their level. A sweep in the order of (start, longest first): a candidate is inside another when one of
    its category and a level at least its own, seen before its own place, reached its end — n log n,
    not every pair (a long message holds thousands of candidates)."""
    order = sorted(range(len(cands)), key=lambda k: (cands[k].compact_start, -cands[k].compact_end))
    reach: dict[tuple[str, int], int] = {}  # (category, level rank) → the furthest end seen so far
    inside: set[int] = set()
    i = 0
    while i < len(order):
        place = _place(cands[order[i]])
        j = i
        while j < len(order) and _place(cands[order[j]]) == place:
            j += 1
        group = order[i:j]  # one place: none is inside another
        for k in group:
            c = cands[k]
            if any(reach.get((c.hit.category, rank), -1) >= c.compact_end
                   for rank in range(LEVEL_RANK[c.hit.level], _LEVELS)):
                inside.add(k)
        for k in group:
            c = cands[k]
            key = (c.hit.category, LEVEL_RANK[c.hit.level])
            reach[key] = max(reach.get(key, -1), c.compact_end)
        i = j
    return [c for k, c in enumerate(cands) if k not in inside]


def _place(c: _Cand) -> tuple[int, int]:
    return c.compact_start, c.compact_end


def phrase_found(phrase: str, texts: Iterable[str], *, max_gap: int = 3) -> bool:
    """Whether ``phrase``, read as a term is read (normalised, its variants, sound-alikes), is found in any of
    ``texts``. An allow term found in the bare words of a hit would cancel that hit wherever it is written."""
    form = fold_text(phrase)
    if not form:
        return False
    probe = Matcher(Lexicon(terms=[Term(text=phrase, form=form, category="probe", level="review",
                                        scope=default_scope(form, None))]), max_gap=max_gap, detect=False)
    return any(probe.scan(t) for t in texts)


def first_of_each_term(hits: list[Hit]) -> list[Hit]:
    """The first hit of each (category, term), in order: one alert (or one finding of a text check) per term
    however often a text says it."""
    seen: set[tuple[str, str]] = set()
    out = []
    for h in hits:
        if (h.category, h.term) not in seen:
            seen.add((h.category, h.term))
            out.append(h)
    return out
