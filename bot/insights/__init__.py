"""The report: the operations figures (users, conversion, behaviour, referral, deals, NPS) for a period.

A read model above the features: :mod:`bot.insights.report` reads the tiers and knowledge
stores and computes every figure once, for ``siyu report`` (:mod:`bot.insights.cli`),
``/stats`` (handlers/insights.py) and the web console. :mod:`bot.insights.period` turns
「本周」, ``--since/--until`` into local-day periods. The features know nothing of it.
Every figure is defined in docs/report.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.insights.report import Insights

INSIGHTS: ServiceKey[Insights] = ServiceKey("insights")

__all__ = ["INSIGHTS"]
