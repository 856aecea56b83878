"""The durable inbox: channels commit events here before answering 200; workers process them.

- :class:`InboxWriter` batches concurrent inserts into one transaction (group
  commit) and tells each caller whether its event was new or a duplicate.
- :class:`InboxPump` claims pending rows (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, the write lock on SQLite), dispatches their events and marks them
  done, a batch in one transaction (:meth:`InboxPump.process_batch`). A row whose
  worker died is claimable again once its lease runs out. Events of one chat are
  handled in order, across replicas too: a chat with a row in processing is not claimed again until that
  row is done (or its lease ran out), and on PostgreSQL replicas claim one after another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, text, update

from bot.clock import Clock
from bot.config import InboxConfig
from bot.dispatcher import AfterCommit, BatchAborted, Receipts
from bot.events import Event, PayloadError, chat_key_of, events_from_payload
from bot.metrics import Metrics
from bot.pump import Pump
from bot.storage.db import Database, insert_ignoring_conflicts
from bot.storage.keys import bounded_key
from bot.storage.models import InboxRow

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

log = logging.getLogger("siyu.inbox")
INBOX = InboxRow.__table__


@dataclass(slots=True)
class Incoming:
    dedup_key: str
    channel: str
    kind: str
    payload: dict[str, Any]
    raw: str | None = None
    chat_key: str = ""


_STOP = object()


class InboxWriter:
    """Group commit: one transaction for every event that arrived while the last one committed."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 256,
                 on_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        if self._task is not None:
            await self._queue.put(_STOP)
            await self._task
            self._task = None

    async def put(self, item: Incoming) -> bool:
        """Commit one event; True if it was new, False if its key was already stored."""
        if self._task is None:
            return (await self.insert([item]))[0]
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop_after = False
            while len(batch) < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is _STOP:
                    stop_after = True
                    break
                batch.append(nxt)
            await self._commit_batch(batch)
            if stop_after:
                return

    async def _commit_batch(self, batch: list[tuple[Incoming, asyncio.Future[bool]]]) -> None:
        """One transaction for the batch; when it fails, each event again in its own, so an event the
        database cannot store fails alone and its neighbours are stored."""
        try:
            results: list[bool | BaseException] = list(await self.insert([item for item, _ in batch]))
        except Exception as exc:
            if len(batch) == 1:
                log.exception("inbox insert failed: %s", exc)
                results = [exc]
            else:
                log.warning("inbox insert of %d events failed (%r); storing each on its own", len(batch), exc)
                results = []
                for item, _ in batch:
                    try:
                        results.append((await self.insert([item]))[0])
                    except Exception as one:
                        log.exception("inbox insert failed for %s", item.dedup_key)
                        results.append(one)
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def insert(self, items: list[Incoming]) -> list[bool]:
        # A Core connection, not an ORM session: this is the hot path of every callback, and it goes
        # ahead of the handlers' transactions waiting for SQLite's one writer.
        async with self.db.connection(urgent=True) as conn:
            results = await insert_incoming(conn, self.db.dialect, self.clock.now(), items)
        if any(results) and self.on_commit is not None:
            self.on_commit()
        return results


_INSERTS: dict[str, Any] = {}
DEDUP_KEY_LIMIT = 255   # inbox.dedup_key; a longer key keeps a prefix and the SHA-256 of the whole
CHAT_KEY_LIMIT = 160    # inbox.chat_key: events of one chat are processed in order by it
_CLAIM_LOCK = 7_264_003  # pg_advisory_xact_lock key: one replica claims inbox rows at a time


def _insert_stmt(dialect: str) -> Any:
    """One statement per dialect, compiled once and reused with many parameter sets."""
    if dialect not in _INSERTS:
        _INSERTS[dialect] = insert_ignoring_conflicts(dialect, INBOX, ["dedup_key"]).returning(
            INBOX.c.dedup_key)
    return _INSERTS[dialect]


async def insert_incoming(conn: Any, dialect: str, now: Any, items: list[Incoming]) -> list[bool]:
    """Insert inbox rows in the caller's transaction, skipping stored keys; True for each new item."""
    first_index: dict[str, int] = {}
    rows = []
    keys = [bounded_key(item.dedup_key, DEDUP_KEY_LIMIT) for item in items]
    for i, (item, key) in enumerate(zip(items, keys, strict=True)):
        if key in first_index:
            continue
        first_index[key] = i
        rows.append({
            "dedup_key": key, "channel": item.channel, "kind": item.kind,
            "chat_key": bounded_key(item.chat_key, CHAT_KEY_LIMIT), "payload": item.payload, "raw": item.raw,
            "received_at": now, "status": "pending", "attempts": 0,
        })
    if not rows:
        return []
    result = await conn.execute(_insert_stmt(dialect), rows)
    inserted = {r[0] for r in result.all()}
    return [key in inserted and first_index[key] == i for i, key in enumerate(keys)]


Enricher = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass(slots=True)
class _Prepared:
    """A claimed row made ready for its batch: its events, or why it cannot be dispatched."""

    row: Any
    events: list[Event] = field(default_factory=list)
    enriched: dict[str, Any] | None = None   # the payload the enrichers changed, written in the batch
    status: str | None = None                # set when the row is settled without dispatching
    error: str | None = None
    prepared: dict[str, dict[str, Any]] = field(default_factory=dict)  # event key → Dispatcher.prepare


class InboxPump(Pump):
    """Claims pending inbox rows and dispatches their events."""

    name = "inbox"

    def __init__(self, db: Database, clock: Clock, dispatcher: Dispatcher, cfg: InboxConfig, metrics: Metrics,
                 replica: str, staff_ids: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.db = db
        self.clock = clock
        self.dispatcher = dispatcher
        self.cfg = cfg
        self.metrics = metrics
        self.replica = replica
        self.staff_ids = staff_ids
        self.enrichers: list[Enricher] = []
        self._waiters: dict[str, list[asyncio.Future[bool]]] = defaultdict(list)
        self.max_attempts = cfg.max_attempts

    async def drain_once(self) -> int:
        rows = await self.claim(self.cfg.batch_size)
        if rows:
            await self.process(rows)
        return len(rows)

    async def claim(self, limit: int) -> list[Any]:
        """Claim up to ``limit`` rows; each claim counts as an attempt when it is made. A row whose lease ran
        out after its last attempt (its processing crashed or hung the process each time) is ``failed``
        here instead of being claimed again: no crash loop, and its chat's later events go on."""
        now = self.clock.now()
        expired = and_(INBOX.c.status == "processing", INBOX.c.locked_until < now)
        # A pending row's locked_until is its retry time after a transient failure.
        claimable = or_(and_(INBOX.c.status == "pending",
                             or_(INBOX.c.locked_until.is_(None), INBOX.c.locked_until <= now)),
                        and_(expired, INBOX.c.attempts < self.max_attempts))
        # A chat another claim is still processing waits for it (per-chat order across replicas and workers).
        busy = INBOX.alias("busy")
        in_hand = select(busy.c.id).where(and_(busy.c.status == "processing", busy.c.locked_until >= now,
                                               busy.c.chat_key == INBOX.c.chat_key)).exists()
        claimable = and_(claimable, or_(INBOX.c.chat_key == "", ~in_hand))
        pick = select(INBOX.c.id).where(claimable).order_by(INBOX.c.id).limit(limit)
        if not self.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            update(INBOX)
            .where(INBOX.c.id.in_(pick.scalar_subquery()))
            .values(status="processing", locked_by=self.replica,
                    locked_until=now + timedelta(seconds=self.cfg.lease_s), attempts=INBOX.c.attempts + 1)
            .returning(INBOX.c.id, INBOX.c.dedup_key, INBOX.c.payload, INBOX.c.received_at,
                       INBOX.c.chat_key, INBOX.c.attempts)
        )
        async with self.db.connection() as conn:
            if not self.db.is_sqlite:  # claims one after another: each sees the chats the one before took
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            given_up = (await conn.execute(
                update(INBOX).where(and_(expired, INBOX.c.attempts >= self.max_attempts))
                .values(status="failed", locked_by=None, locked_until=None, processed_at=now,
                        error=f"claimed {self.max_attempts} times and never finished (the process crashed "
                              "or hung while handling it)")
                .returning(INBOX.c.id, INBOX.c.dedup_key))).all()
            rows = (await conn.execute(stmt)).all()
        for r in given_up:
            log.error("inbox row %s failed: claimed %d times, never finished", r.id, self.max_attempts)
            self.metrics.processed.labels("failed").inc()
            self._notify(r.dedup_key, False)
        return sorted(rows, key=lambda r: r.id)

    async def process(self, rows: list[Any]) -> None:
        """Dispatch claimed rows: enrich them (network calls, outside any transaction), split them into
        lanes by chat — one lane on SQLite (one writer), up to ``inbox.workers`` on PostgreSQL — and
        process each lane as one batch (:meth:`process_batch`)."""
        sem = asyncio.Semaphore(self.cfg.workers)

        async def prepare(row: Any) -> _Prepared:
            async with sem:
                return await self._prepare(row)

        prepared = await asyncio.gather(*(prepare(row) for row in rows))
        groups: dict[str, list[_Prepared]] = defaultdict(list)
        for item in prepared:
            groups[item.row.chat_key or f"row:{item.row.id}"].append(item)
        n_lanes = 1 if self.db.is_sqlite else max(1, min(self.cfg.workers, len(groups)))
        lanes: list[list[_Prepared]] = [[] for _ in range(n_lanes)]
        for group in sorted(groups.values(), key=len, reverse=True):  # a chat's rows stay together, in order
            min(lanes, key=len).extend(group)
        for lane in lanes:
            lane.sort(key=lambda item: item.row.id)
        await asyncio.gather(*(self.process_batch(lane) for lane in lanes if lane))

    async def process_batch(self, items: list[_Prepared]) -> None:
        """Process a batch of claimed inbox rows in ONE write transaction (group commit).

        The transaction's shape, optimistic (``inbox.optimistic``, the default)::

            BEGIN                                  (BEGIN IMMEDIATE on SQLite)
              SELECT the receipts (event key, handler) stored for the batch's events  -- present: skipped
              for each chat, its rows in order; for each event of a row:
                SAVEPOINT
                  each matching handler: its state changes, outbox rows, emitted events, timers
                RELEASE SAVEPOINT                  (a handler raised: ROLLBACK TO SAVEPOINT, and the event
                                                    runs again carefully, as below)
              INSERT the batch's new receipts      (a few multi-row statements)
              UPDATE the rows: done / pending with a backoff (a transient failure) / failed; enriched payloads
            COMMIT                                 (one fsync for the whole batch)

        Carefully (``inbox.optimistic = false``, and an event whose handler raised), each handler has its own
        savepoint and receipt::

                SAVEPOINT
                  INSERT receipt (event key, handler) ON CONFLICT DO NOTHING  -- present: skip the handler
                  the handler
                RELEASE SAVEPOINT                  (ROLLBACK TO SAVEPOINT when it raised: only that handler's
                                                    effects are undone; it is retried alone, see Dispatcher)

        Only after the commit: after-commit hooks and pump kicks, the failed handlers' rollback hooks and the
        error handler, the metrics, and the callers waiting for a row. A reply therefore never leaves before
        the state that caused it is durable, and a crash before the commit loses nothing but the batch's work,
        which the next claim redoes (receipts keep handlers that did commit from running twice).

        On SQLite the transaction holds the one write lock, so it commits early (and goes on in a new one)
        when a callback's inbox commit is waiting for it, or after ``inbox.batch_max_s``.

        When the transaction itself fails (the commit, a lost connection, a savepoint that could not roll
        back), nothing of it stays and each of its rows is processed again in a transaction of its own; a
        row that fails alone is set back to pending (or failed after its attempts).
        """
        rest = list(items)
        careful = not self.cfg.optimistic
        while rest:
            after = AfterCommit()
            results: list[tuple[Any, str, str | None]] = []
            opened = time.monotonic()
            try:
                async with self.db.session() as session:
                    receipts = None if careful else await Receipts.load(
                        session, [e.key for item in rest for e in item.events], self.clock.now())
                    for item in rest:
                        results.append(await self._dispatch_row(session, item, after, receipts))
                        if self._yield_now(opened):
                            break
                    if receipts is not None:
                        await receipts.write(session, self.db.dialect)
                    await self._mark(session, results)
            except BatchAborted as exc:  # a receipt stored meanwhile: nothing stays, the rows run again carefully
                log.info("a batch of %d inbox rows runs again with a savepoint per handler: %s", len(rest), exc)
                careful = True
                continue
            except Exception as exc:
                taken = rest[:len(results) + 1]
                rest = rest[len(taken):]
                await self._one_by_one(taken, exc)
                continue
            rest = rest[len(results):]
            careful = not self.cfg.optimistic  # the next part of the batch may go fast again
            await self._settled(results, after)

    def _yield_now(self, opened: float) -> bool:
        """Commit the batch so far: a callback's inbox commit waits behind it (SQLite), or it ran long."""
        held = time.monotonic() - opened
        return held >= self.cfg.batch_max_s or (held >= 0.02 and self.db.urgent_writer_waiting())

    async def _one_by_one(self, items: list[_Prepared], exc: Exception) -> None:
        """A batch transaction failed as a whole: each of its rows again in a transaction of its own."""
        if len(items) > 1:
            log.warning("a batch of %d inbox rows failed (%s: %s); processing them one by one",
                        len(items), type(exc).__name__, exc)
            for item in items:
                await self.process_batch([item])
            return
        row = items[0].row
        log.error("inbox row %s failed outside its handlers: %s: %s", row.id, type(exc).__name__, exc, exc_info=exc)
        results = [(row, self._retry_or_fail(row), f"batch: {exc!r}"[:500])]
        async with self.db.session() as session:
            await self._mark(session, results)
        await self._settled(results, AfterCommit())

    async def _settled(self, results: list[tuple[Any, str, str | None]], after: AfterCommit) -> None:
        """After a commit: the hooks, the metrics, and whoever waits for a row."""
        await self.dispatcher.finish(after)
        for row, status, _ in results:
            self.metrics.processed.labels(status).inc()
            if status != "pending":
                self._notify(row.dedup_key, status == "done")

    async def _prepare(self, row: Any) -> _Prepared:
        """Run the enrichers, decode the row's events and run their handlers' ``prepare`` (the CPU-heavy work
        that needs no transaction: a long message's scan and matching, off the event loop) — while no
        transaction is open, so the batch's transaction never waits for them."""
        payload = dict(row.payload)
        item = _Prepared(row)
        try:
            for enrich in self.enrichers:
                changed = await enrich(payload)
                if changed is not None:
                    payload = item.enriched = changed
            item.events = events_from_payload(payload, row.dedup_key, row.received_at, self.staff_ids)
        except PayloadError as exc:
            log.warning("inbox row %s has an undecodable payload: %s", row.id, exc)
            item.status, item.error = "failed", f"payload: {exc}"
        except Exception as exc:
            log.exception("enriching inbox row %s failed", row.id)
            item.status, item.error = self._retry_or_fail(row), f"enrich: {exc!r}"
        for event in item.events if item.status is None else ():
            item.prepared[event.key] = await self.dispatcher.prepare(event)
        return item

    async def _dispatch_row(self, session: Any, item: _Prepared, after: AfterCommit,
                            receipts: Receipts | None = None) -> tuple[Any, str, str | None]:
        row = item.row
        if item.enriched is not None:
            await session.execute(update(INBOX).where(INBOX.c.id == row.id).values(payload=item.enriched))
        if item.status is not None:
            return row, item.status, item.error
        outcomes = [await self.dispatcher.dispatch_in(session, event, after, item.prepared.get(event.key), receipts)
                    for event in item.events]
        errors = "; ".join(e for o in outcomes for e in o.errors) or None
        if any(o.retry for o in outcomes):
            return row, self._retry_or_fail(row), errors
        return row, "done", errors

    async def _mark(self, session: Any, results: list[tuple[Any, str, str | None]]) -> None:
        """Set the rows' outcome, one UPDATE per distinct outcome (not one per row)."""
        now = self.clock.now()
        by_outcome: dict[tuple[str, str | None, int], list[int]] = defaultdict(list)
        for row, status, error in results:
            retry_in = min(60, 2 ** row.attempts) if status == "pending" else 0
            by_outcome[(status, error, retry_in)].append(row.id)
        for (status, error, retry_in), ids in by_outcome.items():
            values: dict[str, Any] = {"status": status, "locked_by": None, "locked_until": None, "error": error}
            if status in ("done", "failed"):
                values["processed_at"] = now
            if status == "pending":
                values["locked_until"] = now + timedelta(seconds=retry_in)  # retry after a backoff
            await session.execute(update(INBOX).where(and_(INBOX.c.id.in_(ids), INBOX.c.locked_by == self.replica))
                                  .values(**values))

    def _retry_or_fail(self, row: Any) -> str:
        return "failed" if row.attempts >= self.max_attempts else "pending"

    async def release(self) -> int:
        """Give back rows this replica claimed but did not finish (on shutdown)."""
        async with self.db.session() as s:
            res = await s.execute(
                update(INBOX).where(and_(INBOX.c.status == "processing", INBOX.c.locked_by == self.replica))
                .values(status="pending", locked_by=None, locked_until=None,
                        attempts=INBOX.c.attempts - 1))
        return res.rowcount or 0

    def _notify(self, key: str, ok: bool) -> None:
        for fut in self._waiters.pop(key, []):
            if not fut.done():
                fut.set_result(ok)

    def expect(self, key: str) -> asyncio.Future[bool]:
        """A future resolved when this replica has processed ``key`` (register before committing it)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[key].append(fut)
        return fut

    async def wait_processed(self, key: str, fut: asyncio.Future[bool], within_s: float) -> bool:
        """Wait for a future from :meth:`expect`; False on timeout."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), within_s)
        except TimeoutError:
            return False
        finally:
            self.forget(key, fut)

    def forget(self, key: str, fut: asyncio.Future[bool]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                self._waiters.pop(key, None)

    async def emit(self, session: Any, event: Event) -> bool:
        """Queue an internal event durably, inside the caller's transaction."""
        payload = event.to_payload()
        (new,) = await insert_incoming(session, self.db.dialect, self.clock.now(), [
            Incoming(dedup_key=event.key, channel=event.channel, kind=event.type, payload=payload,
                     chat_key=chat_key_of(payload))])
        return new
