"""Async engine and sessions for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``:
a deferred transaction that later writes can fail at once with SQLITE_BUSY when
another connection committed in between, which busy_timeout does not cover.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from bot.storage.onehop import use_one_hop

_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("siyu_sqlite_writing", default=False)

JSONType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on both databases.

    SQLite keeps no zone, so values are stored as naive UTC in a fixed-width
    ISO format that sorts and compares correctly as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use clock.now() or attach a tzinfo")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class WriteGate:
    """The one write transaction of this process at a time (SQLite): first come, first served, except
    that an urgent writer goes ahead of the normal ones waiting. The inbox writer is one task, so it
    waits at most one transaction and the others are never starved (it and they take turns)."""

    def __init__(self) -> None:
        self._held = False
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._normal: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in (*self._urgent, *self._normal) if not f.done())

    @property
    def urgent_waiting(self) -> bool:
        return any(not f.done() for f in self._urgent)

    async def acquire(self, urgent: bool = False) -> None:
        if not self._held:  # free: release() hands a held gate straight to a waiter, so none is waiting
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(fut)
        try:
            await fut  # release() hands the gate over by setting the result; _held stays True
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over, then cancelled before it ran: pass it on
            elif fut in queue:
                queue.remove(fut)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._held = False


class Database:
    """Owns the engine and hands out sessions; ``dialect`` is "sqlite" or "postgresql"."""

    def __init__(self, url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL", echo: bool = False):
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1]
            if path == ":memory:":
                kwargs["poolclass"] = StaticPool
                kwargs["connect_args"] = {"check_same_thread": False}
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                kwargs["pool_size"] = pool_size
                kwargs["max_overflow"] = pool_size
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        self.read_engine = self.engine
        if self.dialect == "sqlite":
            use_one_hop(self.engine)
            _configure_sqlite(self.engine, sqlite_synchronous, immediate=True)
            if ":memory:" not in url:
                # Reads never take the write lock, so a read while a write transaction is open cannot deadlock.
                self.read_engine = create_async_engine(url, **kwargs)
                use_one_hop(self.read_engine)
                _configure_sqlite(self.read_engine, sqlite_synchronous, immediate=False)
        # SQLite has one writer at a time. Queue writers of this process here instead of letting them
        # spin in SQLite's busy handler, whose sleeps grow to 100 ms.
        self._write_lock: WriteGate | None = WriteGate() if self.dialect == "sqlite" else None
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def urgent_writer_waiting(self) -> bool:
        """An urgent writer (the inbox commit a callback's 200 waits for) waits for this process's write
        transaction (SQLite); a long transaction should commit what it has and let it in."""
        return self._write_lock is not None and self._write_lock.urgent_waiting

    @contextlib.asynccontextmanager
    async def _writing(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
            return
        if _WRITING.get():
            raise RuntimeError("a write transaction is already open here; use the session you have (ctx.session) "
                               "— a second one would wait for the first forever")
        await self._write_lock.acquire(urgent)
        token = _WRITING.set(True)
        try:
            yield
        finally:
            _WRITING.reset(token)
            self._write_lock.release()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A write session in one transaction: committed on success, rolled back on error."""
        async with self._writing(), self.sessionmaker() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def connection(self, *, urgent: bool = False) -> AsyncIterator[Any]:
        """A Core connection in one write transaction, for hot paths that need no ORM. ``urgent`` (the
        inbox commit a callback's 200 waits for): on SQLite it goes ahead of the writers already waiting."""
        async with self._writing(urgent), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; on SQLite it never waits for (or blocks) a writer."""
        async with self.read_sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _configure_sqlite(engine: AsyncEngine, synchronous: str, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so BEGIN IMMEDIATE and SAVEPOINT work.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    if immediate:
        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignoring_conflicts(dialect: str, table: Any, conflict_columns: list[str]) -> Any:
    """``INSERT … ON CONFLICT (cols) DO NOTHING`` for the running database."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=conflict_columns)


def insert_adding(dialect: str, table: Any, conflict_columns: list[str], values: dict[str, Any],
                  counter: str, by: int = 1) -> Any:
    """``INSERT … ON CONFLICT (cols) DO UPDATE SET counter = counter + by``: a row counting something,
    created on first use (``values`` hold the key columns; ``counter`` starts at ``by``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    return stmt.values(**values, **{counter: by}).on_conflict_do_update(
        index_elements=conflict_columns, set_={counter: table.c[counter] + by})
