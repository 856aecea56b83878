"""SQLite statements in one trip to the driver's thread.

aiosqlite runs every call on the SQLite connection in a thread of its own, and SQLAlchemy's adapter
makes three or four such calls per statement: open a cursor, execute, fetch the rows, close the
cursor. Each call is a hand-off between the event loop and that thread (a queue put, a thread wake-up,
a future resolved on the loop) — on a busy machine, a context switch each, and the bulk of what an
inbox batch costs. :class:`OneHopCursor` does the four in one call; the statements, their results and
their errors are the same.
"""

from __future__ import annotations

import collections
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import EMPTY_DICT


def _run(conn: Any, operation: str, parameters: Any, many: bool) -> tuple[Any, int, Any, list[Any] | None]:
    """On the driver's thread: the statement, its description, row count, last row id and rows."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(operation, parameters)
        else:
            cur.execute(operation, () if parameters is None else parameters)
        description = cur.description
        rows = cur.fetchall() if description else None
        return description, cur.rowcount, cur.lastrowid, rows
    finally:
        cur.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose execute is one call on aiosqlite's thread (cursor, statement, rows, close)."""

    __slots__ = ("_outcome",)

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: one is made per statement
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome: tuple[Any, int, Any] = (None, -1, None)

    @property
    def description(self) -> Any:
        return self._outcome[0]

    @property
    def rowcount(self) -> int:
        return self._outcome[1]

    @property
    def lastrowid(self) -> Any:
        return self._outcome[2]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return  # nothing is open between statements

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._one_hop(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._one_hop(operation, seq_of_parameters, True)

    async def _one_hop(self, operation: Any, parameters: Any, many: bool) -> Any:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection
            description, rowcount, lastrowid, rows = await conn._execute(_run, conn._conn, operation, parameters, many)
        self._outcome = (description, rowcount, lastrowid)
        self._rows = collections.deque(rows or ())
        return self


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    _cursor_cls = OneHopCursor


def use_one_hop(engine: AsyncEngine) -> None:
    """Make the engine's new SQLite connections use :class:`OneHopCursor`."""
    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        plain = dialect.loaded_dbapi.connect(*cargs, **cparams)
        return OneHopConnection(dialect.loaded_dbapi, plain._connection)
