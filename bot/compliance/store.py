"""All of the compliance feature's SQL: the message log, alerts, words added in chat, false positives,
the archive cursor.

Every method takes the caller's session, so what it writes commits (or rolls
back) with the rest of the caller's work.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select, update

from bot.compliance.models import ModerationAlert, ModerationFalsePositive, ModerationMessage, ModerationWord
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.models import KeyValue
from moderation.lexicon import DbWord

if TYPE_CHECKING:
    from bot.compliance.service import AlertFilter, Observed
    from bot.storage.db import Database

MESSAGES = ModerationMessage.__table__
ALERTS = ModerationAlert.__table__
WORDS = ModerationWord.__table__
FALSE_POSITIVES = ModerationFalsePositive.__table__
KV = KeyValue.__table__
CURSOR_KEY = "moderation:archive_seq"


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ── the message log ──
    async def log_message(self, session: Any, msg: Observed) -> int | None:
        """Log a message once by its key; its row id, or None when it was logged before."""
        stmt = insert_ignoring_conflicts(self.db.dialect, MESSAGES, ["msg_key"]).values(
            msg_key=msg.key[:255], msg_id=msg.msg_id[:255], source=msg.source, chat_id=msg.chat.id[:200],
            chat_type=msg.chat.type, chat_name=msg.chat.name[:128], sender_id=msg.sender.id[:128],
            sender_name=msg.sender.name[:128], staff=msg.staff, msgtype=msg.msgtype[:24], text=msg.text[:2000],
            at=msg.at, seq=msg.seq, revoke_of=msg.revoke_of).returning(MESSAGES.c.id)
        row = (await session.execute(stmt)).first()
        return None if row is None else int(row.id)

    async def context(self, session: Any, chat_id: str, at: datetime, row_id: int, n: int) -> list[Any]:
        """The ``n`` messages of the chat before this one, oldest first (recalls left out)."""
        rows = (await session.execute(
            select(MESSAGES.c.sender_id, MESSAGES.c.sender_name, MESSAGES.c.staff, MESSAGES.c.text, MESSAGES.c.at,
                   MESSAGES.c.msgtype)
            .where(and_(MESSAGES.c.chat_id == chat_id[:200], MESSAGES.c.id != row_id,
                        MESSAGES.c.revoke_of.is_(None),
                        or_(MESSAGES.c.at < at, and_(MESSAGES.c.at == at, MESSAGES.c.id < row_id))))
            .order_by(MESSAGES.c.at.desc(), MESSAGES.c.id.desc()).limit(n))).all()
        return list(reversed(rows))

    async def recall_before(self, session: Any, msg: Observed) -> datetime | None:
        """If the message was already recalled (the archive can deliver the recall first), when — and mark it."""
        row = (await session.execute(select(MESSAGES.c.at).where(MESSAGES.c.revoke_of == msg.msg_id[:255])
                                     .limit(1))).first()
        if row is None:
            return None
        await session.execute(update(MESSAGES).where(MESSAGES.c.msg_key == msg.key[:255]).values(revoked_at=row.at))
        return row.at  # type: ignore[no-any-return]

    async def link_recall(self, session: Any, revoked_msg_id: str, at: datetime) -> int:
        """Mark the recalled message and its alerts; how many alerts."""
        await session.execute(update(MESSAGES).where(and_(MESSAGES.c.msg_id == revoked_msg_id[:255],
                                                          MESSAGES.c.revoke_of.is_(None)))
                              .values(revoked_at=at))
        res = await session.execute(update(ALERTS).where(and_(ALERTS.c.msg_id == revoked_msg_id[:255],
                                                              ALERTS.c.recalled_at.is_(None)))
                                    .values(recalled_at=at))
        return int(res.rowcount or 0)

    async def prune_messages(self, before: datetime) -> int:
        async with self.db.session() as s:
            res = await s.execute(delete(MESSAGES).where(MESSAGES.c.at < before))
        return int(res.rowcount or 0)

    # ── alerts ──
    async def fold_repeat(self, session: Any, sender_id: str, term: str, chat_id: str, since: datetime,
                          now: datetime) -> Any:
        """Count a hit as a repeat of the sender's latest alert of this term in this chat since ``since``
        — that alert after the count, or None."""
        prev = (await session.execute(select(ALERTS.c.id).where(and_(
            ALERTS.c.sender_id == sender_id[:128], ALERTS.c.term == term[:64], ALERTS.c.chat_id == chat_id[:200],
            ALERTS.c.created_at >= since, ALERTS.c.status != "noted")).order_by(ALERTS.c.id.desc()).limit(1))).first()
        if prev is None:
            return None
        await session.execute(update(ALERTS).where(ALERTS.c.id == prev.id).values(
            repeats=ALERTS.c.repeats + 1, last_seen_at=now))
        return await self.alert(session, prev.id)

    async def add_alert(self, session: Any, values: dict[str, Any]) -> int | None:
        """Store an alert once by its ``dedup_key``; its id, or None when it exists."""
        ins = insert_ignoring_conflicts(self.db.dialect, ALERTS, ["dedup_key"]).values(**values) \
            .returning(ALERTS.c.id)
        got = (await session.execute(ins)).first()
        return None if got is None else int(got.id)

    async def set_notified(self, session: Any, alert_ids: list[int], targets: list[str]) -> None:
        await session.execute(update(ALERTS).where(ALERTS.c.id.in_(alert_ids)).values(notified=targets))

    async def alert(self, session: Any, alert_id: int) -> Any:
        return (await session.execute(select(ALERTS).where(ALERTS.c.id == alert_id))).first()

    async def update_alert(self, session: Any, alert_id: int, **values: Any) -> None:
        await session.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(**values))

    async def count_alerts(self, session: Any, scope: str) -> int:
        """``open``: the open alerts; ``all``: every alert a reviewer sees (info hits left out)."""
        q = select(func.count()).select_from(ALERTS).where(self._scope(scope))
        return int((await session.execute(q)).scalar_one())

    async def alerts_page(self, session: Any, scope: str, offset: int, limit: int) -> list[Any]:
        q = select(ALERTS).where(self._scope(scope)).order_by(ALERTS.c.id.desc()).offset(offset).limit(limit)
        return list((await session.execute(q)).all())

    async def find_alerts(self, session: Any, where: AlertFilter, offset: int, limit: int) -> tuple[int, list[Any]]:
        """(how many match, one page of them newest first) — the reviewers' queue with its filters."""
        cond = and_(*self._conditions(where))
        total = int((await session.execute(select(func.count()).select_from(ALERTS).where(cond))).scalar_one())
        rows = (await session.execute(select(ALERTS).where(cond).order_by(ALERTS.c.id.desc())
                                      .offset(offset).limit(limit))).all()
        return total, list(rows)

    async def alert_categories(self, session: Any) -> list[str]:
        return [r[0] for r in (await session.execute(select(ALERTS.c.category).distinct()
                                                     .order_by(ALERTS.c.category))).all()]

    @staticmethod
    def _conditions(where: AlertFilter) -> list[Any]:
        conds: list[Any] = [ALERTS.c.status != "noted"] if where.status in ("", "all") else \
            [ALERTS.c.status == where.status]
        for column, value in ((ALERTS.c.category, where.category), (ALERTS.c.level, where.level),
                              (ALERTS.c.sender_id, where.staff), (ALERTS.c.chat_id, where.chat)):
            if value:
                conds.append(column == value)
        if where.since is not None:
            conds.append(ALERTS.c.created_at >= where.since)
        if where.until is not None:
            conds.append(ALERTS.c.created_at < where.until)
        return conds

    @staticmethod
    def _scope(scope: str) -> Any:
        return ALERTS.c.status == "open" if scope == "open" else ALERTS.c.status != "noted"

    async def add_false_positive(self, session: Any, **values: Any) -> None:
        await session.execute(FALSE_POSITIVES.insert().values(**values))

    # ── the digest ──
    async def alerts_between(self, session: Any, start: datetime, end: datetime) -> list[Any]:
        return list((await session.execute(
            select(ALERTS.c.category, ALERTS.c.level, ALERTS.c.sender_id, ALERTS.c.sender_name, ALERTS.c.term,
                   ALERTS.c.audience, ALERTS.c.repeats)
            .where(and_(ALERTS.c.created_at >= start, ALERTS.c.created_at < end, ALERTS.c.status != "noted"))))
            .all())

    async def oldest_open(self, session: Any, limit: int) -> list[Any]:
        return list((await session.execute(
            select(ALERTS.c.id, ALERTS.c.level, ALERTS.c.category, ALERTS.c.term, ALERTS.c.sender_id,
                   ALERTS.c.sender_name, ALERTS.c.created_at)
            .where(ALERTS.c.status == "open").order_by(ALERTS.c.created_at).limit(limit))).all())

    async def staff_texts(self, session: Any, start: datetime, end: datetime, limit: int = 20000) -> list[Any]:
        return list((await session.execute(
            select(MESSAGES.c.sender_id, MESSAGES.c.sender_name, MESSAGES.c.text)
            .where(and_(MESSAGES.c.staff.is_(True), MESSAGES.c.at >= start, MESSAGES.c.at < end,
                        MESSAGES.c.msgtype == "text", MESSAGES.c.revoke_of.is_(None)))
            .order_by(MESSAGES.c.id).limit(limit))).all())

    async def staff_hits(self, session: Any, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
        """(sender, term, alerts) of staff alerts from ``start`` to ``end``."""
        rows = (await session.execute(
            select(ALERTS.c.sender_id, ALERTS.c.term, func.count())
            .where(and_(ALERTS.c.audience == "staff", ALERTS.c.created_at >= start, ALERTS.c.created_at < end))
            .group_by(ALERTS.c.sender_id, ALERTS.c.term))).all()
        return [(sender, term, int(n)) for sender, term, n in rows]

    # ── words added in chat ──
    @staticmethod
    async def active_words(session: Any) -> list[DbWord]:
        rows = (await session.execute(select(WORDS).where(WORDS.c.active.is_(True)).order_by(WORDS.c.id))).all()
        return [DbWord(term=r.term, category=r.category, level=r.level, kind=r.kind, by=r.added_by) for r in rows]

    async def words_fingerprint(self, session: Any) -> tuple[Any, ...]:
        """Changes whenever a word is added, changed or switched off."""
        row = (await session.execute(select(func.count(), func.max(WORDS.c.id), func.max(WORDS.c.updated_at))
                                     .select_from(WORDS))).one()
        return tuple(row)

    async def put_word(self, session: Any, *, term: str, form: str, category: str, level: str, kind: str,
                       by: str, now: datetime) -> bool:
        """Add or switch on a word row; whether it was already active."""
        existing = (await session.execute(select(WORDS.c.id, WORDS.c.active).where(and_(
            WORDS.c.category == category, WORDS.c.form == form, WORDS.c.kind == kind)))).first()
        values = {"term": term, "level": level, "active": True, "added_by": by, "updated_at": now}
        if existing is None:
            await session.execute(WORDS.insert().values(form=form, category=category, kind=kind, **values))
            return False
        await session.execute(update(WORDS).where(WORDS.c.id == existing.id).values(**values))
        return bool(existing.active)

    async def switch_off_word(self, session: Any, *, category: str, form: str, kind: str, by: str,
                              now: datetime) -> bool:
        res = await session.execute(update(WORDS).where(and_(
            WORDS.c.category == category, WORDS.c.form == form, WORDS.c.kind == kind, WORDS.c.active.is_(True)))
            .values(active=False, updated_at=now, added_by=by))
        return bool(res.rowcount)

    # ── the archive cursor (kv_state) ──
    async def cursor(self, session: Any) -> int | None:
        row = (await session.execute(select(KV.c.value).where(KV.c.key == CURSOR_KEY))).first()
        return int(row.value) if row is not None and row.value is not None else None

    async def advance_cursor(self, session: Any, seq: int, now: datetime) -> int:
        """Move the cursor up to ``seq`` (never back); the cursor after."""
        ins = insert_ignoring_conflicts(self.db.dialect, KV, ["key"]).values(key=CURSOR_KEY, value=seq, updated_at=now)
        await session.execute(ins)
        q = select(KV.c.value).where(KV.c.key == CURSOR_KEY)
        if not self.db.is_sqlite:
            q = q.with_for_update()
        current = (await session.execute(q)).scalar_one()
        best = max(int(current or 0), seq)
        if best != current:
            await session.execute(update(KV).where(KV.c.key == CURSOR_KEY).values(value=best, updated_at=now))
        return best
