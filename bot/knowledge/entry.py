"""A knowledge entry and where it may answer.

An :class:`Entry` is immutable; the loader builds it from a YAML mapping (file
entries) or from a database row (entries operators made in chat) through the
same validator, so both obey one contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal

from bot.hours import contains

MatchMode = Literal["auto", "exact", "contains", "regex"]
MATCH_MODES: tuple[str, ...] = ("auto", "exact", "contains", "regex")
CHAT_SCOPES: tuple[str, ...] = ("any", "group", "single")
ID_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a question was asked, for scope checks (tier from the member profile)."""

    chat: str = ""          # "group" | "single" | "" (anywhere: operator tools)
    chat_id: str = ""
    chat_name: str = ""
    tier: str = ""
    tier_name: str = ""


@dataclass(frozen=True, slots=True)
class Scope:
    chat: str = "any"
    groups: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    @property
    def everywhere(self) -> bool:
        return self.chat == "any" and not self.groups and not self.tiers

    def allows(self, where: Where | None) -> bool:
        if where is None or self.everywhere:
            return True
        if self.chat != "any" and where.chat and where.chat != self.chat:
            return False
        # A group list means "only in these groups" (never in 1:1 chats); names or ids both work.
        if self.groups and not (where.chat == "group" and (where.chat_id in self.groups or
                                                           (where.chat_name and where.chat_name in self.groups))):
            return False
        return not self.tiers or bool({where.tier, where.tier_name} & set(self.tiers))

    def to_data(self) -> dict[str, Any]:
        return {"chat": self.chat, "groups": list(self.groups), "tiers": list(self.tiers)}

    def describe(self) -> str:
        parts = []
        if self.chat != "any":
            parts.append({"group": "仅群聊", "single": "仅私聊"}[self.chat])
        if self.groups:
            parts.append("群：" + "、".join(self.groups))
        if self.tiers:
            parts.append("等级：" + "、".join(self.tiers))
        return "；".join(parts) or "所有会话"


@dataclass(frozen=True, slots=True)
class ActiveHours:
    """Daily local-time windows, e.g. "09:00-21:00" or "21:00-02:00" (overnight) or several, comma-separated."""

    spans: tuple[tuple[time, time], ...]
    text: str

    def contains(self, t: time) -> bool:
        return contains(self.spans, t)


@dataclass(frozen=True, slots=True)
class Source:
    """Where an entry came from: a file and line, or the database."""

    kind: Literal["file", "db"]
    path: str = ""
    line: int = 0
    overrides: str = ""  # for db entries that replace a file entry: "file.yaml:12"

    def describe(self) -> str:
        if self.kind == "file":
            return f"{self.path}:{self.line}"
        return "数据库" + (f"（覆盖 {self.overrides}）" if self.overrides else "")


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    answer: str
    questions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    match: str = "auto"
    scope: Scope = field(default_factory=Scope)
    priority: int = 0
    active_hours: ActiveHours | None = None
    off_hours: str = ""
    group_auto: bool = False
    source: Source = field(default_factory=lambda: Source("db"))

    @property
    def title(self) -> str:
        """The phrasing operators and "did you mean" show for this entry."""
        return self.questions[0] if self.questions else (self.keywords[0] if self.keywords else self.id)

    def to_data(self) -> dict[str, Any]:
        """The entry as the YAML contract spells it (what the database stores)."""
        data: dict[str, Any] = {"id": self.id, "questions": list(self.questions), "answer": self.answer}
        if self.keywords:
            data["keywords"] = list(self.keywords)
        if self.match != "auto":
            data["match"] = self.match
        if not self.scope.everywhere:
            data["scope"] = self.scope.to_data()
        if self.priority:
            data["priority"] = self.priority
        if self.active_hours is not None:
            data["active_hours"] = self.active_hours.text
        if self.off_hours:
            data["off_hours"] = self.off_hours
        if self.group_auto:
            data["group_auto"] = True
        return data
