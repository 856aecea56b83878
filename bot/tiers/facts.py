"""The rules in service as every operator text sees them: ``ladder`` in templates (bot.ladderfacts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.ladderfacts import FILE_READERS, LadderAction, LadderFacts, LadderStreak, LadderTier
from bot.tiers.rules import ACTIONS, Rules
from bot.tiers.rulesfile import load_rules

# How a requirement reads in a text ({n}: the amount): 「积分满 100、打卡 5 次、交作业 1 次」.
CONDITION_WORDS = {
    "points": "积分满 {n}", "messages": "发言 {n} 次", "checkins": "打卡 {n} 次", "homework": "交作业 {n} 次",
    "referrals": "邀请 {n} 人", "purchases": "购买 {n} 次", "spend": "累计消费满 {n} 元",
    "days_since_join": "入群满 {n} 天",
}


def _amount(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def conditions(requires: dict[str, float]) -> str:
    return "、".join(CONDITION_WORDS[k].format(n=_amount(v)) for k, v in requires.items())


def facts_of(rules: Rules) -> LadderFacts:
    tiers = tuple(LadderTier(t.id, t.name, {k: _amount(v) for k, v in t.requires.items()}, conditions(t.requires),
                             t.privileges, t.group_tag) for t in rules.tiers)
    actions = {k: LadderAction(ACTIONS[k], a.points, a.daily_cap, a.keywords) for k, a in rules.points.items()}
    dg = rules.downgrade
    to = rules.tier(dg.to) if dg else None
    streak = LadderStreak(rules.streak.days, rules.streak.points) if rules.streak else None
    return LadderFacts(tiers, actions, streak, dg.inactive_days if dg else None, to.name if to else "", rules.version)


def live_facts(rules: Callable[[], Rules]) -> Callable[[], LadderFacts]:
    """The facts of the rules in service, made again only when the rules change (a reload)."""
    made: list[LadderFacts] = []

    def current() -> LadderFacts:
        now = rules()
        if not made or made[0].version != now.version:
            made[:] = [facts_of(now)]
        return made[0]

    return current


def read_facts(path: Path) -> LadderFacts:
    return facts_of(load_rules(path))


def register_file_reader() -> None:
    """Let ``kb check`` and ``sop check`` read a rules file's ladder (they run without the app)."""
    if read_facts not in FILE_READERS:
        FILE_READERS.append(read_facts)
