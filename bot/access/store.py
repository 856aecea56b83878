"""All the SQL of console access: invites and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update

from bot.access.models import ConsoleInvite, ConsoleSession

INVITES = ConsoleInvite.__table__
SESSIONS = ConsoleSession.__table__


async def add_invite(session: Any, *, token_hash: str, user_id: str, by: str, now: datetime,
                     expires_at: datetime) -> None:
    await session.execute(INVITES.insert().values(token_hash=token_hash, user_id=user_id, created_by=by,
                                                  created_at=now, expires_at=expires_at))


async def take_invite(session: Any, token_hash: str, now: datetime) -> str | None:
    """Mark an unused, unexpired invite used and return its user; None if there is none (used at most once)."""
    row = (await session.execute(select(INVITES.c.id, INVITES.c.user_id).where(and_(
        INVITES.c.token_hash == token_hash, INVITES.c.used_at.is_(None), INVITES.c.expires_at > now)))).first()
    if row is None:
        return None
    res = await session.execute(update(INVITES).where(and_(INVITES.c.id == row.id, INVITES.c.used_at.is_(None)))
                                .values(used_at=now))
    return row.user_id if res.rowcount == 1 else None


async def add_session(session: Any, *, sid_hash: str, user_id: str, via: str, now: datetime,
                      expires_at: datetime, ip: str) -> None:
    await session.execute(SESSIONS.insert().values(sid_hash=sid_hash, user_id=user_id, via=via, created_at=now,
                                                   expires_at=expires_at, last_seen_at=now, ip=ip[:64]))


async def live_session(session: Any, sid_hash: str, now: datetime) -> Any:
    return (await session.execute(select(SESSIONS).where(and_(
        SESSIONS.c.sid_hash == sid_hash, SESSIONS.c.revoked_at.is_(None), SESSIONS.c.expires_at > now)))).first()


async def touch_session(session: Any, session_id: int, now: datetime) -> None:
    await session.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(last_seen_at=now))


async def revoke_session(session: Any, sid_hash: str, now: datetime) -> int:
    res = await session.execute(update(SESSIONS).where(and_(SESSIONS.c.sid_hash == sid_hash,
                                                            SESSIONS.c.revoked_at.is_(None))).values(revoked_at=now))
    return int(res.rowcount or 0)


async def revoke_user(session: Any, user_id: str, now: datetime) -> int:
    res = await session.execute(update(SESSIONS).where(and_(SESSIONS.c.user_id == user_id,
                                                            SESSIONS.c.revoked_at.is_(None))).values(revoked_at=now))
    return int(res.rowcount or 0)


async def sessions_of(session: Any, now: datetime) -> list[Any]:
    """The live sessions, newest first."""
    return list((await session.execute(select(SESSIONS).where(and_(
        SESSIONS.c.revoked_at.is_(None), SESSIONS.c.expires_at > now)).order_by(SESSIONS.c.id.desc()))).all())
