"""ALL the SQL of the handoff feature; every function works in the caller's session.

Whether a member is with a person is asked for nearly every customer message, so a transaction reads the
live holds once (:func:`holds`, a copy in the session: :mod:`bot.storage.snapshots`); every function here
that opens, takes, closes or expires a handoff drops that copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update

from bot.handoff.models import Handoff
from bot.storage import snapshots
from bot.storage.db import insert_ignoring_conflicts

HANDOFFS = Handoff.__table__
_HOLDS = "handoff.holds"  # this transaction's {member: hold_until} of the live handoffs


def _live(now: datetime) -> Any:
    return and_(HANDOFFS.c.open_key.is_not(None), HANDOFFS.c.hold_until > now)


async def holds(session: Any, now: datetime) -> dict[str, datetime]:
    """The members whose handoff is live, with when its hold runs out: read once per transaction (a batch
    of events asks for each member); a hold that runs out later in the transaction is compared with the
    time of the question."""
    async def load(s: Any) -> dict[str, datetime]:
        rows = await s.execute(select(HANDOFFS.c.open_key, HANDOFFS.c.hold_until).where(_live(now)))
        return {key: until for key, until in rows.all()}

    return await snapshots.snapshot(session, _HOLDS, load)


async def is_open(session: Any, member_id: str, now: datetime) -> bool:
    until = (await holds(session, now)).get(member_id[:128])
    return until is not None and until > now


async def live_of(session: Any, member_id: str, now: datetime) -> Any:
    """The member's open or taken handoff whose hold has not run out, or None."""
    if not await is_open(session, member_id, now):
        return None
    return (await session.execute(select(HANDOFFS).where(and_(
        HANDOFFS.c.open_key == member_id[:128], HANDOFFS.c.hold_until > now)))).first()


async def expire(session: Any, now: datetime, member_id: str | None = None) -> int:
    """Close the handoffs whose hold ran out (the member is back with the bot); how many."""
    cond = and_(HANDOFFS.c.open_key.is_not(None), HANDOFFS.c.hold_until <= now)
    if member_id is not None:
        cond = and_(cond, HANDOFFS.c.open_key == member_id[:128])
    res = await session.execute(update(HANDOFFS).where(cond).values(
        status="closed", open_key=None, closed_at=now, close_reason="expired"))
    snapshots.forget(session, _HOLDS)
    return int(res.rowcount or 0)


async def insert(session: Any, values: dict[str, Any]) -> int | None:
    """A new live handoff; None when the member already has one (the unique ``open_key``)."""
    stmt = insert_ignoring_conflicts(session.bind.dialect.name, HANDOFFS, ["open_key"]).values(
        open_key=values["member_id"][:128], status="open", notified=[], follow_ups=0, close_reason="", **values,
    ).returning(HANDOFFS.c.id)
    row = (await session.execute(stmt)).first()
    snapshots.forget(session, _HOLDS)
    return None if row is None else int(row.id)


async def get(session: Any, handoff_id: int) -> Any:
    return (await session.execute(select(HANDOFFS).where(HANDOFFS.c.id == handoff_id))).first()


async def live(session: Any, now: datetime, limit: int) -> list[Any]:
    """Open and taken handoffs, the longest waiting first."""
    return list((await session.execute(select(HANDOFFS).where(_live(now))
                                       .order_by(HANDOFFS.c.opened_at, HANDOFFS.c.id).limit(limit))).all())


async def count_live(session: Any, now: datetime) -> int:
    return int((await session.execute(select(func.count()).select_from(HANDOFFS).where(_live(now)))).scalar_one())


async def add_message(session: Any, handoff_id: int, messages: list[dict[str, Any]], *, follow_up: bool) -> None:
    values: dict[str, Any] = {"messages": messages}
    if follow_up:
        values["follow_ups"] = HANDOFFS.c.follow_ups + 1
    await session.execute(update(HANDOFFS).where(HANDOFFS.c.id == handoff_id).values(**values))


async def set_notified(session: Any, handoff_id: int, users: list[str]) -> None:
    await session.execute(update(HANDOFFS).where(HANDOFFS.c.id == handoff_id).values(notified=users))


async def take(session: Any, handoff_id: int, staff_id: str, now: datetime, hold_until: datetime) -> bool:
    """Assign a live handoff to ``staff_id``; False if it is not live (closed, or its hold ran out)."""
    res = await session.execute(update(HANDOFFS).where(and_(HANDOFFS.c.id == handoff_id, _live(now))).values(
        status="taken", taken_by=staff_id[:128], taken_at=now, hold_until=hold_until))
    snapshots.forget(session, _HOLDS)
    return bool(res.rowcount)


async def close(session: Any, handoff_id: int, staff_id: str, now: datetime) -> bool:
    """Give the member back to the bot; False if the handoff was not live."""
    res = await session.execute(update(HANDOFFS).where(and_(HANDOFFS.c.id == handoff_id, _live(now))).values(
        status="closed", open_key=None, closed_by=staff_id[:128], closed_at=now, close_reason="closed"))
    snapshots.forget(session, _HOLDS)
    return bool(res.rowcount)


async def mark_escalated(session: Any, handoff_id: int, now: datetime) -> bool:
    """Record the escalation of a handoff still waiting for a person; False if it was taken, closed or escalated."""
    res = await session.execute(update(HANDOFFS).where(and_(
        HANDOFFS.c.id == handoff_id, HANDOFFS.c.status == "open", HANDOFFS.c.escalated_at.is_(None), _live(now),
    )).values(escalated_at=now))
    return bool(res.rowcount)
