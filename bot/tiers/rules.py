"""The ladder, the points per action and the downgrade rule (``tiers.yaml``) — and their evaluation.

Rules are data (read from the file by :mod:`bot.tiers.rulesfile`). :func:`evaluate` is
a pure function of the rules, a member's ledger totals and the time, so a full recompute
from the ledger gives exactly the tier the incremental updates gave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

REQUIREMENTS: dict[str, str] = {
    "points": "积分",
    "messages": "发言次数",
    "checkins": "打卡次数",
    "homework": "作业次数",
    "referrals": "邀请人数",
    "purchases": "购买次数",
    "spend": "累计消费（元）",
    "days_since_join": "入群天数",
}
# Bounds (docs/tiers.md) that keep every ledger entry, every running total and every sum of the
# ledger far inside the database's integer columns: nothing an operator types can overflow them.
POINTS_PER_ENTRY = 1_000_000              # one /points add (either sign), or one action's points in tiers.yaml
POINTS_TOTAL_LIMIT = 1_000_000_000        # a member's points, either sign
AMOUNT_LIMIT_YUAN = 10_000_000            # one purchase: more than 0, at most this, 2 decimals
SPEND_TOTAL_LIMIT_CENTS = 2_000_000_000   # a member's total spend (20,000,000 元)

ACTIONS: dict[str, str] = {
    "message": "发言", "checkin": "打卡", "homework": "作业", "referral": "邀请新成员", "purchase": "购买",
}
STREAK = "streak"   # the ledger action of a streak bonus (``streak:`` in tiers.yaml)
LEDGER_ACTIONS: dict[str, str] = {**ACTIONS, STREAK: "连续打卡奖励"}   # every action a ledger entry may name


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    name: str
    requires: dict[str, float] = field(default_factory=dict)
    group_tag: str = ""
    privileges: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionRule:
    points: int
    daily_cap: int | None = None  # how many times a day the action earns points (local day)
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Streak:
    """Check-ins on ``days`` consecutive local days earn ``points`` once, on the last of them (once a streak)."""

    days: int
    points: int


@dataclass(frozen=True, slots=True)
class Downgrade:
    inactive_days: int
    to: str
    keep: tuple[str, ...] = ()  # tiers never downgraded for silence (e.g. buyers)


@dataclass(frozen=True, slots=True)
class Rules:
    tiers: tuple[Tier, ...]
    points: dict[str, ActionRule]
    downgrade: Downgrade | None = None
    version: str = ""
    streak: Streak | None = None

    def tier(self, tier_id: str) -> Tier | None:
        return next((t for t in self.tiers if t.id == tier_id), None)

    def index(self, tier_id: str) -> int:
        for i, t in enumerate(self.tiers):
            if t.id == tier_id:
                return i
        return -1

    def serving(self, key: str) -> Tier | None:
        """The tier called ``key`` by its id or by its group_tag (``/group set vip``)."""
        return self.tier(key) or next((t for t in self.tiers if t.group_tag == key), None)

    @property
    def names(self) -> dict[str, str]:
        """Display name by tier id."""
        return {t.id: t.name for t in self.tiers}

    @property
    def lowest(self) -> Tier:
        return self.tiers[0]

    def action(self, name: str) -> ActionRule | None:
        return self.points.get(name)


@dataclass(frozen=True, slots=True)
class Stats:
    """A member's ledger totals and the facts evaluation needs."""

    points: int = 0
    messages: int = 0
    checkins: int = 0
    homework: int = 0
    referrals: int = 0
    purchases: int = 0
    spend_cents: int = 0
    joined_at: datetime | None = None
    last_active_at: datetime | None = None
    override: str | None = None

    def value(self, requirement: str, now: datetime) -> float:
        if requirement == "days_since_join":
            return (now - self.joined_at).total_seconds() / 86400 if self.joined_at else 0.0
        if requirement == "spend":
            return self.spend_cents / 100
        return float(getattr(self, requirement))


@dataclass(frozen=True, slots=True)
class Decision:
    tier: str
    rule: str  # "requires:<tier>", "inactive", "operator"
    next: Tier | None = None
    missing: dict[str, float] = field(default_factory=dict)  # requirement -> how much more


def meets(tier: Tier, stats: Stats, now: datetime) -> bool:
    return all(stats.value(req, now) >= need for req, need in tier.requires.items())


def evaluate(rules: Rules, stats: Stats, now: datetime) -> Decision:
    """The member's tier under ``rules`` at ``now``, and what the next tier still needs."""
    earned = rules.lowest
    for tier in rules.tiers:
        if meets(tier, stats, now):
            earned = tier
    tier, rule = earned, f"requires:{earned.id}"
    dg = rules.downgrade
    if dg is not None:
        last = stats.last_active_at or stats.joined_at
        silent = last is not None and now - last >= timedelta(days=dg.inactive_days)
        if silent and earned.id not in dg.keep and rules.index(earned.id) > rules.index(dg.to):
            tier, rule = rules.tier(dg.to) or earned, "inactive"
    if stats.override and rules.tier(stats.override) is not None:
        tier, rule = rules.tier(stats.override) or tier, "operator"
    nxt = rules.tiers[rules.index(tier.id) + 1] if rules.index(tier.id) + 1 < len(rules.tiers) else None
    missing: dict[str, float] = {}
    if nxt is not None:
        for req, need in nxt.requires.items():
            have = stats.value(req, now)
            if have < need:
                gap = need - have
                missing[req] = math.ceil(gap) if req != "spend" else round(gap, 2)
    return Decision(tier.id, rule, nxt, missing)
