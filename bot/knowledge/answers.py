"""Rendering an entry's answer for one member: active hours, the sandbox, a safe fallback."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.knowledge.entry import Entry
from bot.templates import TemplateProblem, Templates

log = logging.getLogger("siyu.knowledge")
TEMPLATES = Path(__file__).with_name("templates")  # knowledge/*.j2: what the knowledge base says in chat


def render_answer(templates: Templates, tz: ZoneInfo, entry: Entry, member: dict[str, Any],
                  group: dict[str, Any], now: datetime) -> str:
    """The text to send: the answer, or outside ``active_hours`` the ``off_hours`` answer or the fallback.

    Operator text renders in the sandbox with ``member``, ``group`` and ``now`` (local time).
    """
    local = now.astimezone(tz)
    source = entry.answer
    if entry.active_hours is not None and not entry.active_hours.contains(local.time().replace(tzinfo=None)):
        if not entry.off_hours:
            return templates.render("knowledge/off_hours.j2", name=member.get("name") or "朋友",
                                    hours=entry.active_hours.text)
        source = entry.off_hours
    try:
        return templates.render_string(source, member=member, group=group, now=local)
    except TemplateProblem as exc:
        log.warning("knowledge answer %s failed to render: %s", entry.id, exc)
        return templates.render("knowledge/answer_failed.j2")
