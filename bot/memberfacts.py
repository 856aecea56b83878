"""What other features know about one member, for the operators' profile (``/member``).

The tiers feature owns members and renders the profile; it must not read the SOP,
handoff or compliance tables. Those features add a *fact source* here in their
``install``: a coroutine ``(session, member_id) -> lines`` answering a few short
Chinese lines (「进行中的 SOP：newcomer-7d 第 2/5 步」). The profile shows each source's
label and lines in the order the features were installed; a feature that is not
installed adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.services import ServiceKey

log = logging.getLogger("siyu.members")

FactSource = Callable[[Any, str], Awaitable[list[str]]]


class MemberFacts:
    """The fact sources the installed features added (:func:`member_facts`)."""

    def __init__(self) -> None:
        self._sources: list[tuple[str, FactSource]] = []

    def add(self, label: str, source: FactSource) -> None:
        self._sources.append((label, source))

    async def collect(self, session: Any, member_id: str) -> list[tuple[str, list[str]]]:
        """(label, lines) of every source, in the order they were added."""
        return [(label, await source(session, member_id)) for label, source in self._sources]


MEMBER_FACTS: ServiceKey[MemberFacts] = ServiceKey("member_facts")


def member_facts(app: Any) -> MemberFacts:
    """The app's fact sources (made on first use, so features may add to it in any order)."""
    return app.services.shared(MEMBER_FACTS, MemberFacts)
