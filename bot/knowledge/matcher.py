"""Choosing the entry that answers a question.

A :class:`Matcher` is an immutable index over one set of entries; a reload
builds a new one and swaps it in whole. For a question it tries, in order:

0. **chatter** — acknowledgements, thanks, greetings, emoji, laughter, small talk
   (:mod:`bot.knowledge.chatter`) match nothing: no answer, no suggestions;

1. **exact** — the question, normalised, equals a stored question of any entry
   (and, for ``match: exact`` entries, one of their keywords);
2. **triggers** — ``contains`` entries whose keywords (or questions) occur in
   the question and ``regex`` entries whose patterns match it answer outright
   (score 1); an ``auto`` entry whose keyword occurs gets a bonus on its meaning
   score and never scores below the threshold, so a keyword always answers, but
   an entry the question matches clearly better by meaning can still win;
3. **meaning** (``auto`` entries, mode ``bm25``) — BM25 over the stored
   questions, and over the answers, picks candidates; each is then scored in
   [0, 1] by how much information (IDF-weighted jieba terms) the question shares
   with the best stored question, with all of the entry's questions and
   keywords, and with its answer, blended with character overlap so that
   segmentation differences still count. At or above the threshold, and ahead
   of the runner-up by the margin, the best entry answers; otherwise up to three
   candidates above the suggestion floor are offered as "did you mean".

Near-equal scores (within ``tie``) go to the higher ``priority``.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs

from bot.knowledge.chatter import SHORT_NUMBER, asks_something, chatter_kind
from bot.knowledge.entry import Entry, Where
from bot.knowledge.fuzzy import Speller, vocabulary
from bot.knowledge.patterns import compile_pattern, found_text
from bot.knowledge.text import INTENTS, Analyzer, char_features, clauses, intents
from bot.textnorm import fold

TRIGGER_MODES = {"auto": "keyword", "contains": "contains"}
# Question words: what is asked (a time, a place …), never what it is about.
ASKING = frozenset(w for ws in INTENTS.values() for w in ws)
TEMPLATE_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
# A question longer than this is matched on its first MAX_QUESTION characters: matching costs time in
# proportion to the text, a question is far shorter, and every message a member sends may be matched.
MAX_QUESTION = 1000


@dataclass(frozen=True, slots=True)
class MatchSettings:
    """Knobs of the meaning score; the weights were chosen on ``knowledge_base/eval/dev.yaml``."""

    threshold: float = 0.25         # meaning score needed to answer
    suggest_floor: float = 0.12     # meaning score needed to be offered as "did you mean"
    margin: float = 0.0             # the best must lead the runner-up by at least this to answer outright
    ambiguity_margin: float = 0.15  # the same, when the question is only words both stored questions have
    max_suggestions: int = 3
    tie: float = 0.02               # scores this close count as a tie; higher priority wins
    k1: float = 1.2
    b: float = 0.5
    char_weight: float = 0.4        # share of character overlap in a stored question's score
    query_weight: float = 0.4       # how much the question's coverage counts against the stored question's
    entry_weight: float = 0.05      # share of "how much of the question the entry's questions and keywords cover"
    entry_char_weight: float = 0.0  # the same in characters
    answer_weight: float = 0.3      # share of "how much of the question the entry's text, answer included, covers"
    related_weight: float = 1.0     # credit for a word matched only through a near-synonym (~ line)
    general_power: float = 1.5      # how much general-language commonness lowers a word's weight (0: not at all)
    intent_weight: float = 0.06     # added when the question asks what the entry's questions ask, taken when not
    keyword_bonus: float = 0.05     # added to the meaning score of an auto entry whose keyword occurs
    rerank: int = 10                # candidates re-scored per question (half as many again from the answers)
    unknown_weight: float = 1.0     # a word the base never uses weighs this times the rarest word's weight
    context_weight: float = 0.5     # weight of a long message's words outside its question clauses
    denied_weight: float = 0.2      # weight of the words of a 「不是……，是……」 clause
    spelling: bool = True           # also try the question with typing slips corrected (bot.knowledge.fuzzy)
    min_support: float = 0.0        # share of the question's content words an entry must explain beyond one word

    @classmethod
    def from_config(cls, k: Any) -> MatchSettings:
        """The settings of a ``[knowledge]`` config section (the weights keep their defaults)."""
        return cls(threshold=k.threshold, suggest_floor=k.suggest_floor, margin=k.margin,
                   ambiguity_margin=k.ambiguity_margin, max_suggestions=k.max_suggestions)


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    score: float
    mode: str                        # exact | keyword | contains | regex | bm25
    question: str = ""               # the stored phrasing that matched best
    keywords: tuple[str, ...] = ()   # keywords / patterns found in the question
    terms: tuple[str, ...] = ()      # terms the question shares with the entry (best first)
    shared: frozenset[str] = frozenset()  # terms it shares with the best stored question (margin rule)

    def to_json(self) -> dict[str, object]:
        return {"entry": self.entry.id, "score": round(self.score, 3), "mode": self.mode,
                "question": self.question or self.entry.title, "keywords": list(self.keywords),
                "terms": list(self.terms)}


@dataclass(frozen=True, slots=True)
class Result:
    answer: Candidate | None = None
    suggestions: tuple[Candidate, ...] = ()
    candidates: tuple[Candidate, ...] = ()   # every plausible entry, best first (for /kb search)
    chatter: str = ""                        # the kind of chatter the message is (nothing is matched then)

    @property
    def entry(self) -> Entry | None:
        return self.answer.entry if self.answer else None

    @property
    def mode(self) -> str:
        if self.chatter:
            return "chatter"
        if self.answer:
            return self.answer.mode
        return "suggest" if self.suggestions else "none"

    @property
    def score(self) -> float:
        if self.chatter:
            return 0.0
        if self.answer:
            return self.answer.score
        return self.candidates[0].score if self.candidates else 0.0


@dataclass(slots=True)
class _Doc:
    entry: int
    question: str
    terms: frozenset[str]
    chars: frozenset[str]
    tags: frozenset[str] = frozenset()                        # near-synonym tags of its terms
    tagged: tuple[tuple[str, frozenset[str]], ...] = ()       # its terms that have tags
    intents: frozenset[str] = frozenset()
    weight: float = 0.0        # information of its distinct terms
    char_weight: float = 0.0   # information of its characters and character pairs


@dataclass(slots=True)
class _Profile:
    """What one auto entry knows: its stored questions, all their and its keywords' terms, its answer's."""

    docs: list[int] = field(default_factory=list)
    terms: frozenset[str] = frozenset()
    chars: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    text_terms: frozenset[str] = frozenset()   # questions, keywords and answer
    text_tags: frozenset[str] = frozenset()
    intents: frozenset[str] = frozenset()      # what its stored questions ask for


class _Bm25:
    """BM25 postings over documents of term lists.

    Rare terms find candidates; once enough postings were read, the commoner
    terms only add to the candidates already found (read through a dict lookup
    per candidate), which bounds the work per question on large bases.
    """

    budget = 700   # postings read in full per question before common terms switch to lookups

    def __init__(self, docs: list[list[str]], k1: float, b: float) -> None:
        n = len(docs)
        df: dict[str, int] = defaultdict(int)
        for terms in docs:
            for t in set(terms):
                df[t] += 1
        self.n = n
        idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        avgdl = (sum(len(t) for t in docs) / n) if n else 1.0
        postings: dict[str, dict[int, float]] = defaultdict(dict)
        for d, terms in enumerate(docs):
            norm = k1 * (1 - b + b * len(terms) / avgdl)
            tf: dict[str, int] = defaultdict(int)
            for t in terms:
                tf[t] += 1
            for t, f in tf.items():
                postings[t][d] = idf[t] * f * (k1 + 1) / (f + norm)
        self.postings = dict(postings)

    def top(self, terms: Iterable[str], k: int) -> list[int]:
        postings = self.postings
        known = sorted((t for t in terms if t in postings), key=lambda t: len(postings[t]))
        if not known:
            return []
        acc: dict[int, float] = dict(postings[known[0]])
        read = len(acc)
        for t in known[1:]:
            plist = postings[t]
            if len(acc) >= k and read + len(plist) > self.budget:
                for d in acc.keys() & plist.keys():
                    acc[d] += plist[d]
                continue
            read += len(plist)
            get = acc.get
            for d, w in plist.items():
                acc[d] = get(d, 0.0) + w
        if len(acc) <= k:
            return sorted(acc, key=acc.__getitem__, reverse=True)
        return heapq.nlargest(k, acc, key=acc.__getitem__)


def answer_text(entry: Entry) -> str:
    """The answer without its template tags (member names and conditions are not content)."""
    return TEMPLATE_TAGS.sub(" ", entry.answer)


class Matcher:
    def __init__(self, entries: Sequence[Entry], analyzer: Analyzer, settings: MatchSettings | None = None) -> None:
        self.settings = settings or MatchSettings()
        self.analyzer = analyzer
        self.entries: list[Entry] = sorted(entries, key=lambda e: e.id)
        self.by_id: dict[str, Entry] = {e.id: e for e in self.entries}
        self._index: dict[str, int] = {e.id: i for i, e in enumerate(self.entries)}
        self._exact: dict[str, list[int]] = defaultdict(list)
        trigger_words: dict[str, list[int]] = defaultdict(list)
        self._regexes: list[tuple[int, Any]] = []  # RE2 patterns (bot.knowledge.patterns): linear time
        self._docs: list[_Doc] = []
        self._profiles: dict[int, _Profile] = {}
        question_terms: list[list[str]] = []
        answer_terms: list[list[str]] = []
        self._answer_entry: list[int] = []
        tags = analyzer.tags
        for i, e in enumerate(self.entries):
            phrases = list(e.questions) + (list(e.keywords) if e.match == "exact" else [])
            for q in phrases:
                key = analyzer.canon(q)
                if key and i not in self._exact[key]:
                    self._exact[key].append(i)
            if e.match == "regex":
                for pattern in e.keywords:
                    self._regexes.append((i, compile_pattern(pattern)))
            elif e.match in TRIGGER_MODES:
                for w in e.keywords or (e.questions if e.match == "contains" else ()):
                    key = analyzer.canon(w)
                    if key and i not in trigger_words[key]:
                        trigger_words[key].append(i)
            if e.match != "auto":
                continue
            profile = _Profile()
            union: set[str] = set()
            wants: set[str] = set()
            for q in e.questions:
                prepared = analyzer.prepare(q)
                terms = analyzer.terms(prepared)
                if not terms:
                    continue
                profile.docs.append(len(self._docs))
                asks = intents(prepared)
                wants.update(asks)
                tagged = tuple((t, tags[t]) for t in terms if t in tags)
                self._docs.append(_Doc(i, q, frozenset(terms), char_features(terms),
                                       frozenset(g for _, ts in tagged for g in ts), tagged, asks))
                question_terms.append(terms + sorted({g for _, ts in tagged for g in ts}))
                union.update(terms)
            for k in e.keywords:
                union.update(analyzer.terms(analyzer.prepare(k)))
            if not profile.docs and not union:
                continue
            said = analyzer.terms(analyzer.prepare(answer_text(e)))
            profile.terms = frozenset(union)
            profile.chars = char_features(union)
            profile.tags = frozenset(g for t in union for g in tags.get(t, ()))
            profile.text_terms = frozenset(union.union(said))
            profile.text_tags = frozenset(g for t in profile.text_terms for g in tags.get(t, ()))
            profile.intents = frozenset(wants)
            self._profiles[i] = profile
            self._answer_entry.append(i)
            answer_terms.append(said + list(union) + sorted(profile.text_tags))
        self._trigger_patterns = list(trigger_words)
        self._trigger_entries = [trigger_words[p] for p in self._trigger_patterns]
        self._triggers = ahocorasick_rs.AhoCorasick(self._trigger_patterns) if self._trigger_patterns else None
        s = self.settings
        self._questions = _Bm25(question_terms, s.k1, s.b)
        self._answers = _Bm25(answer_terms, s.k1, s.b)
        self._weigh(question_terms)
        # The words a typing slip is corrected to: the stored questions', the keywords', the vocabulary
        # file's and the question words (ranked by how many entries use them).
        known = vocabulary(p.terms for p in self._profiles.values())
        for w in (*analyzer.synonyms.words, *analyzer.user_words, *(w for ws in INTENTS.values() for w in ws),
                  *(w for w in analyzer.stopwords if len(w) >= 2)):
            known.setdefault(w, 0.0)
        self._speller = Speller(known, analyzer.tokenizer, analyzer.stopwords)
        # What a question word may be taken apart into: the base's words of two or more characters,
        # and single characters the vocabulary file names (寄, 泡, 碎).
        self._known = frozenset(w for w in (*self.weight, *analyzer.tags) if w[0] != "~" and
                                (len(w) >= 2 or w in analyzer.tags))
        self._longest_known = max(map(len, self._known), default=0)
        self._pieces_cache: dict[str, tuple[str, ...]] = {}

    def _weigh(self, question_terms: list[list[str]]) -> None:
        """How informative each term, near-synonym tag and character is, over the entries' whole text."""
        n = len(self._profiles)
        gp = self.settings.general_power
        general = self.analyzer.general
        df: dict[str, int] = defaultdict(int)
        for p in self._profiles.values():
            for t in p.text_terms:
                df[t] += 1
            for g in p.text_tags:
                df[g] += 1

        def idf(c: float) -> float:
            return math.log(1 + (n - c + 0.5) / (c + 0.5))

        self.weight: dict[str, float] = {t: idf(c) * (general(t) ** gp if t[0] != "~" else 1.0)
                                         for t, c in df.items()}
        # A word the base never uses says the question may be about something else.
        self._unknown = (idf(0) if n else 1.0) * self.settings.unknown_weight
        cdf: dict[str, int] = defaultdict(int)
        for p in self._profiles.values():
            for c in p.chars:
                cdf[c] += 1
        m = len(self._profiles)
        self.char_weight: dict[str, float] = {c: math.log(1 + (m - k + 0.5) / (k + 0.5)) for c, k in cdf.items()}
        self._char_unknown = math.log(1 + (m + 0.5) / 0.5) if m else 1.0
        for doc in self._docs:
            doc.weight = sum(self.weight[t] for t in doc.terms)
            doc.char_weight = sum(self.char_weight[c] for c in doc.chars)

    def term_weight(self, t: str) -> float:
        """A question word's weight: known words as the base weighs them; an unknown word with
        near-synonyms as its best-known near-synonym tag; any other unknown word as the rarest."""
        w = self.weight.get(t)
        if w is not None:
            return w
        gp = self.settings.general_power
        g = self.analyzer.general(t) ** gp
        known = [self.weight[x] for x in self.analyzer.tags.get(t, ()) if x in self.weight]
        return (max(known) if known else self._unknown) * g

    # ── matching ──
    def match(self, text: str, where: Where | None = None) -> Result:
        """The entry that answers ``text`` (or suggestions), as typed or with typing slips corrected;
        nothing for chatter (:func:`bot.knowledge.chatter.chatter_kind`). A text longer than MAX_QUESTION
        characters is matched on its first MAX_QUESTION."""
        text = text[:MAX_QUESTION]
        kind = chatter_kind(text, self.analyzer)
        if kind is not None:
            return Result(chatter=kind)
        parts = clauses(text)
        prepared = [(self.analyzer.prepare(c), role) for c, role in parts]
        result = self._match(text, prepared, where)
        if self.settings.spelling and (result.answer is None or result.answer.mode != "exact"):
            apply, correct = self.analyzer.synonyms.apply, self._speller.correct
            fixed = [(apply(correct(p)), role) for p, role in prepared]
            if fixed != prepared:
                other = self._match(text, fixed, where)
                result = other if other.score > result.score else result
        if result.answer is None and not result.suggestions and not asks_something(text, self.analyzer):
            # A remark nothing answers (it asks nothing): chatter too — no "can't answer", no miss.
            return Result(candidates=result.candidates, chatter="remark")
        return result

    def _focus(self, prepared: list[tuple[str, str]]) -> tuple[list[str], dict[str, float], str]:
        """A message's terms, the weight of each (words of story clauses and denied clauses count less)
        and the text whose question words say what is asked."""
        s = self.settings
        asking = any(role == "ask" for _, role in prepared) and len(prepared) > 1
        order: dict[str, None] = {}
        focus: dict[str, float] = {}
        asked: list[str] = []
        for p, role in prepared:
            w = s.denied_weight if role == "denied" else (s.context_weight if asking and role == "say" else 1.0)
            if role != "denied":
                asked.append(p)
            for term in self.analyzer.terms(p):
                for piece in self._pieces(term):
                    order[piece] = None
                    focus[piece] = max(focus.get(piece, 0.0), w)
        return list(order), focus, " ".join(asked)

    def _pieces(self, term: str) -> tuple[str, ...]:
        """A word the base does not know, taken apart around the base's words inside it
        (寄过来 → 寄, 过来); any other word as itself."""
        known = self._known
        if term in known or len(term) < 2:
            return (term,)
        got = self._pieces_cache.get(term)
        if got is None:
            # A single character only where the word starts (寄 of 寄过来, not 杯 of 世界杯). No piece is
            # longer than the longest known word: the work grows with the word's length, not its square.
            n, longest = len(term), self._longest_known
            found = [(i, j) for i in range(n) for j in range(min(n, i + longest), i, -1)
                     if (j - i < n) and (j - i >= 2 or i == 0) and term[i:j] in known]
            covered: set[int] = set()
            pieces: list[str] = []
            reached = -1  # in order of start, longest first: a piece ending by the furthest end seen is inside
            for i, j in found:  # already in that order
                if j <= reached:
                    continue   # inside a longer piece
                reached = j
                pieces.append(term[i:j])
                covered.update(range(i, j))
            # What is left between the known pieces stays as it is (过来 of 寄过来).
            rest = "".join(c if n not in covered else " " for n, c in enumerate(term)).split()
            got = tuple(dict.fromkeys([*pieces, *rest])) if pieces else (term,)
            if len(self._pieces_cache) < 100_000:
                self._pieces_cache[term] = got
        return got

    def _match(self, text: str, parts: list[tuple[str, str]], where: Where | None) -> Result:
        prepared = " ".join(p for p, _ in parts if p)
        key = prepared.replace(" ", "")
        if not key:
            return Result()
        s = self.settings
        entries = self.entries
        allowed: dict[int, bool] = {}

        def ok(i: int) -> bool:
            if i not in allowed:
                allowed[i] = entries[i].scope.allows(where)
            return allowed[i]

        exact = [i for i in self._exact.get(key, ()) if ok(i)]
        hits = {i: words for i, words in self._trigger_hits(text, key).items() if ok(i)}
        ordered, focus, asked = self._focus(parts)
        terms = frozenset(ordered)
        meaning = {i: c for i, c in self._meaning(asked, terms, hits, focus) if ok(i)}
        support = self._support(terms, focus)

        if exact:
            i = max(exact, key=lambda j: entries[j].priority)
            answer = Candidate(entries[i], 1.0, "exact", question=self._phrase_for(i, key))
            return Result(answer, (), (answer, *self._ranked(meaning, hits, skip={i}, key=key)))

        ranked = self._ranked(meaning, hits, key=key)
        if not ranked:
            return Result()
        top = ranked[0]
        if top.mode != "bm25":
            return Result(top, (), ranked)
        # An answer needs at least one of the question's content words explained (and min_support of them);
        # a suggestion needs one too, and for a remark (it asks nothing) as much as an answer.
        if top.score >= s.threshold and support(top) > 0 and support(top) >= s.min_support \
                and not self._ambiguous(top, ranked[1] if len(ranked) > 1 else None, terms):
            return Result(top, (), ranked)
        floor = 0.0 if asks_something(text, self.analyzer) else s.min_support
        suggestions = tuple(c for c in ranked if c.score >= s.suggest_floor and support(c) > 0 and support(c) >= floor)
        return Result(None, suggestions[: s.max_suggestions], ranked)

    def _support(self, terms: frozenset[str], focus: dict[str, float]) -> Callable[[Candidate], float]:
        """How much of the question an entry explains: the weighted share of the question's content words
        (not stop words, 泛词 of the chatter lists, question words or short numbers) found in the entry's
        questions, keywords or answer (near-synonyms count). A question of generic words only (「收到」,
        「消息」, 「时间」) is explained by no entry."""
        generic = self.analyzer.chatter.generic
        tags = self.analyzer.tags
        content = {t: self.term_weight(t) * focus.get(t, 1.0) for t in terms
                   if t not in generic and t not in ASKING and not SHORT_NUMBER.fullmatch(t)}
        total = sum(content.values())
        cache: dict[str, float] = {}

        def share(c: Candidate) -> float:
            got = cache.get(c.entry.id)
            if got is None:
                profile = self._profiles.get(self._index[c.entry.id])
                if profile is None or not total:
                    got = 0.0
                else:
                    found = sum(w for t, w in content.items() if t in profile.text_terms
                                or not tags.get(t, frozenset()).isdisjoint(profile.text_tags))
                    got = found / total
                cache[c.entry.id] = got
            return got

        return share

    def _ambiguous(self, top: Candidate, runner: Candidate | None, terms: frozenset[str]) -> bool:
        """Whether the runner-up is too close to let the best answer outright.

        Closer than ``margin``; or closer than ``ambiguity_margin`` when the question is made only of
        words that the best stored question and the runner-up's both have (「积分」 alone fits every
        points entry: the scores then differ only by how long the stored questions are).
        """
        if runner is None:
            return False
        gap = top.score - runner.score
        if gap < self.settings.margin:
            return True
        # Only when the question is nothing but words both stored questions have (a bare 「积分」).
        return (gap < self.settings.ambiguity_margin and bool(top.shared) and top.shared <= runner.shared
                and terms <= top.shared)

    def _phrase_for(self, i: int, key: str) -> str:
        e = self.entries[i]
        for q in (*e.questions, *e.keywords):
            if self.analyzer.canon(q) == key:
                return q
        return e.title

    def _trigger_hits(self, text: str, key: str) -> dict[int, list[str]]:
        hits: dict[int, list[str]] = {}
        if self._triggers is not None:
            for p, _, _ in self._triggers.find_matches_as_indexes(key, overlapping=True):
                word = self._trigger_patterns[p]
                for i in self._trigger_entries[p]:
                    found = hits.setdefault(i, [])
                    if word not in found:
                        found.append(word)
        if self._regexes:
            folded = fold(text)
            for i, rx in self._regexes:
                m = rx.search(folded)
                if m:
                    hits.setdefault(i, []).append(found_text(m))
        return hits

    def _ranked(self, meaning: dict[int, Candidate], hits: dict[int, list[str]],
                skip: Iterable[int] = (), key: str = "") -> tuple[Candidate, ...]:
        """Every plausible entry, best first (triggers and meaning together)."""
        s = self.settings
        entries = self.entries
        skipped = set(skip)
        out: list[Candidate] = []
        for i, words in hits.items():
            if i in skipped:
                continue
            e = entries[i]
            m = meaning.get(i)
            if e.match == "auto":
                base = m.score if m else 0.0
                # A keyword that is the whole question answers as surely as a stored question.
                whole = key in words
                score = 1.0 if whole else min(1.0, max(s.threshold + s.margin, base + s.keyword_bonus))
                mode = "keyword"
            else:
                score, mode = 1.0, ("regex" if e.match == "regex" else "contains")
            out.append(Candidate(e, score, mode, question=m.question if m else e.title,
                                 keywords=tuple(words), terms=m.terms if m else (),
                                 shared=m.shared if m else frozenset()))
        out.extend(m for i, m in meaning.items() if i not in skipped and i not in hits)
        out.sort(key=lambda c: (c.score, c.entry.priority), reverse=True)
        if len(out) > 1:
            # Among entries whose keywords occur, the keyword hit itself is worth the bonus: within it
            # (and the tie), the higher priority wins.
            close = s.tie + (s.keyword_bonus if out[0].mode == "keyword" else 0.0)
            ties = [c for c in out if out[0].score - c.score <= (close if c.mode == "keyword" else s.tie)]
            best = max(ties, key=lambda c: (c.entry.priority, c.score))
            if best is not out[0]:
                out.remove(best)
                out.insert(0, best)
        return tuple(out[:10])

    def _query_weights(self, terms: frozenset[str], focus: dict[str, float] | None) -> dict[str, float]:
        """Each word of the question by its weight, times its clause's focus in a long message."""
        wq = {t: self.term_weight(t) for t in terms}
        return {t: w * focus.get(t, 1.0) for t, w in wq.items()} if focus else wq

    def _candidate_entries(self, probe: frozenset[str], hits: dict[int, list[str]]) -> set[int]:
        """The entries worth scoring: the stored questions' best by BM25, the answers' when only they know a
        word of the question, and the keyword-triggered ones."""
        rerank = self.settings.rerank
        candidates = {self._docs[d].entry for d in self._questions.top(probe, rerank)}
        if any(t not in self._questions.postings and t in self._answers.postings for t in probe):
            # Only words the stored questions never use can find something new in the answers.
            candidates.update(self._answer_entry[d] for d in self._answers.top(probe, rerank // 2))
        candidates.update(i for i in hits if i in self._profiles)
        return candidates

    def _meaning(self, prepared: str, terms: frozenset[str], hits: dict[int, list[str]],
                 focus: dict[str, float] | None = None) -> list[tuple[int, Candidate]]:
        """Meaning scores in [0, 1] for the entries either index finds (and the keyword-triggered ones)."""
        if not self._profiles or not terms:
            return []
        s = self.settings
        tags = self.analyzer.tags
        wq = self._query_weights(terms, focus)
        q_weight = sum(wq.values())
        q_tagged = [(t, tags[t]) for t in terms if t in tags]
        q_tags = frozenset(g for _, ts in q_tagged for g in ts)
        docs = self._docs
        candidates = self._candidate_entries(terms | q_tags, hits)
        q_chars = char_features(terms)
        cw = self.char_weight
        q_char_weight = sum(cw.get(c, self._char_unknown) for c in q_chars)
        rest = 1 - s.entry_weight - s.answer_weight - s.entry_char_weight
        qw, dw, rw = s.query_weight, 1 - s.query_weight, s.related_weight
        word_share, char_share = 1 - s.char_weight, s.char_weight
        asks = intents(prepared)
        w_of, c_of = self.weight.__getitem__, cw.__getitem__

        def covered(target: frozenset[str], target_tags: frozenset[str]) -> float:
            """Weight of the question's words found in ``target``, near-synonyms at partial credit."""
            got = sum(wq[t] for t in terms & target)
            if q_tagged and target_tags:
                got += rw * sum(wq[t] for t, ts in q_tagged if t not in target and not ts.isdisjoint(target_tags))
            return got

        out: list[tuple[int, Candidate]] = []
        for i in candidates:
            profile = self._profiles[i]
            best, best_doc = 0.0, -1
            for d in profile.docs:
                doc = docs[d]
                inter = terms & doc.terms
                exact = sum(map(wq.__getitem__, inter)) if inter else 0.0
                shared_q = exact
                if q_tagged and doc.tags:
                    shared_q += rw * sum(wq[t] for t, ts in q_tagged
                                         if t not in doc.terms and not ts.isdisjoint(doc.tags))
                if shared_q == exact and inter <= ASKING:
                    # Only question words in common (几点, 哪里, 谁): no sign of the same topic.
                    shared_q = 0.0
                if shared_q:
                    shared_d = sum(map(w_of, inter)) if focus and inter else exact
                    if q_tags and doc.tagged:
                        shared_d += rw * sum(w_of(u) for u, ts in doc.tagged
                                             if u not in terms and not ts.isdisjoint(q_tags))
                    word = (shared_q / q_weight) ** qw * (min(1.0, shared_d / doc.weight)) ** dw
                else:
                    word = 0.0
                both = q_char_weight + doc.char_weight
                chars = 2 * sum(map(c_of, q_chars & doc.chars)) / both if both else 0.0
                score = word_share * word + char_share * chars
                if best_doc < 0 or score > best:
                    best, best_doc = score, d
            in_text = terms & profile.text_terms
            text = covered(profile.text_terms, profile.text_tags)
            if not text and best <= 0:
                continue
            score = rest * best + s.answer_weight * text / q_weight
            if s.entry_weight:
                score += s.entry_weight * covered(profile.terms, profile.tags) / q_weight
            if s.entry_char_weight and q_char_weight:
                score += s.entry_char_weight * sum(map(c_of, q_chars & profile.chars)) / q_char_weight
            if asks and profile.intents and s.intent_weight:
                score += s.intent_weight if asks & profile.intents else -s.intent_weight
            question = docs[best_doc].question if best_doc >= 0 else self.entries[i].title
            shown = tuple(sorted(in_text, key=wq.__getitem__, reverse=True))
            shared = terms & docs[best_doc].terms if best_doc >= 0 else frozenset()
            out.append((i, Candidate(self.entries[i], max(0.0, min(score, 1.0)), "bm25", question=question,
                                     terms=shown, shared=frozenset(shared))))
        return out
