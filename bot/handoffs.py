"""Whether a member is with a person: what other features may know about human handoffs.

The handoff feature (bot.handoff: 转人工, ``/handoff``) provides a :class:`HandoffState`
under :data:`HANDOFFS`. While a member's handoff is open, the bot does not answer
them on its own: the knowledge base asks :func:`in_handoff` before it answers,
suggests or records a miss — without importing the handoff feature. Without the
feature nobody is ever in a handoff.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.services import ServiceKey


class HandoffState(Protocol):
    async def is_open(self, session: Any, member_id: str) -> bool:
        """True while ``member_id`` has an open handoff (waiting for a person, or taken by one)."""
        ...


HANDOFFS: ServiceKey[HandoffState] = ServiceKey("handoffs")


async def in_handoff(app: Any, session: Any, member_id: str) -> bool:
    """Whether the bot should leave ``member_id`` to a person (False when the handoff feature is not installed)."""
    state = app.maybe(HANDOFFS)
    return state is not None and await state.is_open(session, member_id)
