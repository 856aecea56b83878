"""Database access of the knowledge base; every function works in the caller's session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update

from bot.knowledge.contract import TemplateCheck
from bot.knowledge.entry import Entry, Source
from bot.knowledge.loader import EntryInvalid, entry_from_data
from bot.knowledge.models import KbCooldown, KbEntryRow, KbGroup, KbMiss, KbOutcomeDay, KbSuggestion
from bot.storage import snapshots
from bot.storage.db import insert_adding, insert_ignoring_conflicts

ENTRIES = KbEntryRow.__table__
MISSES = KbMiss.__table__
GROUPS = KbGroup.__table__
SUGGESTIONS = KbSuggestion.__table__
COOLDOWNS = KbCooldown.__table__
OUTCOMES = KbOutcomeDay.__table__
_SWITCHED_OFF = "knowledge.groups_off"  # this transaction's set of the groups switched off (/kb off)
OUTCOME_NAMES = ("answered", "suggested", "missed", "picked")


@dataclass(frozen=True, slots=True)
class DbEntry:
    """One ``kb_entry`` row as the knowledge base sees it."""

    entry_id: str
    state: str
    entry: Entry | None          # None when deleted, reset or (after a contract change) invalid
    overrides: str
    updated_by: str
    updated_at: datetime
    version: int
    problem: str = ""


async def fingerprint(session: Any) -> tuple[int, int]:
    row = (await session.execute(select(func.count(), func.coalesce(func.sum(ENTRIES.c.version), 0)))).one()
    return int(row[0]), int(row[1])


async def load_entries(session: Any, check: TemplateCheck | None = None) -> dict[str, DbEntry]:
    rows = (await session.execute(select(ENTRIES).order_by(ENTRIES.c.entry_id))).all()
    out: dict[str, DbEntry] = {}
    for r in rows:
        entry: Entry | None = None
        problem = ""
        if r.state == "active":
            try:
                entry = entry_from_data(dict(r.data), Source("db", overrides=r.overrides), check=check)
            except EntryInvalid as exc:
                problem = str(exc)
        out[r.entry_id] = DbEntry(r.entry_id, r.state, entry, r.overrides, r.updated_by, r.updated_at,
                                  r.version, problem)
    return out


async def save_entry(session: Any, entry: Entry, *, actor: str, now: datetime, overrides: str = "",
                     state: str = "active") -> None:
    """Insert or replace the row of ``entry.id`` (bumping its version)."""
    data = entry.to_data()
    existing = (await session.execute(select(ENTRIES.c.id).where(ENTRIES.c.entry_id == entry.id))).first()
    if existing is None:
        stmt = insert_ignoring_conflicts(session.bind.dialect.name, ENTRIES, ["entry_id"]).values(
            entry_id=entry.id, data=data, state=state, version=1, overrides=overrides, created_by=actor,
            created_at=now, updated_by=actor, updated_at=now).returning(ENTRIES.c.id)
        if (await session.execute(stmt)).first() is not None:
            return
    await session.execute(update(ENTRIES).where(ENTRIES.c.entry_id == entry.id).values(
        data=data, state=state, version=ENTRIES.c.version + 1, overrides=overrides, updated_by=actor,
        updated_at=now))


async def set_state(session: Any, entry_id: str, state: str, *, actor: str, now: datetime,
                    data: dict[str, Any] | None = None, overrides: str = "") -> None:
    """Mark an id deleted (hiding any file entry) or reset (inert), creating the row if needed."""
    existing = (await session.execute(select(ENTRIES.c.id).where(ENTRIES.c.entry_id == entry_id))).first()
    if existing is None:
        await session.execute(ENTRIES.insert().values(
            entry_id=entry_id, data=data or {"id": entry_id}, state=state, version=1, overrides=overrides,
            created_by=actor, created_at=now, updated_by=actor, updated_at=now))
        return
    await session.execute(update(ENTRIES).where(ENTRIES.c.entry_id == entry_id).values(
        state=state, version=ENTRIES.c.version + 1, updated_by=actor, updated_at=now))


async def row_of(session: Any, entry_id: str) -> Any:
    return (await session.execute(select(ENTRIES).where(ENTRIES.c.entry_id == entry_id))).first()


# ── per-group switch ──

async def group_enabled(session: Any, chat_id: str) -> bool:
    """Whether the knowledge base answers in the group: the groups switched off are read once per
    transaction (a copy in the session, :mod:`bot.storage.snapshots`; :func:`set_group` drops it)."""
    return chat_id not in await snapshots.snapshot(session, _SWITCHED_OFF, _switched_off)


async def _switched_off(session: Any) -> frozenset[str]:
    rows = await session.execute(select(GROUPS.c.chat_id).where(GROUPS.c.enabled.is_(False)))
    return frozenset(r.chat_id for r in rows.all())


async def set_group(session: Any, chat_id: str, enabled: bool, *, actor: str, now: datetime) -> bool:
    """Switch a group; True if that changed anything."""
    before = await group_enabled(session, chat_id)
    stmt = insert_ignoring_conflicts(session.bind.dialect.name, GROUPS, ["chat_id"]).values(
        chat_id=chat_id, enabled=enabled, changed_by=actor, changed_at=now).returning(GROUPS.c.chat_id)
    if (await session.execute(stmt)).first() is None:
        await session.execute(update(GROUPS).where(GROUPS.c.chat_id == chat_id).values(
            enabled=enabled, changed_by=actor, changed_at=now))
    snapshots.forget(session, _SWITCHED_OFF)
    return before != enabled


# ── cooldowns ──

async def answered_recently(session: Any, chat_id: str, entry_id: str, since: datetime) -> datetime | None:
    row = (await session.execute(select(COOLDOWNS.c.answered_at).where(and_(
        COOLDOWNS.c.chat_id == chat_id, COOLDOWNS.c.entry_id == entry_id)))).first()
    if row is not None and row.answered_at > since:
        return row.answered_at
    return None


async def mark_answered(session: Any, chat_id: str, entry_id: str, now: datetime) -> None:
    stmt = insert_ignoring_conflicts(session.bind.dialect.name, COOLDOWNS, ["chat_id", "entry_id"]).values(
        chat_id=chat_id, entry_id=entry_id, answered_at=now).returning(COOLDOWNS.c.id)
    if (await session.execute(stmt)).first() is None:
        await session.execute(update(COOLDOWNS).where(and_(
            COOLDOWNS.c.chat_id == chat_id, COOLDOWNS.c.entry_id == entry_id)).values(answered_at=now))


# ── "did you mean" ──

async def offer(session: Any, *, chat_id: str, member_id: str, question: str, entries: list[str],
                miss_id: int | None, now: datetime, ttl_s: int) -> None:
    """Remember the numbered suggestions (replacing an older list for this member in this chat)."""
    await session.execute(delete(SUGGESTIONS).where(and_(
        SUGGESTIONS.c.chat_id == chat_id, SUGGESTIONS.c.member_id == member_id)))
    await session.execute(SUGGESTIONS.insert().values(
        chat_id=chat_id, member_id=member_id, question=question[:2000], entries=entries, miss_id=miss_id,
        created_at=now, expires_at=now + timedelta(seconds=ttl_s)))


async def pending_offer(session: Any, chat_id: str, member_id: str) -> Any:
    """The member's suggestions in this chat (expired or not), or None."""
    return (await session.execute(select(SUGGESTIONS).where(and_(
        SUGGESTIONS.c.chat_id == chat_id, SUGGESTIONS.c.member_id == member_id)))).first()


async def offered_at(session: Any, chat_id: str, member_id: str, now: datetime) -> datetime | None:
    """When the member's suggestions still open in this chat were offered (bot.openquestions), or None."""
    return (await session.execute(select(SUGGESTIONS.c.created_at).where(and_(
        SUGGESTIONS.c.chat_id == chat_id, SUGGESTIONS.c.member_id == member_id,
        SUGGESTIONS.c.expires_at > now)))).scalar()


async def drop_offer(session: Any, offer_id: int) -> None:
    await session.execute(delete(SUGGESTIONS).where(SUGGESTIONS.c.id == offer_id))


# ── misses ──

async def record_miss(session: Any, *, text: str, norm: str, chat_id: str, chat_type: str, member_id: str,
                      member_name: str, outcome: str, best_entry: str, best_score: float, now: datetime) -> int:
    res = await session.execute(MISSES.insert().values(
        text=text[:500], norm=norm[:500], chat_id=chat_id, chat_type=chat_type, member_id=member_id,
        member_name=member_name[:128], outcome=outcome, best_entry=best_entry, best_score=round(best_score, 4),
        at=now).returning(MISSES.c.id))
    return int(res.scalar_one())


async def mark_picked(session: Any, miss_id: int, entry_id: str) -> None:
    await session.execute(update(MISSES).where(MISSES.c.id == miss_id).values(picked_entry=entry_id))


async def recent_misses(session: Any, since: datetime, limit: int = 5000) -> list[Any]:
    return list((await session.execute(select(MISSES).where(MISSES.c.at >= since)
                                        .order_by(MISSES.c.at.desc()).limit(limit))).all())


async def recent_miss_marks(session: Any, since: datetime, limit: int = 5000) -> list[tuple[int, str | None]]:
    """(id, picked entry) of the rows :func:`recent_misses` reads: what tells whether they changed."""
    return [tuple(r) for r in (await session.execute(
        select(MISSES.c.id, MISSES.c.picked_entry).where(MISSES.c.at >= since)
        .order_by(MISSES.c.at.desc()).limit(limit))).all()]


async def prune(session: Any, now: datetime, misses_days: int) -> tuple[int, int]:
    """Drop expired suggestions and misses past retention."""
    a = await session.execute(delete(SUGGESTIONS).where(SUGGESTIONS.c.expires_at < now - timedelta(days=1)))
    b = await session.execute(delete(MISSES).where(MISSES.c.at < now - timedelta(days=misses_days)))
    return a.rowcount, b.rowcount


# ── outcomes per day (the report) ──

async def count_outcome(session: Any, *, day: str, chat_id: str, outcome: str) -> None:
    """One more question of the local ``day`` met with ``outcome`` (one of OUTCOME_NAMES) in the chat."""
    await session.execute(insert_adding(session.bind.dialect.name, OUTCOMES, ["day", "chat_id", "outcome"],
                                        {"day": day, "chat_id": chat_id, "outcome": outcome}, "count"))


async def outcome_counts(session: Any, since: str, until: str, chat_id: str | None = None) -> dict[str, int]:
    """The outcomes from local day ``since`` to ``until`` (both included), all chats or one."""
    q = select(OUTCOMES.c.outcome, func.sum(OUTCOMES.c.count)).where(
        and_(OUTCOMES.c.day >= since, OUTCOMES.c.day <= until))
    if chat_id is not None:
        q = q.where(OUTCOMES.c.chat_id == chat_id)
    found = dict((await session.execute(q.group_by(OUTCOMES.c.outcome))).all())
    return {name: int(found.get(name) or 0) for name in OUTCOME_NAMES}
