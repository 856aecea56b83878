"""The member ladder as operator texts see it: ``ladder`` in every template.

The tiers feature owns the ladder (``tiers.yaml``). Knowledge answers, SOP steps,
Moments texts and the tiers feature's own messages quote its names and figures
through one template variable, ``ladder``, so an edit of ``tiers.yaml`` changes
every text. The core declares what ``ladder`` holds (:class:`LadderFacts`) and the
slot that fills it (:meth:`bot.templates.Templates.provide_ladder`); the tiers
feature fills it with the rules in service (and ``kb check`` / ``sop check`` with
the rules file, through :data:`FILE_READERS`). Without the tiers feature
``ladder`` is :data:`NO_LADDER`: no tiers, no points, and every figure renders empty.

In a template (docs/tiers.md lists every field)::

    {% for t in ladder.tiers %}{{ t.name }}：{{ t.conditions or "进群即是" }}{% endfor %}
    购买一次 +{{ ladder.points.purchase }} 积分，{{ ladder.tier("vip").name }} 门槛：{{ ladder.tier("vip").conditions }}
    在群里发「{{ ladder.actions.checkin.keyword }} …」打卡
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class LadderTier:
    id: str
    name: str
    requires: dict[str, int | float] = field(default_factory=dict)   # requirement -> amount (points: 100)
    conditions: str = ""              # the requires in words: 「积分满 100、打卡 5 次、交作业 1 次」; "" for the first
    privileges: tuple[str, ...] = ()
    group_tag: str = ""


@dataclass(frozen=True, slots=True)
class LadderAction:
    name: str                         # 打卡
    points: int
    daily_cap: int | None = None
    keywords: tuple[str, ...] = ()

    @property
    def keyword(self) -> str:
        """The first keyword (「打卡」), the one texts tell members to start with; "" if none."""
        return self.keywords[0] if self.keywords else ""


@dataclass(frozen=True, slots=True)
class LadderStreak:
    days: int     # check-ins on this many consecutive days …
    points: int   # … earn this once a streak


@dataclass(frozen=True, slots=True)
class LadderFacts:
    tiers: tuple[LadderTier, ...] = ()
    actions: dict[str, LadderAction] = field(default_factory=dict)
    streak: LadderStreak | None = None   # the streak bonus, if the ladder has one
    inactive_days: int | None = None  # the downgrade rule: silent this many days …
    downgrade_to: str = ""            # … goes back to this tier (its name)
    version: str = ""

    @property
    def points(self) -> dict[str, int]:
        """Points per action: ``ladder.points.purchase``."""
        return {k: a.points for k, a in self.actions.items()}

    @property
    def first(self) -> LadderTier:
        """The tier every member starts on (an empty one when there is no ladder)."""
        return self.tiers[0] if self.tiers else LadderTier("", "")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def tier(self, key: str) -> LadderTier | None:
        """The tier with this id, group tag or name (``ladder.tier("vip")``)."""
        return next((t for t in self.tiers if key in (t.id, t.name)), None) or \
            next((t for t in self.tiers if t.group_tag and t.group_tag == key), None)


NO_LADDER = LadderFacts()

# Readers of a tiers rules file into LadderFacts, for the command-line checks (``kb check``, ``sop check``)
# that run without the app; the tiers feature adds its reader when its command line is registered.
FILE_READERS: list[Callable[[Path], LadderFacts]] = []


def read_ladder_file(path: Path) -> LadderFacts | None:
    """The ladder of a rules file, or None when no reader is registered or the file is not usable
    (``tiers check`` says why)."""
    if not FILE_READERS:
        return None
    try:
        return FILE_READERS[0](path)
    except (OSError, ValueError):
        return None


class LiveLadder:
    """``ladder`` in templates: the facts in service now, read on each access (edits apply at once)."""

    __slots__ = ("_source",)

    def __init__(self, source: Callable[[], LadderFacts]) -> None:
        self._source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._source(), name)


# ── texts that contradict the ladder (``kb check`` and ``sop check`` warn; docs/tiers.md) ──

_TEMPLATE_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")
_SENTENCE = re.compile(r"[。；;！!？?]")
_CLAUSE = re.compile(r"[，,]")
# 「X」 right after a word that names a member's tier: 成为「X」, 升到「X」, 回到「X」, 您现在是「X」 …
_TIER_QUOTE = re.compile(r"(?:成为|升到|升级到|升级为|升为|升至|回到|降到|降为|等级|级别|(?:现在|目前|已经|您|你)是)"
                         r"\s*[「“\"]([^」”\"\s{}0-9]{1,10})[」”\"]")
_POINTS = re.compile(r"[+＋]\s*(\d+)|(\d+)\s*积分")
_STREAK_DAYS = re.compile(r"连续\s*(\d+)\s*天")
# Words that name an action of the ladder in a text; a clause naming two of them is not judged.
ACTION_WORDS = {"checkin": ("打卡",), "homework": ("作业",), "referral": ("邀请", "推荐好友", "进群"),
                "purchase": ("购买", "购物", "下单", "实付"), "message": ("发言", "聊天")}


def contradictions(text: str, facts: LadderFacts) -> list[tuple[int, str]]:
    """(line number, warning) for each figure or tier name written in ``text`` that the ladder contradicts.

    Only literal text counts (template code is left out). Three rules, each kept narrow so a
    warning means a real contradiction: a tier name in quotes after a word that names a tier
    (成为「茶客」) that is not a tier of the ladder; "+N" or "N 积分" in a clause naming one
    action (打卡、作业、邀请、购买、发言) whose points differ; and points promised for a streak
    (连续 7 天 +30) that the ladder's streak rule does not give (or that it has none).
    """
    if not facts.tiers:
        return []
    known = {t.name for t in facts.tiers} | {t.id for t in facts.tiers}
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        literal = _TEMPLATE_CODE.sub("", line)
        if literal.lstrip().startswith("#"):
            continue
        for m in _TIER_QUOTE.finditer(literal):
            if m.group(1) not in known:
                found.append((number, f"「{m.group(1)}」不是 tiers.yaml 里的等级（有：{'、'.join(facts.names)}），"
                                      "可以写 {{ ladder.tier(\"…\").name }}"))
        for sentence in _SENTENCE.split(literal):
            found += [(number, p) for p in _sentence_problems(sentence, facts)]
    return found


def _sentence_problems(sentence: str, facts: LadderFacts) -> list[str]:
    """A clause's figures are judged by the action it names, else by the one the clause before named
    (「朋友扫码进群，您 +20 积分」); a clause naming no action and no figure ends that."""
    problems: list[str] = []
    named: list[str] = []
    for clause in _CLAUSE.split(sentence):
        here = [a for a, words in ACTION_WORDS.items() if any(w in clause for w in words)]
        figures = [int(a or b) for a, b in _POINTS.findall(clause)]
        named = here or (named if figures else [])
        problem = _clause_problem(clause, figures, named, facts) if figures else None
        if problem:
            problems.append(problem)
    return problems


def _clause_problem(clause: str, figures: list[int], named: list[str], facts: LadderFacts) -> str | None:
    if "连续" in clause:
        return _streak_problem(clause, figures, facts)
    if len(named) != 1 or named[0] not in facts.actions:
        return None
    action = facts.actions[named[0]]
    wrong = [n for n in figures if n != action.points]
    if not wrong:
        return None
    return (f"「{clause.strip()}」写的是 {wrong[0]} 积分，tiers.yaml 里{action.name}是 {action.points} 积分，"
            f"可以写 {{{{ ladder.points.{named[0]} }}}}")


def _streak_problem(clause: str, figures: list[int], facts: LadderFacts) -> str | None:
    streak = facts.streak
    if streak is None:
        return f"「{clause.strip()}」许诺了连续打卡奖励，tiers.yaml 没有 streak 规则"
    days = [int(d) for d in _STREAK_DAYS.findall(clause)]
    if any(d != streak.days for d in days) or any(n != streak.points for n in figures):
        return (f"「{clause.strip()}」与 tiers.yaml 的连续打卡奖励不符（连续 {streak.days} 天 +{streak.points}），"
                "可以写 {{ ladder.streak.days }} 和 {{ ladder.streak.points }}")
    return None
