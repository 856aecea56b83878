"""Who may do what: admins from config, operators and reviewers granted in the database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, select

from bot.clock import Clock
from bot.storage import snapshots
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.models import RoleGrant

ADMIN = "admin"
OPERATOR = "operator"
REVIEWER = "reviewer"
ROLES = (ADMIN, OPERATOR, REVIEWER)

GRANTS = RoleGrant.__table__
_SNAPSHOT = "roles"  # the name of a transaction's copy of the grants (bot.storage.snapshots)


class Roles:
    def __init__(self, admins: Iterable[str], clock: Clock, dialect: str) -> None:
        self.admins = frozenset(admins)
        self.clock = clock
        self.dialect = dialect

    async def of(self, session: Any, user_id: str) -> frozenset[str]:
        """The user's roles as this transaction sees them.

        The grants are read once per transaction (one query for a whole inbox batch, not one per event
        and handler, :func:`bot.storage.snapshots.snapshot`); grant and revoke drop that copy (read again on
        the next lookup), and so does a savepoint that rolls back. Another replica's grant is seen by the
        next transaction that starts after it committed — the same as reading the table each time.
        """
        grants = await snapshots.snapshot(session, _SNAPSHOT, _load_grants)
        roles = set(grants.get(user_id, ()))
        if user_id in self.admins:
            roles.add(ADMIN)
        return frozenset(roles)

    def forget(self, session: Any) -> None:
        """Drop this transaction's copy of the grants (read again on the next :meth:`of`)."""
        snapshots.forget(session, _SNAPSHOT)

    async def grant(self, session: Any, user_id: str, role: str, by: str) -> bool:
        if role not in ROLES or role == ADMIN:
            raise ValueError(f"role must be one of {', '.join(r for r in ROLES if r != ADMIN)}")
        stmt = insert_ignoring_conflicts(self.dialect, GRANTS, ["user_id", "role"]).values(
            user_id=user_id, role=role, granted_by=by, granted_at=self.clock.now()).returning(GRANTS.c.id)
        added = (await session.execute(stmt)).first() is not None
        self.forget(session)
        return added

    async def revoke(self, session: Any, user_id: str, role: str) -> bool:
        res = await session.execute(delete(GRANTS).where(and_(GRANTS.c.user_id == user_id, GRANTS.c.role == role)))
        self.forget(session)
        return bool(res.rowcount)

    async def holders(self, session: Any, role: str | None = None) -> list[tuple[str, str, str]]:
        """(user, role, granted_by) for every grant, admins from config first."""
        out = [(a, ADMIN, "config") for a in sorted(self.admins) if role in (None, ADMIN)]
        q = select(GRANTS.c.user_id, GRANTS.c.role, GRANTS.c.granted_by).order_by(GRANTS.c.role, GRANTS.c.user_id)
        if role is not None:
            q = q.where(GRANTS.c.role == role)
        out += [(r.user_id, r.role, r.granted_by) for r in (await session.execute(q)).all()]
        return out


async def _load_grants(session: Any) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = defaultdict(set)
    for uid, role in (await session.execute(select(GRANTS.c.user_id, GRANTS.c.role))).all():
        grants[uid].add(role)
    return grants
