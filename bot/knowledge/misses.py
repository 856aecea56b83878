"""Grouping the questions the knowledge base could not answer, so the team sees what to add first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.knowledge.text import Analyzer, char_features


@dataclass(slots=True)
class MissGroup:
    text: str                         # the most asked wording
    count: int = 0
    members: set[str] = field(default_factory=set)
    variants: Counter[str] = field(default_factory=Counter)
    last_at: datetime | None = None
    picked: Counter[str] = field(default_factory=Counter)   # entries members chose from "did you mean"
    features: frozenset[str] = frozenset()
    answerable: str = ""              # an entry that answers it now, if one does

    def examples(self, n: int = 2) -> list[str]:
        return [v for v, _ in self.variants.most_common(n + 1) if v != self.text][:n]


def _similar(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def group_misses(rows: Iterable[Any], analyzer: Analyzer, *, similarity: float = 0.45) -> list[MissGroup]:
    """Misses grouped by wording: identical normalised texts first, then similar ones (most asked first)."""
    by_key: dict[str, MissGroup] = {}
    canon: dict[str, str] = {}  # the same question asked again is analysed once
    for r in rows:
        if r.text not in canon:
            canon[r.text] = analyzer.canon(r.text)
        key = canon[r.text] or r.norm
        g = by_key.get(key)
        if g is None:
            g = by_key[key] = MissGroup(text=r.text)
        g.count += 1
        g.members.add(r.member_id)
        g.variants[r.text] += 1
        if g.last_at is None or r.at > g.last_at:
            g.last_at = r.at
        if r.picked_entry:
            g.picked[r.picked_entry] += 1
    groups: list[MissGroup] = []
    for key, g in sorted(by_key.items(), key=lambda kv: (-kv[1].count, kv[0])):
        g.text = g.variants.most_common(1)[0][0]
        g.features = char_features(analyzer.terms(analyzer.prepare(g.text))) or frozenset(key)
        home = max(groups, key=lambda h: _similar(h.features, g.features), default=None)
        if home is not None and _similar(home.features, g.features) >= similarity:
            home.count += g.count
            home.members |= g.members
            home.variants.update(g.variants)
            home.picked.update(g.picked)
            if g.last_at and (home.last_at is None or g.last_at > home.last_at):
                home.last_at = g.last_at
            continue
        groups.append(g)
    groups.sort(key=lambda g: (-g.count, -len(g.members), g.text))
    return groups
