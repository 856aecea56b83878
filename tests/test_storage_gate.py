"""SQLite's one writer: waiting writers take turns first come, first served, and the inbox commit a
callback's 200 waits for goes ahead of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.storage.db import Database, WriteGate


async def test_writers_take_turns_in_order_and_an_urgent_one_goes_first() -> None:
    gate, order = WriteGate(), []

    async def write(name: str, urgent: bool = False) -> None:
        await gate.acquire(urgent)
        order.append(name)
        await asyncio.sleep(0)
        gate.release()

    await gate.acquire()  # someone is writing
    tasks = [asyncio.create_task(write(n)) for n in ("a", "b", "c")]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(write("inbox", urgent=True)))
    await asyncio.sleep(0)
    assert gate.waiting == 4 and order == []
    gate.release()
    await asyncio.gather(*tasks)
    assert order == ["inbox", "a", "b", "c"]
    assert gate.waiting == 0
    await asyncio.wait_for(gate.acquire(), 1)  # free again: taken at once


async def test_a_writer_cancelled_while_waiting_or_just_handed_the_gate_does_not_keep_it() -> None:
    gate = WriteGate()
    await gate.acquire()
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # cancelled while waiting
    with pytest.raises(asyncio.CancelledError):
        await waiting
    handed = asyncio.create_task(gate.acquire())
    after = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # handed to `handed` …
    handed.cancel()  # … which is cancelled before it runs: the gate passes on to `after`
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(after, 1)
    assert gate.waiting == 0
    gate.release()
    await asyncio.wait_for(gate.acquire(), 1)


async def test_on_sqlite_the_inbox_commit_goes_ahead_of_waiting_handler_transactions(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    try:
        async with db.connection() as conn:
            await conn.execute(text("CREATE TABLE t (who TEXT)"))
        order: list[str] = []
        first_in = asyncio.Event()
        go_on = asyncio.Event()

        async def handler(name: str) -> None:
            async with db.session() as s:
                await s.execute(text("INSERT INTO t VALUES (:w)"), {"w": name})
                order.append(name)
                if name == "h0":
                    first_in.set()
                    await go_on.wait()

        async def inbox() -> None:
            async with db.connection(urgent=True) as conn:
                await conn.execute(text("INSERT INTO t VALUES ('inbox')"))
                order.append("inbox")

        tasks = [asyncio.create_task(handler("h0"))]
        await first_in.wait()
        tasks += [asyncio.create_task(handler(f"h{i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        tasks.append(asyncio.create_task(inbox()))
        await asyncio.sleep(0.05)
        go_on.set()
        await asyncio.gather(*tasks)
        assert order == ["h0", "inbox", "h1", "h2", "h3"]
        async with db.read() as s:
            stored = (await s.execute(text("SELECT who FROM t ORDER BY rowid"))).scalars().all()
        assert stored == order  # and each wrote in its own turn
    finally:
        await db.dispose()
