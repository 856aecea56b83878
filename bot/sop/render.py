"""What a step's text and ``when:`` condition see, and how they are evaluated.

Both run in jinja2's sandbox (``bot.templates``): texts with the lenient
environment (a missing field renders empty), conditions with jinja2's
expression language (``member.points < 10``, ``"复购" in member.tags``,
``days_since(member.last_active_at) > 14``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.templates import Templates


def days_since_fn(at: datetime, tz: ZoneInfo) -> Any:
    def days_since(when: Any = None) -> float:
        """Days from ``when`` to the step's due time; 9999 when unknown."""
        if not isinstance(when, datetime):
            return 9999.0
        return round((at - when).total_seconds() / 86400, 2)

    return days_since


@dataclass(slots=True)
class StepView:
    """The facts one occurrence is rendered with."""

    member: dict[str, Any]
    group: dict[str, Any]
    staff: dict[str, Any]
    run: dict[str, Any]
    step: dict[str, Any]
    trigger: dict[str, Any]
    due: datetime            # local
    checkins: dict[str, Any] | None = None

    def context(self, tz: ZoneInfo) -> dict[str, Any]:
        ctx = {"member": self.member, "group": self.group, "staff": self.staff, "run": self.run, "step": self.step,
               "trigger": self.trigger, "due": self.due, "days_since": days_since_fn(self.due, tz)}
        if self.checkins is not None:
            ctx["checkins"] = self.checkins
        return ctx


class Renderer:
    def __init__(self, templates: Templates, tz: ZoneInfo) -> None:
        self.templates = templates
        self.tz = tz
        self._conditions = functools.lru_cache(maxsize=1024)(self._compile_condition)

    def _compile_condition(self, expr: str) -> Any:
        return self.templates.lenient.compile_expression(expr)

    def condition(self, expr: str, ctx: dict[str, Any]) -> bool:
        """Evaluate ``when:``; raises on a condition that cannot be evaluated."""
        if not expr:
            return True
        return bool(self._conditions(expr)(**ctx))

    def text(self, source: str, ctx: dict[str, Any]) -> str:
        return self.templates.render_string(source, **ctx) if source else ""


def needs_checkins(source: str) -> bool:
    return "checkins" in source


def needs_profile(source: str, when: str) -> bool:
    return bool(when) or "member" in source
