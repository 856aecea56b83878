"""Questions the bot asked a member that a short reply answers, so the newest one takes the reply.

A bare 「9」 may be a satisfaction score (the SOP feature's survey, 0–10) or a pick from the
knowledge base's numbered 「您是不是想问」 list. Each feature keeps its own questions in its own
tables and may not read the other's; instead each adds a *source* here in its ``install``: a
coroutine ``(session, chat_id, member_id, now) -> datetime | None`` giving when its question still
open in that chat was asked (None when there is none). A feature about to take a reply asks
:meth:`OpenQuestions.newer` whether another feature asked that member something later in the same
chat, and leaves the reply to it when so: the question asked last is the one answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.services import ServiceKey

AskedAt = Callable[[Any, str, str, datetime], Awaitable[datetime | None]]


class OpenQuestions:
    """The installed features' sources of open questions (:func:`open_questions`)."""

    def __init__(self) -> None:
        self._sources: dict[str, AskedAt] = {}

    def add(self, owner: str, source: AskedAt) -> None:
        self._sources[owner] = source

    async def newer(self, session: Any, chat_id: str, member_id: str, since: datetime, now: datetime, *,
                    besides: str) -> str | None:
        """The owner of a question still open in ``chat_id`` that was asked after ``since`` by another
        feature than ``besides`` (the newest such one), or None."""
        newest: tuple[datetime, str] | None = None
        for owner, source in self._sources.items():
            if owner == besides:
                continue
            asked = await source(session, chat_id, member_id, now)
            if asked is not None and asked > since and (newest is None or asked > newest[0]):
                newest = (asked, owner)
        return newest[1] if newest else None


OPEN_QUESTIONS: ServiceKey[OpenQuestions] = ServiceKey("open_questions")


def open_questions(app: Any) -> OpenQuestions:
    """The app's sources (made on first use, so features may add to it in any order)."""
    return app.services.shared(OPEN_QUESTIONS, OpenQuestions)
