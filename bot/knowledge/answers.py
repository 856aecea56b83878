"""Rendering an entry's answer for one member: active hours, the sandbox, a safe fallback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.knowledge.entry import Entry
from bot.members import MemberProfile
from bot.templates import OPERATOR_MESSAGES, TemplateProblem, Templates, too_many_messages
from bot.textcheck import TextCheck, refuse, warnings_of

log = logging.getLogger("siyu.knowledge")
TEMPLATES = Path(__file__).with_name("templates")  # knowledge/*.j2: what the knowledge base says in chat
_LOGGED_MAX = 1000
_logged: set[tuple[str, str]] = set()  # (entry id, text) whose failure was logged: once each, not per question


def sample_values(templates: Templates) -> dict[str, Any]:
    """What an answer is tried with when it is added: a sample member, group and the time now."""
    return {"member": MemberProfile(id="sample", name="小明").for_template(),
            "group": {"id": "sample", "name": "示例群", "type": "group"}, "now": templates.now()}


def sample_answer(templates: Templates, source: str) -> str:
    """The answer as a sample member would get it (budgeted; raises when it cannot be sent)."""
    return templates.trial(source, messages=OPERATOR_MESSAGES, **sample_values(templates))


def answer_check(templates: Templates, lexicon: Callable[[], TextCheck | None] = lambda: None
                 ) -> Callable[[str], None]:
    """The check of a new answer (``/kb add``, ``/kb edit``, knowledge files, ``kb check``): it compiles,
    renders within the budget with sample values, fits OPERATOR_MESSAGES text messages, and the text
    rendered holds no ``reject`` term of the compliance lexicon (``lexicon()``: None checks no words)."""

    def check(source: str) -> None:
        text = sample_answer(templates, source)
        words = lexicon()
        if words is not None:
            refuse(words.findings(text))

    return check


def lexicon_warnings(templates: Templates, lexicon: TextCheck | None, entry: Entry) -> list[str]:
    """The ``review`` terms in an entry's answers as a sample member gets them: warned of, not refused."""
    if lexicon is None:
        return []
    out = []
    for name, source in (("answer", entry.answer), ("off_hours", entry.off_hours)):
        if not source:
            continue
        try:
            text = sample_answer(templates, source)
        except Exception:  # noqa: S112 - the answer check refused it already: no text to warn of
            continue
        out += [f"{name} {w}" for w in warnings_of(lexicon.findings(text))]
    return out


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
        text = templates.render_string(source, member=member, group=group, now=local)
        problem = too_many_messages(text)
    except TemplateProblem as exc:
        problem = str(exc)
    if problem is None:
        return text
    # Over its budget or too long to send: the failure text instead, never a flood of messages.
    if (entry.id, source) not in _logged:
        if len(_logged) >= _LOGGED_MAX:
            _logged.clear()
        _logged.add((entry.id, source))
        log.warning("knowledge answer %s cannot be sent: %s", entry.id, problem)
    return templates.render("knowledge/answer_failed.j2")
