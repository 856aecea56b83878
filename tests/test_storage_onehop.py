"""SQLite statements in one call on aiosqlite's thread: the same results, row counts, ids and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError

import bot.storage.onehop as onehop
from bot.storage.db import Database


async def test_rows_counts_ids_and_errors_come_back_from_one_call_per_statement(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    run = onehop._run

    def counted(conn: object, operation: str, parameters: object, many: bool) -> object:
        calls.append(operation.split()[0])
        return run(conn, operation, parameters, many)  # type: ignore[arg-type]

    monkeypatch.setattr(onehop, "_run", counted)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/one.db")
    try:
        async with db.session() as s:
            await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT)"))
            await s.execute(text("INSERT INTO t (name, n) VALUES (:name, :n)"),
                            [{"name": f"r{i}", "n": i} for i in range(5)])  # executemany: one call too
            res = await s.execute(text("INSERT INTO t (name, n) VALUES ('x', 9)"))
            assert res.lastrowid == 6
            res = await s.execute(text("UPDATE t SET n = n + 1 WHERE n >= :low").bindparams(bindparam("low")),
                                  {"low": 3})
            assert res.rowcount == 3
            rows = (await s.execute(text("SELECT name, n FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [("r0", 0), ("r1", 1), ("r2", 2), ("r3", 4), ("r4", 5), ("x", 10)]
            assert (await s.execute(text("SELECT name FROM t WHERE n > 100"))).first() is None
            assert (await s.execute(text("INSERT INTO t (name, n) VALUES ('y', 1) RETURNING id"))).scalar_one() == 7
        with pytest.raises(IntegrityError):  # the driver's error, as SQLAlchemy's, and the transaction rolled back
            async with db.session() as s:
                await s.execute(text("INSERT INTO t (name, n) VALUES ('z', 1)"))
                await s.execute(text("INSERT INTO t (name, n) VALUES ('r0', 1)"))
        async with db.read() as s:
            assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 7
    finally:
        await db.dispose()
    assert {"CREATE", "INSERT", "UPDATE", "SELECT"} <= set(calls)
    assert calls.count("INSERT") == 5  # the executemany of five rows was one call
