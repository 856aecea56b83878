"""``tiers.yaml``: the ladder, the points per action and the downgrade rule — and their evaluation.

Rules are data. :func:`evaluate` is a pure function of the rules, a member's
ledger totals and the time, so a full recompute from the ledger gives exactly
the tier the incremental updates gave.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.yamldoc import FileProblems, Lines, Problem, load_yaml, read_text

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
ACTIONS: dict[str, str] = {
    "message": "发言", "checkin": "打卡", "homework": "作业", "referral": "邀请新成员", "purchase": "购买",
}
ID_RX = re.compile(r"[a-z][a-z0-9_-]{0,39}")


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

    def tier(self, tier_id: str) -> Tier | None:
        return next((t for t in self.tiers if t.id == tier_id), None)

    def index(self, tier_id: str) -> int:
        for i, t in enumerate(self.tiers):
            if t.id == tier_id:
                return i
        return -1

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


# ── the file ──

TOP_KEYS = ("tiers", "points", "downgrade", "privileges")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def parse_rules(text: str, path: str) -> Rules:
    """Validate a tiers.yaml text; raise FileProblems naming file, line and problem."""
    data, lines = load_yaml(text, path)
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(), "文件应是一个映射，至少包含 tiers: 等级列表")])
    for key in data:
        if key not in TOP_KEYS:
            problems.append(lines.problem(f"未知的字段 {key}（可用：{', '.join(TOP_KEYS)}）", key))
    privileges = _privileges(data.get("privileges"), lines, problems)
    tiers = _tiers(data.get("tiers"), lines, problems, privileges)
    ids = {t.id for t in tiers}
    for tier_id in privileges:
        if tier_id not in ids:
            problems.append(lines.problem(f"privileges 里的 {tier_id} 不是已定义的等级", "privileges", tier_id))
    points = _points(data.get("points"), lines, problems)
    downgrade = _downgrade(data.get("downgrade"), lines, problems, ids)
    if problems:
        raise FileProblems(problems)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Rules(tiers=tuple(tiers), points=points, downgrade=downgrade, version=version)


def load_rules(path: Path) -> Rules:
    return parse_rules(read_text(path), str(path))


def _privileges(raw: Any, lines: Lines, problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(lines.problem("privileges 应是「等级: [权益, …]」的映射", "privileges"))
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for tier_id, items in raw.items():
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            problems.append(lines.problem(f"{tier_id} 的权益应是文字列表", "privileges", tier_id))
            continue
        out[str(tier_id)] = tuple(i.strip() for i in items)
    return out


def _tiers(raw: Any, lines: Lines, problems: list[Problem], privileges: dict[str, tuple[str, ...]]) -> list[Tier]:
    if not isinstance(raw, list) or not raw:
        problems.append(lines.problem("tiers 应是非空的等级列表（从低到高）", "tiers"))
        return []
    tiers: list[Tier] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = ("tiers", i)
        if not isinstance(item, dict):
            problems.append(lines.problem("每个等级应是 {id: …, name: …, requires: {…}} 映射", *where))
            continue
        for key in item:
            if key not in ("id", "name", "requires", "group_tag"):
                problems.append(lines.problem(
                    f"等级的未知字段 {key}（可用：id, name, requires, group_tag）", *where, key))
        tier_id = item.get("id")
        if not isinstance(tier_id, str) or not ID_RX.fullmatch(tier_id):
            problems.append(lines.problem("id 应是小写字母开头的英文标识，如 quality", *where, "id"))
            continue
        if tier_id in seen:
            problems.append(lines.problem(f"等级 id {tier_id} 重复了", *where, "id"))
            continue
        seen.add(tier_id)
        name = item.get("name", tier_id)
        if not isinstance(name, str) or not name.strip():
            problems.append(lines.problem("name 应是等级的中文名称", *where, "name"))
            name = tier_id
        requires = item.get("requires") or {}
        if not isinstance(requires, dict):
            problems.append(lines.problem("requires 应是「条件: 数值」的映射", *where, "requires"))
            requires = {}
        clean: dict[str, float] = {}
        for req, need in requires.items():
            if req not in REQUIREMENTS:
                problems.append(lines.problem(
                    f"未知的升级条件 {req}（可用：{', '.join(REQUIREMENTS)}）", *where, "requires", req))
            elif not _number(need):
                problems.append(lines.problem(f"{req} 应是不小于 0 的数字", *where, "requires", req))
            else:
                clean[req] = float(need)
        if i == 0 and clean:
            problems.append(lines.problem("第一个等级是起点，不能有 requires", *where, "requires"))
        tag = item.get("group_tag", "")
        if not isinstance(tag, str):
            problems.append(lines.problem("group_tag 应是文字", *where, "group_tag"))
            tag = ""
        tiers.append(Tier(tier_id, name.strip(), clean, tag, privileges.get(tier_id, ())))
    return tiers


def _points(raw: Any, lines: Lines, problems: list[Problem]) -> dict[str, ActionRule]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(lines.problem("points 应是「动作: {points: …}」的映射", "points"))
        return {}
    out: dict[str, ActionRule] = {}
    for action, spec in raw.items():
        where = ("points", action)
        if action not in ACTIONS:
            problems.append(lines.problem(f"未知的积分动作 {action}（可用：{', '.join(ACTIONS)}）", *where))
            continue
        if not isinstance(spec, dict):
            problems.append(lines.problem(f"{action} 应是 {{points: 数字, daily_cap: 数字}} 映射", *where))
            continue
        for key in spec:
            if key not in ("points", "daily_cap", "keywords"):
                problems.append(lines.problem(f"{action} 的未知字段 {key}（可用：points, daily_cap, keywords）",
                                              *where, key))
        pts = spec.get("points")
        if not isinstance(pts, int) or isinstance(pts, bool) or pts < 0:
            problems.append(lines.problem(f"{action}.points 应是不小于 0 的整数", *where, "points"))
            continue
        cap = spec.get("daily_cap")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            problems.append(lines.problem(f"{action}.daily_cap 应是正整数（每天最多计分几次）", *where, "daily_cap"))
            cap = None
        keywords = spec.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            problems.append(lines.problem(f"{action}.keywords 应是文字列表", *where, "keywords"))
            keywords = []
        if action == "checkin" and not keywords:
            keywords = ["打卡"]
        out[action] = ActionRule(pts, cap, tuple(k.strip() for k in keywords))
    return out


def _downgrade(raw: Any, lines: Lines, problems: list[Problem], ids: set[str]) -> Downgrade | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(lines.problem("downgrade 应是 {inactive_days: 天数, to: 等级} 映射", "downgrade"))
        return None
    for key in raw:
        if key not in ("inactive_days", "to", "keep"):
            problems.append(lines.problem(
                f"downgrade 的未知字段 {key}（可用：inactive_days, to, keep）", "downgrade", key))
    days = raw.get("inactive_days")
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        problems.append(lines.problem("downgrade.inactive_days 应是正整数", "downgrade", "inactive_days"))
        return None
    to = raw.get("to")
    if to not in ids:
        problems.append(lines.problem(f"downgrade.to 应是已定义的等级，收到 {to!r}", "downgrade", "to"))
        return None
    keep = raw.get("keep", [])
    if not isinstance(keep, list) or any(k not in ids for k in keep):
        problems.append(lines.problem("downgrade.keep 应是已定义等级的列表", "downgrade", "keep"))
        keep = []
    return Downgrade(days, str(to), tuple(keep))
