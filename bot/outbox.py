"""The outbox: every outbound message is a row with a unique idempotency key.

:class:`Outbox` writes rows inside the caller's transaction (so a handler's state
and what it sends commit together). :class:`OutboxPump` claims due rows under
per-destination rate limits (docs/wecom-protocol.md §4), hands them to the sender,
retries retryable failures with exponential backoff and moves a row to ``dead``
with the reason after ``outbox.max_attempts`` attempts or a permanent error.

Rate limits are counted in the database over the rows dispatched in the last
window, and claims are serialised (an advisory lock on PostgreSQL, the write lock
on SQLite), so several replicas share one budget per destination.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, text, update

from bot.clock import Clock
from bot.config import Config
from bot.events import Chat
from bot.metrics import Metrics
from bot.pump import Pump
from bot.senders.base import KINDS, Delivery, Sender, SendError
from bot.storage.db import Database, insert_ignoring_conflicts
from bot.storage.keys import bounded_key
from bot.storage.models import OutboxRow

log = logging.getLogger("siyu.outbox")
OUTBOX = OutboxRow.__table__

# (limit, window seconds) per rate-key family, from the protocol's published limits.
RATE_RULES: dict[str, tuple[tuple[int, float], ...]] = {
    "robot": ((20, 60.0),),                  # group robot: 20 messages/min per robot
    "user": ((30, 60.0), (1000, 3600.0)),    # app message: 30/min and 1000/h per member
    "appchat": ((200, 60.0),),               # appchat: ≤200/min
}

# Byte limits of one message's content; longer texts are split into several rows.
TEXT_LIMITS: dict[str, int] = {"text": 2048, "markdown": 4096}
MOMENT_CHAR_LIMIT = 2000
RESPONSE_URL_BYTES = 20480     # a 智能机器人 response_url takes one long markdown answer
REMIND_HEADER_BYTES = 256      # room for the "please forward to …" lines of remind_staff


def text_limit(kind: str, msgtype: str, destination: dict[str, Any]) -> int:
    """How many UTF-8 bytes one row of this delivery may carry (docs/wecom-protocol.md §3-4)."""
    if kind == "reply" and destination.get("response_url"):
        return RESPONSE_URL_BYTES
    if kind == "group_robot":
        return TEXT_LIMITS.get(msgtype, 2048)  # robot markdown: 4096
    if kind == "remind_staff":
        return TEXT_LIMITS["text"] - REMIND_HEADER_BYTES
    return TEXT_LIMITS["text"]  # message/send, appchat/send, welcome, mass send: 2048 (markdown too)
_CLAIM_LOCK = 7_264_002
KEY_COLUMN = 255        # outbox.key and outbox.source; longer values keep a prefix and the SHA-256 of the whole
RATE_KEY_COLUMN = 200   # outbox.rate_key


def split_text(text_: str, limit_bytes: int) -> list[str]:
    """Split at line breaks (or characters) so each part fits ``limit_bytes`` of UTF-8."""
    if len(text_.encode()) <= limit_bytes:
        return [text_]
    parts: list[str] = []
    current = ""
    for line in text_.splitlines(keepends=True):
        if len((current + line).encode()) <= limit_bytes:
            current += line
            continue
        if current:
            parts.append(current)
            current = ""
        while len(line.encode()) > limit_bytes:
            cut = len(line)
            while len(line[:cut].encode()) > limit_bytes:
                cut = max(1, cut * limit_bytes // len(line[:cut].encode()) - 1)
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts]


def robot_rate_key(robot_key: str, robot_name: str) -> str:
    if robot_key:
        return "robot:" + hashlib.sha256(robot_key.encode()).hexdigest()[:16]
    return f"robot:name:{robot_name}"


@dataclass(slots=True)
class Claimed:
    delivery: Delivery
    created_at: datetime


class Outbox:
    """Writes outbox rows. Use inside a session; nothing is sent until it commits."""

    def __init__(self, db: Database, clock: Clock, config: Config) -> None:
        self.db = db
        self.clock = clock
        self.config = config

    def rate_key(self, kind: str, destination: dict[str, Any]) -> str | None:
        chat = destination.get("chat") or {}
        to = destination.get("to") or []
        if kind == "reply":
            if destination.get("response_url"):
                return None
            if chat.get("type") == "single" or not chat.get("id"):
                return bounded_key(f"user:{(to or [chat.get('id', '')])[0]}", RATE_KEY_COLUMN)
            robot = destination.get("robot") or chat["id"]
            key = self.config.robot_key(robot)
            return robot_rate_key(key, robot) if key else bounded_key(f"appchat:{chat['id']}", RATE_KEY_COLUMN)
        if kind == "group_robot":
            robot = destination.get("robot") or chat.get("id", "")
            return robot_rate_key(self.config.robot_key(robot, named_only=bool(destination.get("named_only"))), robot)
        if kind in ("app_message", "remind_staff"):
            return bounded_key(f"user:{to[0]}", RATE_KEY_COLUMN) if to else None
        if kind == "appchat":
            return bounded_key(f"appchat:{chat.get('id', '')}", RATE_KEY_COLUMN)
        return None

    async def enqueue(self, session: Any, **delivery: Any) -> int:
        """Add delivery rows (arguments as :meth:`rows`); returns how many were new (0 when the key was queued)."""
        return await self.enqueue_many(session, [delivery])

    async def enqueue_many(self, session: Any, deliveries: Sequence[dict[str, Any]]) -> int:
        """Add the rows of several deliveries in a few statements; returns how many rows were new."""
        rows = [row for d in deliveries for row in self.rows(**d)]
        # Parameters apart from the statement, so its compiled form is cached across calls.
        stmt = insert_ignoring_conflicts(self.db.dialect, OUTBOX, ["key"]).returning(OUTBOX.c.id)
        new = 0
        for first in range(0, len(rows), 500):
            new += len((await session.execute(stmt, rows[first:first + 500])).all())
        return new

    def rows(
        self,
        *,
        key: str,
        kind: str,
        text: str = "",
        chat: Chat | dict[str, Any] | None = None,
        to: Sequence[str] = (),
        msgtype: str = "text",
        source: str = "",
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
        destination: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The outbox rows of one delivery: split to fit WeCom's limits, one per staff member for reminders."""
        if kind not in KINDS:
            raise ValueError(f"unknown delivery kind {kind!r}; one of {', '.join(KINDS)}")
        if not key:
            raise ValueError("an idempotency key is required")
        chat_d: dict[str, Any] = {}
        if isinstance(chat, Chat):
            chat_d = {"id": chat.id, "type": chat.type, "name": chat.name}
        elif chat:
            chat_d = dict(chat)
        dest = {**(destination or {}), "to": list(to)}
        if chat_d:
            dest["chat"] = chat_d
        if expires_at is not None:
            dest["expires_at"] = expires_at.isoformat()
        body = {**(payload or {}), "text": text, "msgtype": msgtype}
        if kind == "moment_task":
            texts = [text[:MOMENT_CHAR_LIMIT]]
        elif kind == "mark_tag":
            texts = [text]
        else:
            texts = split_text(text, text_limit(kind, msgtype, dest))
        recipients: list[list[str]] = [[u] for u in to] if kind in ("app_message", "remind_staff") and len(to) > 1 \
            else [list(to)]
        now = self.clock.now()
        rows = []
        for rcpt in recipients:
            for n, part in enumerate(texts, start=1):
                k = key
                if len(recipients) > 1:
                    k += f"@{rcpt[0]}"
                if len(texts) > 1:
                    k += f"#{n}"
                d = {**dest, "to": rcpt}
                if len(texts) > 1:
                    d["part"] = [n, len(texts)]
                rows.append({
                    "key": bounded_key(k, KEY_COLUMN), "kind": kind, "chat_id": chat_d.get("id", ""), "destination": d,
                    "payload": {**body, "text": part}, "rate_key": self.rate_key(kind, d), "status": "pending",
                    "attempts": 0, "source": bounded_key(source, KEY_COLUMN), "created_at": now,
                    "next_attempt_at": not_before or now,
                })
        return rows

    async def claim_passive(self, source: str, max_bytes: int = RESPONSE_URL_BYTES,
                            separator: str = "\n\n") -> list[dict[str, Any]]:
        """Take the pending replies to one event for a synchronous (passive) answer.

        Replies are taken in order while their texts, joined by ``separator``, fit
        ``max_bytes`` (a 智能机器人 stream answer holds 20,480); the rest stay
        queued and go out through the sender.
        """
        now = self.clock.now()
        async with self.db.session() as s:
            q = (select(OUTBOX.c.id, OUTBOX.c.payload)
                 .where(and_(OUTBOX.c.source == bounded_key(source, KEY_COLUMN), OUTBOX.c.kind == "reply",
                             OUTBOX.c.status == "pending"))
                 .order_by(OUTBOX.c.id))
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            take, size = [], -len(separator.encode())
            for row in (await s.execute(q)).all():
                size += len(separator.encode()) + len(str(row.payload.get("text", "")).encode())
                if size > max_bytes:
                    break
                take.append(row.id)
            if not take:
                return []
            rows = (await s.execute(
                update(OUTBOX)
                .where(and_(OUTBOX.c.id.in_(take), OUTBOX.c.status == "pending"))
                .values(status="sent", sent_at=now, dispatched_at=now, attempts=OUTBOX.c.attempts + 1,
                        result={"via": "passive"})
                .returning(OUTBOX.c.id, OUTBOX.c.payload, OUTBOX.c.key)
            )).all()
        return [dict(r.payload) | {"key": r.key, "id": r.id} for r in sorted(rows, key=lambda r: r.id)]

    async def counts(self, statuses: Sequence[str] = ()) -> dict[str, int]:
        """Rows per status (only ``statuses`` when given: an index range each, not every sent row)."""
        stmt = select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status)
        if statuses:
            stmt = stmt.where(OUTBOX.c.status.in_(statuses))
        async with self.db.read() as s:
            rows = (await s.execute(stmt)).all()
        return {status: n for status, n in rows}

    async def dead(self, limit: int = 20) -> list[Any]:
        """The latest deliveries given up on, with why (``last_error``): the console's overview."""
        async with self.db.read() as s:
            return list((await s.execute(
                select(OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.chat_id, OUTBOX.c.key, OUTBOX.c.attempts,
                       OUTBOX.c.created_at, OUTBOX.c.last_error)
                .where(OUTBOX.c.status == "dead").order_by(OUTBOX.c.id.desc()).limit(limit))).all())


class OutboxPump(Pump):
    name = "outbox"

    def __init__(self, db: Database, clock: Clock, sender: Sender, config: Config, metrics: Metrics,
                 replica: str) -> None:
        super().__init__()
        self.db = db
        self.clock = clock
        self.sender = sender
        self.cfg = config.outbox
        self.metrics = metrics
        self.replica = replica
        self._sem = asyncio.Semaphore(self.cfg.concurrency)
        self._outcomes: list[tuple[int, dict[str, Any]]] = []  # (row id, values) of the batch in hand

    async def drain_once(self) -> int:
        """Claim one batch of due deliveries, send them, then record every outcome in one transaction."""
        claimed = await self.claim(self.cfg.batch_size)
        if not claimed:
            return 0
        try:
            await asyncio.gather(*(self._deliver_limited(c) for c in claimed))
        finally:
            await self._record_outcomes()
        return len(claimed)

    async def _deliver_limited(self, c: Claimed) -> None:
        async with self._sem:
            await self._deliver(c)

    async def claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        async with self.db.session() as s:
            if not self.db.is_sqlite:
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            due = or_(
                and_(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at <= now),
                and_(OUTBOX.c.status == "sending", OUTBOX.c.locked_until < now),
            )
            q = (select(OUTBOX.c.id, OUTBOX.c.key, OUTBOX.c.kind, OUTBOX.c.chat_id, OUTBOX.c.destination,
                        OUTBOX.c.payload, OUTBOX.c.rate_key, OUTBOX.c.attempts, OUTBOX.c.created_at)
                 .where(due).order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(limit * 4))
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            candidates = (await s.execute(q)).all()
            if not candidates:
                return []
            budget = await self._budgets(s, {c.rate_key for c in candidates if c.rate_key}, now)
            take: list[Any] = []
            deferred: dict[datetime, list[int]] = defaultdict(list)
            for c in candidates:
                if len(take) >= limit:
                    break
                if c.rate_key:
                    ok, free_at = budget.try_take(c.rate_key)
                    if not ok:
                        deferred[free_at].append(c.id)
                        continue
                take.append(c)
            for free_at, ids in deferred.items():
                await s.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(next_attempt_at=free_at))
            if take:
                await s.execute(
                    update(OUTBOX).where(OUTBOX.c.id.in_([c.id for c in take]))
                    .values(status="sending", locked_by=self.replica, dispatched_at=now,
                            locked_until=now + timedelta(seconds=self.cfg.lease_s),
                            attempts=OUTBOX.c.attempts + 1))
        return [Claimed(Delivery(id=c.id, key=c.key, kind=c.kind, chat_id=c.chat_id,
                                 destination=dict(c.destination), payload=dict(c.payload),
                                 attempts=c.attempts + 1), c.created_at) for c in take]

    async def _budgets(self, s: Any, keys: set[str], now: datetime) -> _Budget:
        budget = _Budget(now)
        if not keys:
            return budget
        longest = max(w for rules in RATE_RULES.values() for _, w in rules)
        rows = (await s.execute(
            select(OUTBOX.c.rate_key, OUTBOX.c.dispatched_at)
            .where(and_(OUTBOX.c.rate_key.in_(sorted(keys)),
                        OUTBOX.c.dispatched_at > now - timedelta(seconds=longest)))
        )).all()
        for key, at in rows:
            budget.history[key].append(at)
        return budget

    async def _deliver(self, c: Claimed) -> None:
        d = c.delivery
        now = self.clock.now()
        expires = d.destination.get("expires_at")
        if expires and datetime.fromisoformat(expires) < now:
            await self._finish(d, "dead", error="expired before it could be sent")
            self.metrics.sent.labels(d.kind, "expired").inc()
            return
        started = time.perf_counter()
        try:
            result = await self.sender.send(d)
        except SendError as exc:
            self.metrics.send_latency.labels(d.kind).observe(time.perf_counter() - started)
            await self._failed(d, exc)
            return
        except Exception as exc:  # a sender bug must not lose the row
            log.exception("sender crashed on outbox row %s", d.id)
            await self._failed(d, SendError(f"sender error: {exc!r}", retryable=True))
            return
        self.metrics.send_latency.labels(d.kind).observe(time.perf_counter() - started)
        self.metrics.queue_latency.labels(d.kind).observe(max(0.0, (self.clock.now() - c.created_at).total_seconds()))
        self.metrics.sent.labels(d.kind, "sent").inc()
        await self._finish(d, "sent", result=result.info)

    async def _failed(self, d: Delivery, exc: SendError) -> None:
        reason = exc.reason if exc.errcode is None else f"errcode {exc.errcode}: {exc.reason}"
        if exc.retryable and d.attempts < self.cfg.max_attempts:
            delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (d.attempts - 1))
            delay *= random.uniform(0.8, 1.2)
            if exc.retry_after:
                delay = max(delay, exc.retry_after)
            log.info("outbox row %s (%s) attempt %d failed, retry in %.1fs: %s", d.id, d.kind, d.attempts,
                     delay, reason)
            self.metrics.sent.labels(d.kind, "retry").inc()
            await self._finish(d, "pending", error=reason, next_at=self.clock.now() + timedelta(seconds=delay))
            return
        why = reason if not exc.retryable else f"gave up after {d.attempts} attempts: {reason}"
        log.warning("outbox row %s (%s) is dead: %s", d.id, d.kind, why)
        self.metrics.sent.labels(d.kind, "dead").inc()
        await self._finish(d, "dead", error=why)

    async def _finish(self, d: Delivery, status: str, *, error: str | None = None,
                      result: dict[str, Any] | None = None, next_at: datetime | None = None) -> None:
        values: dict[str, Any] = {"status": status, "locked_by": None, "locked_until": None}
        if status == "sent":
            values.update(sent_at=self.clock.now(), result=result or {}, last_error=None)
        if error is not None:
            values["last_error"] = error[:2000]
        if next_at is not None:
            values["next_attempt_at"] = next_at
        self._outcomes.append((d.id, values))

    async def _record_outcomes(self) -> None:
        """The batch's outcomes in one transaction (one commit for the batch, not one per delivery); a
        crash before it leaves the rows "sending", retried after their lease (WeCom's duplicate check
        shows a repeated message/send once)."""
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row_id, values in outcomes:  # rows with the same columns to set: one executemany
            shapes[tuple(sorted(values))].append({"row_id": row_id, **{f"v_{k}": v for k, v in values.items()}})
        async with self.db.session() as s:
            for columns, params in shapes.items():
                stmt = update(OUTBOX).where(and_(OUTBOX.c.id == bindparam("row_id"),
                                                 OUTBOX.c.locked_by == self.replica))
                await s.execute(stmt.values({c: bindparam(f"v_{c}") for c in columns}), params)

    async def release(self) -> int:
        async with self.db.session() as s:
            res = await s.execute(
                update(OUTBOX).where(and_(OUTBOX.c.status == "sending", OUTBOX.c.locked_by == self.replica))
                .values(status="pending", locked_by=None, locked_until=None))
        return res.rowcount or 0


class _Budget:
    """Sliding windows per rate key, seeded from the rows dispatched recently."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.history: dict[str, list[datetime]] = defaultdict(list)

    def try_take(self, key: str) -> tuple[bool, datetime]:
        family = key.split(":", 1)[0]
        rules = RATE_RULES.get(family, ())
        free_at = self.now
        for limit, window in rules:
            start = self.now - timedelta(seconds=window)
            recent = sorted(t for t in self.history[key] if t > start)
            if len(recent) >= limit:
                # the slot frees when the oldest dispatch that fills the window leaves it
                oldest = recent[len(recent) - limit]
                free_at = max(free_at, oldest + timedelta(seconds=window, milliseconds=1))
        if free_at > self.now:
            return False, free_at
        self.history[key].append(self.now)
        return True, self.now
