"""The durable inbox: channels commit events here before answering 200; workers process them.

- :class:`InboxWriter` batches concurrent inserts into one transaction (group
  commit) and tells each caller whether its event was new or a duplicate.
- :class:`InboxPump` claims pending rows (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, the write lock on SQLite), dispatches their events and marks them
  done. A row whose worker died is claimable again once its lease runs out.
  Events of one chat are handled in order within a batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update

from bot.clock import Clock
from bot.config import InboxConfig
from bot.events import Event, PayloadError, chat_key_of, events_from_payload
from bot.metrics import Metrics
from bot.pump import Pump
from bot.storage.db import Database, insert_ignoring_conflicts
from bot.storage.keys import bounded_key
from bot.storage.models import InboxRow

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher, Outcome

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
        self.max_attempts = 5

    async def drain_once(self) -> int:
        rows = await self.claim(self.cfg.batch_size)
        if rows:
            await self.process(rows)
        return len(rows)

    async def claim(self, limit: int) -> list[Any]:
        now = self.clock.now()
        # A pending row's locked_until is its retry time after a transient failure.
        claimable = or_(and_(INBOX.c.status == "pending",
                             or_(INBOX.c.locked_until.is_(None), INBOX.c.locked_until <= now)),
                        and_(INBOX.c.status == "processing", INBOX.c.locked_until < now))
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
            rows = (await conn.execute(stmt)).all()
        return sorted(rows, key=lambda r: r.id)

    async def process(self, rows: list[Any]) -> None:
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            groups[row.chat_key or f"row:{row.id}"].append(row)
        sem = asyncio.Semaphore(self.cfg.workers)

        async def run_group(group: list[Any]) -> list[tuple[Any, str, str | None]]:
            async with sem:
                return [await self._process_one(row) for row in group]

        results = await asyncio.gather(*(run_group(g) for g in groups.values()))
        now = self.clock.now()
        # One UPDATE per outcome, not per row: the write lock is held for as short as possible.
        by_outcome: dict[tuple[str, str | None, int], list[int]] = defaultdict(list)
        for group in results:
            for row, status, error in group:
                retry_in = min(60, 2 ** row.attempts) if status == "pending" else 0
                by_outcome[(status, error, retry_in)].append(row.id)
        async with self.db.connection() as conn:
            for (status, error, retry_in), ids in by_outcome.items():
                values: dict[str, Any] = {"status": status, "locked_by": None, "locked_until": None,
                                          "error": error}
                if status in ("done", "failed"):
                    values["processed_at"] = now
                if status == "pending":
                    values["locked_until"] = now + timedelta(seconds=retry_in)  # retry after a backoff
                await conn.execute(update(INBOX).where(and_(INBOX.c.id.in_(ids), INBOX.c.locked_by == self.replica))
                                   .values(**values))
        for group in results:
            for row, status, _ in group:
                self.metrics.processed.labels(status).inc()
                if status != "pending":
                    self._notify(row.dedup_key, status == "done")

    async def _process_one(self, row: Any) -> tuple[Any, str, str | None]:
        payload = dict(row.payload)
        try:
            for enrich in self.enrichers:
                changed = await enrich(payload)
                if changed is not None:
                    payload = changed
                    async with self.db.session() as s:
                        await s.execute(update(INBOX).where(INBOX.c.id == row.id).values(payload=payload))
            events = events_from_payload(payload, row.dedup_key, row.received_at, self.staff_ids)
        except PayloadError as exc:
            log.warning("inbox row %s has an undecodable payload: %s", row.id, exc)
            return row, "failed", f"payload: {exc}"
        except Exception as exc:
            log.exception("enriching inbox row %s failed", row.id)
            return row, self._retry_or_fail(row), f"enrich: {exc!r}"
        outcomes: list[Outcome] = []
        for event in events:
            outcomes.append(await self.dispatcher.dispatch(event))
        retry = [o for o in outcomes if o.retry]
        errors = "; ".join(e for o in outcomes for e in o.errors) or None
        if retry:
            return row, self._retry_or_fail(row), errors
        return row, "done", errors

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
