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
from typing import NamedTuple

import ahocorasick_rs

from moderation import detectors, words
from moderation.lexicon import LEVEL_RANK, Lexicon, Term, cap_level, lower_level
from moderation.normalize import (
    Normalised,
    code,
    collapse,
    collapses,
    fold1,
    is_han,
    normalise,
    reduplication_words,
    repeated,
)
from moderation.variants import Variants, default_variants

STAGE_RANK = {"exact": 0, "normalised": 1, "variant": 2, "pinyin": 3, "detector": 1}
DEFAULT_DETECTOR_LEVELS = {"phone": "reject", "qq": "reject", "wechat_id": "reject", "email": "review",
                           "url": "review"}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TWICE = re.compile("([\ue000-\ue7ff])(?=\\1)")  # a syllable code followed by itself (normalize.is_code)
_BATCH = 512  # messages per automaton pass in scan_many
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


@dataclass(slots=True)
class _Cand:
    hit: Hit
    a: int           # compact offsets
    b: int
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
    candidate, or where the characters before, of and after the run are three codes in a row of
    a term (``_run_joins``; for one text at a time a regex finds where a code comes twice and
    the codes around it are looked up first, ``_codes_join``; for a batch the arrays of
    ``batch.py`` show where a character comes twice). A text with none of these, and without
    what a contact detail holds (``detectors.gate``), is clean: nothing else is done for it. Each candidate is
    checked against the real characters; what a (pattern, characters) pair may stand for is
    remembered, so a common sound-alike (统一 / 同意) costs one dictionary look-up.
    """

    def __init__(self, lexicon: Lexicon, *, variants: Variants | None = None, max_gap: int = 3,
                 allowed_domains: Iterable[str] = (), detector_levels: Mapping[str, str] | None = None,
                 detect: bool = True) -> None:
        self.lexicon = lexicon
        self.version = lexicon.version
        self.variants = variants or default_variants()
        self.max_gap = max_gap
        self.allowed_domains = tuple(allowed_domains)
        self.detector_levels = {**DEFAULT_DETECTOR_LEVELS, **(detector_levels or {})}
        self.detect = detect
        entries: dict[str, list[_Entry]] = {}
        for term in [*lexicon.terms, *lexicon.allow]:
            forms = [(term.form, "")]
            if not term.allow:
                forms += self.variants.expansions(term.form)
            han_count = sum(1 for c in term.form if is_han(c))
            for form, how in forms:
                coded = normalise(form, max_gap).compact
                if coded:
                    edge = form[0] in _ALNUM or form[-1] in _ALNUM
                    entries.setdefault(coded, []).append(_Entry(term, form, how, edge, han_count, term.latin,
                                                                term.scope == "word", len(term.form) <= 2))
        self.patterns = list(entries)
        self.meta: list[tuple[_Entry, ...]] = [tuple(entries[p]) for p in self.patterns]
        # three codes in a row in a pattern: where reading a repeat once (加我我微信 → 加我微信) can join a
        # term that is not written as it stands (_run_joins)
        self._triples = frozenset(p[j:j + 3] for p in self.patterns for j in range(len(p) - 2))
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

    def _find(self, compact: str) -> list[tuple[int, int, int]]:
        """(pattern, start, end) of every pattern in ``compact``."""
        if self._ac is None or not compact:
            return []
        b = compact.encode("utf-16-le")
        if len(b) == 2 * len(compact):
            # a match at an odd byte would start inside a character
            found = [(p, s >> 1, e >> 1) for p, s, e in self._ac.find_matches_as_indexes(b, overlapping=True)
                     if not s & 1]
        else:
            assert self.ac is not None
            found = self.ac.find_matches_as_indexes(compact, overlapping=True)
        return found

    def scan(self, text: str) -> list[Hit]:
        coded, compact = code(text, self.max_gap)
        found = self._find(compact)
        gated = self.detect and self._gate.search(text) is not None
        # where a syllable code follows itself (加加我微微信): a repeat that may be read once
        twice = [m.start() for m in _TWICE.finditer(compact)] if _TWICE.search(compact) else []
        if not found and not gated and (not twice or not self._codes_join(compact, twice) or not repeated(text)):
            return []  # no term, and no character written twice in a row that could join one: nothing to read once
        return self._check(text, coded, compact, found, gated, twice)

    def scan_many(self, texts: Sequence[str]) -> list[list[Hit]]:
        """``[self.scan(t) for t in texts]``, the same work per message, with the coding, the automaton
        pass, the look for repeats and the look for contact details done once per batch (``batch.py``)."""
        out: list[list[Hit]] = []
        for lo in range(0, len(texts), _BATCH):
            out += self._scan_batch(texts[lo:lo + _BATCH])
        return out

    def _scan_batch(self, texts: Sequence[str]) -> list[list[Hit]]:
        from moderation.batch import code_batch

        out: list[list[Hit]] = [[] for _ in texts]
        if not texts:
            return out
        b = code_batch(texts, self.max_gap)
        if b is None:
            return [self.scan(t) for t in texts]
        found: dict[int, list[tuple[int, int, int]]] = {}
        spans: dict[int, list[tuple[int, int]]] = {}
        twice: dict[int, list[int]] = {}
        gated: set[int] = set()
        if self.detect:
            search = self._gate.search
            gated = b.lead | {i for i in b.digits - b.lead if search(texts[i]) is not None}
        if self._ac is not None:
            starts = b.cstarts
            for i, pid, s, e, os, oe in b.matches(self._ac.find_matches_as_indexes(b.compact_utf16, overlapping=True)):
                if i in found:
                    found[i].append((pid, s, e))
                    spans[i].append((os, oe))
                else:
                    found[i] = [(pid, s, e)]
                    spans[i] = [(os, oe)]
            redup = reduplication_words()
            compact, real = b.compact_text, b.real_text
            joins: set[int] = set()
            for k in b.repeats:  # the same Chinese character twice in a row: may reading it once matter?
                r = real[k]
                if r * 2 in redup:
                    continue
                i = bisect_right(starts, k) - 1
                first = starts[i]
                twice.setdefault(i, []).append(k - first)
                if i not in joins and i not in found and i not in gated and self._run_joins(compact, real, k, first):
                    joins.add(i)  # without a candidate, only if it may join a term
            twice = {i: ks for i, ks in twice.items() if i in joins or i in found or i in gated}
        special = gated | twice.keys() | b.alone
        hits, real = self._hits, b.real
        for i, here in found.items():
            if i not in special:  # nothing to read once and no contact detail: graded as it stands
                out[i] = hits(texts[i], real(i), here, spans[i], ())
        for i in special:
            if i in b.alone:
                out[i] = self.scan(texts[i])
            else:
                out[i] = self._check(texts[i], b.coded(i), b.compact(i), found.get(i, []), i in gated,
                                     twice.get(i, []), real(i), spans.get(i))
        return out

    def _check(self, text: str, coded: str, compact: str, found: list[tuple[int, int, int]], gated: bool,
               twice: list[int], real: str | None = None,
               spans: list[tuple[int, int]] | None = None) -> list[Hit]:
        """The hits of one text, given what the automaton found in its compact form, whether it may hold a
        contact detail, and the compact positions where a syllable code follows itself (or a set of them
        that holds every position where the characters themselves repeat); ``spans``, when given, are the
        original offsets of what was found."""
        n = Normalised(text, coded, compact, _real=real)
        if twice and (found or self._joins(n, twice)):
            # a repeat read once may make, move or unmake a candidate, and changes the context it is graded in
            drops = collapses(n, twice)
            if drops and (not found or self._moves(n, found, drops)):
                again = self._find(_dropped(n.compact, drops))
                if again:
                    n = collapse(n, drops)
                found, spans = again, None
        dets = detectors.detect(text, self.allowed_domains) if gated else ()
        if not found and not dets:
            return []
        if spans is None:
            spans = [n.span(a, b) for _pid, a, b in found]
        return self._hits(text, n.real, found, spans, dets)

    def _hits(self, text: str, real: str, found: list[tuple[int, int, int]], spans: list[tuple[int, int]],
              dets: Sequence[detectors.Detection]) -> list[Hit]:
        """The hits of ``found`` (compact offsets into ``real``, original ``spans``) and of the contact
        details ``dets``, in the order of the text."""
        cands = self._candidates(text, real, found, spans) if found else []
        if not cands and not dets:
            return []
        hits = [c.hit for c in _best(cands)] if cands else []
        for d in dets:
            hits.append(Hit(detectors.KINDS[d.kind], detectors.CATEGORY_OF[d.kind],
                            self.detector_levels.get(d.kind, "review"), d.start, d.end, text[d.start:d.end],
                            "detector", d.value, False, d.kind))
        if len(hits) > 1:
            hits.sort(key=lambda h: (h.start, -h.end, h.category))
        return hits

    def _moves(self, n: Normalised, found: list[tuple[int, int, int]], drops: list[int]) -> bool:
        """Whether reading the repeats once (dropping compact ``drops``) may change the hits of ``found``.
        It may not when every run of dropped characters lies more than four characters away from every
        candidate (so their characters, their offsets, the three characters either side that grade them
        and the separators they span stay as they are) and no term forms across the place where the run
        is read once (``_run_joins``: a term that starts at the run stands as written, next to the run,
        among ``found``)."""
        compact, triples = n.compact, self._triples
        size, k, count = len(compact), 0, len(drops)
        while k < count:
            first = last = drops[k]
            k += 1
            while k < count and drops[k] == last + 1:
                last = drops[k]
                k += 1
            if first >= 2 and last + 1 < size and compact[first - 2:first] + compact[last + 1] in triples:
                return True
            for _pid, a, b in found:
                if first <= b + 4 and a - 4 <= last:
                    return True
        return False

    def _run_joins(self, compact: str, real: str, k: int, first: int) -> bool:
        """Whether reading once the run of the character ``real[k]`` that starts at ``k`` may join a term
        the automaton did not find (in a text, or a batch's texts: the message starts at ``first``, and a
        JOINER, in no pattern, ends it). Read once, the run is its first character, now followed by the
        character after the run. A term that forms runs across that place and does not start at the run
        (then it would stand in the text as written, from the run's last character): so the character
        before the run, the run's and the one after it are three codes in a row of a pattern. (Codes
        alone: a character before the run that is itself a run read once keeps its code.) False where
        ``k`` is within a run: its start answers."""
        if k == first or real[k - 1] == real[k]:
            return False
        j = k + 1
        while j < len(real) and real[j] == real[k]:
            j += 1
        return j < len(real) and compact[k - 1] + compact[k] + compact[j] in self._triples

    def _codes_join(self, compact: str, twice: list[int]) -> bool:
        """``_run_joins`` read on the codes alone, for a text without a candidate: a run of a character
        lies within a run of its code (homophones: 事实 is two of one code), so the character before it
        has the code before the code run or the run's own, and so has the one after it."""
        triples, size = self._triples, len(compact)
        for k in twice:
            c = compact[k]
            if k and compact[k - 1] == c:
                continue  # within a code run: its first position looks for it
            j = k + 1
            while j < size and compact[j] == c:
                j += 1
            before = [c, compact[k - 1]] if k else [c]
            after = [c, compact[j]] if j < size else [c]
            if any(b + c + a in triples for b in before for a in after):
                return True
        return False

    def _joins(self, n: Normalised, twice: list[int]) -> bool:
        """Whether reading a repeat once may join a term that is not there yet (``_run_joins``), given
        compact positions where a syllable code follows itself, among them every repeated character's."""
        compact, real, redup = n.compact, n.real, reduplication_words()
        size = len(real)
        for k in twice:
            r = real[k]
            if k + 1 < size and real[k + 1] == r and r * 2 not in redup and self._run_joins(compact, real, k, 0):
                return True
        return False

    def _verdict(self, pid: int, folded: str) -> _Verdict:
        """What the characters ``folded``, found by pattern ``pid``, may stand for (context aside)."""
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
            out.append((e, stage))
        return tuple(out)

    def _candidates(self, text: str, real: str, found: list[tuple[int, int, int]],
                    spans: list[tuple[int, int]]) -> list[_Cand]:
        """The candidates of ``found`` that stand, graded: what their characters may stand for (remembered
        per pattern and characters), whole Latin words, allow terms, and Chinese word boundaries (a term
        that starts inside a word is cut and graded down; a whole-word term must not cut one)."""
        cands: list[_Cand] = []
        allows: list[tuple[int, int, str]] = []
        verdicts, crossed = self._verdicts, words.crossed
        for (pid, a, b), (s, t) in zip(found, spans, strict=True):
            folded = real[a:b]
            v = verdicts.get((pid, folded))
            if v is None:
                if len(verdicts) >= _VERDICTS:
                    verdicts.clear()
                v = verdicts[(pid, folded)] = self._verdict(pid, folded)
            if not v:
                continue
            for e, stage in v:
                term = e.term
                if e.latin_edge and not _whole_latin(text, s, t, e.form):
                    continue
                if stage == "literal":
                    stage = "exact" if text[s:t] == term.text else "normalised"
                if term.allow:
                    allows.append((a, b, term.category))
                    continue
                level = cap_level(term.level, "review") if stage == "pinyin" else term.level
                cut = False
                if not e.latin:
                    # the word boundaries around a: crossed() looks at three characters either side
                    if e.whole_word:
                        if crossed(real, a) or crossed(real, b):
                            continue
                    elif crossed(real, a):
                        if t - s != b - a:  # separators skipped (or a repeat read once) inside
                            continue  # 参加，微信…: a word boundary and a separator, two words that meet by chance
                        cut = True
                        level = "info" if e.short else lower_level(level)
                # (Hit's fields in order: term, category, level, start, end, matched, stage, normalised, cut, source)
                cands.append(_Cand(Hit(term.text, term.category, level, s, t, text[s:t], stage, folded, cut,
                                       term.source), a, b, term.form))
        if allows:
            cands = [c for c in cands
                     if not any(x <= c.a and c.b <= y and cat == c.hit.category for x, y, cat in allows)]
        return cands


def _whole_latin(text: str, s: int, e: int, form: str) -> bool:
    """A term that starts or ends with a letter or digit must not continue a word of the original (devx):
    ``text[s:e]`` is where it was found."""
    if form[0] in _ALNUM and s > 0 and fold1(text[s - 1]) in _ALNUM:
        return False
    return not (form[-1] in _ALNUM and e < len(text) and fold1(text[e]) in _ALNUM)


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
        h = c.hit
        k = (h.category, c.form, c.a, c.b)
        old = by_key.get(k)
        if old is None or ((STAGE_RANK[h.stage], -LEVEL_RANK[h.level])
                           < (STAGE_RANK[old.hit.stage], -LEVEL_RANK[old.hit.level])):
            by_key[k] = c
    out = list(by_key.values())
    keep = []
    for c in out:
        inside = any(o is not c and o.hit.category == c.hit.category and o.a <= c.a and c.b <= o.b
                     and (o.b - o.a) > (c.b - c.a) and LEVEL_RANK[o.hit.level] >= LEVEL_RANK[c.hit.level]
                     for o in out)
        if not inside:
            keep.append(c)
    return keep
