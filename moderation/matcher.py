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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import ahocorasick_rs

from moderation import detectors, words
from moderation.lexicon import LEVEL_RANK, Lexicon, Term, cap_level, lower_level
from moderation.normalize import Normalised, fold1, normalise
from moderation.variants import Variants, default_variants

STAGE_RANK = {"exact": 0, "normalised": 1, "variant": 2, "pinyin": 3, "detector": 1}
DEFAULT_DETECTOR_LEVELS = {"phone": "reject", "qq": "reject", "wechat_id": "reject", "email": "review",
                           "url": "review"}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_CONTEXT = 8  # characters either side given to jieba when grading a hit


@dataclass(frozen=True, slots=True)
class Hit:
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
        return asdict(self)


@dataclass(slots=True)
class _Cand:
    term: Term
    a: int
    b: int
    stage: str
    folded: str
    level: str
    cut: bool = False


class Matcher:
    """Immutable once built; a reload builds a new one and swaps the reference."""

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
        entries: dict[str, list[tuple[Term, str, str]]] = {}
        for term in [*lexicon.terms, *lexicon.allow]:
            forms = [(term.form, "")]
            if not term.allow:
                forms += self.variants.expansions(term.form)
            for form, how in forms:
                coded = normalise(form, max_gap).compact
                if coded:
                    entries.setdefault(coded, []).append((term, form, how))
        self.patterns = list(entries)
        self.meta = [entries[p] for p in self.patterns]
        self.ac = ahocorasick_rs.AhoCorasick(self.patterns) if self.patterns else None

    @property
    def pattern_count(self) -> int:
        return len(self.patterns)

    def scan(self, text: str) -> list[Hit]:
        n = normalise(text, self.max_gap)
        compact = n.compact
        found = self.ac.find_matches_as_indexes(compact, overlapping=True) if self.ac is not None and compact else []
        dets = detectors.detect(text, self.allowed_domains) if self.detect else []
        if not found and not dets:
            return []
        cands: list[_Cand] = []
        allows: list[tuple[int, int, str]] = []
        for pid, a, b in found:
            folded = None
            for term, form, how in self.meta[pid]:
                if folded is None:
                    folded = n.folded(a, b)
                if (form[0] in _ALNUM or form[-1] in _ALNUM) and not self._whole_latin(n, a, b, form):
                    continue
                sound_alike = False
                if folded == form:
                    if how:
                        stage, sound_alike = "variant", how == "homophone"
                    else:
                        s, e = n.span(a, b)
                        stage = "exact" if text[s:e] == term.text else "normalised"
                elif self.variants.known_sound_alike(folded, form):
                    stage, sound_alike = "variant", True
                else:
                    stage, sound_alike = "pinyin", True
                if term.allow:
                    if stage != "pinyin":
                        allows.append((a, b, term.category))
                    continue
                if stage == "pinyin" and (term.han_count < 3 or not set(folded) & set(form)):
                    continue  # two-character homophones are too common; their evasions are in the table
                if sound_alike and folded != term.form and words.is_word(folded):
                    continue  # 威信, 饲料: a word of its own, not a sound-alike of the term
                level = cap_level(term.level, "review") if stage == "pinyin" else term.level
                cands.append(_Cand(term, a, b, stage, folded, level))
        cands = [c for c in cands
                 if not any(x <= c.a and c.b <= y and cat == c.term.category for x, y, cat in allows)]
        graded: list[_Cand] = []
        for c in cands:
            if not c.term.latin:
                lo, hi = max(0, c.a - _CONTEXT), min(len(compact), c.b + _CONTEXT)
                window = n.folded(lo, hi)
                if c.term.scope == "word":
                    if not words.aligned(window, c.a - lo, c.b - lo):
                        continue
                elif words.starts_inside_word(window, c.a - lo, c.b - lo):
                    if n.gaps_skipped(c.a, c.b):
                        continue  # 参加，微信…: a word boundary and a separator, two words that meet by chance
                    c.cut = True
                    c.level = "info" if len(c.term.form) <= 2 else lower_level(c.level)
            graded.append(c)
        hits = [self._hit(n, c) for c in _best(graded)]
        for d in dets:
            level = self.detector_levels.get(d.kind, "review")
            hits.append(Hit(term=detectors.KINDS[d.kind], category=detectors.CATEGORY_OF[d.kind], level=level,
                            start=d.start, end=d.end, matched=text[d.start:d.end], stage="detector",
                            normalised=d.value, source=d.kind))
        hits.sort(key=lambda h: (h.start, -h.end, h.category))
        return hits

    @staticmethod
    def _whole_latin(n: Normalised, a: int, b: int, form: str) -> bool:
        """A term that starts or ends with a letter or digit must not continue a word of the original (devx)."""
        s, e = n.span(a, b)
        text = n.original
        if form[0] in _ALNUM and s > 0 and fold1(text[s - 1]) in _ALNUM:
            return False
        return not (form[-1] in _ALNUM and e < len(text) and fold1(text[e]) in _ALNUM)

    def _hit(self, n: object, c: _Cand) -> Hit:
        from moderation.normalize import Normalised

        assert isinstance(n, Normalised)
        s, e = n.span(c.a, c.b)
        return Hit(term=c.term.text, category=c.term.category, level=c.level, start=s, end=e,
                   matched=n.original[s:e], stage=c.stage, normalised=c.folded, cut=c.cut, source=c.term.source)


def _best(cands: list[_Cand]) -> list[_Cand]:
    """One hit per term and place; drop a hit inside a longer one of its category with at least its level."""
    by_key: dict[tuple[str, str, int, int], _Cand] = {}
    for c in cands:
        k = (c.term.category, c.term.form, c.a, c.b)
        old = by_key.get(k)
        if old is None or (STAGE_RANK[c.stage], -LEVEL_RANK[c.level]) < (STAGE_RANK[old.stage], -LEVEL_RANK[old.level]):
            by_key[k] = c
    out = list(by_key.values())
    keep = []
    for c in out:
        inside = any(o is not c and o.term.category == c.term.category and o.a <= c.a and c.b <= o.b
                     and (o.b - o.a) > (c.b - c.a) and LEVEL_RANK[o.level] >= LEVEL_RANK[c.level] for o in out)
        if not inside:
            keep.append(c)
    return keep
