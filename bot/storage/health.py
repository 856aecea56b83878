"""Whether the database takes writes: the probe behind ``/healthz``'s ``degraded``.

Reading ``SELECT 1`` succeeds on a full disk, a read-only file or a database
another process holds locked; a callback cannot be stored in any of them. The
probe commits one small row (``kv_state`` key ``health:write:<replica>``) at most
every ``every_s`` seconds, bounded by ``timeout_s``, and remembers the answer in
between so health checks cost no write each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.clock import Clock
from bot.storage.db import Database, insert_ignoring_conflicts
from bot.storage.models import KeyValue

KV = KeyValue.__table__


class WriteProbe:
    def __init__(self, db: Database, clock: Clock, replica: str, *, every_s: float = 5.0,
                 timeout_s: float = 0.8) -> None:
        self.db = db
        self.clock = clock
        self.key = f"health:write:{replica}"[:200]
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._last: tuple[float, str | None] | None = None
        self._running: asyncio.Task[str | None] | None = None

    async def check(self) -> str | None:
        """None when a write commits, else why not (names the exception, never a secret)."""
        loop = asyncio.get_running_loop()
        if self._last is not None and loop.time() - self._last[0] < self.every_s:
            return self._last[1]
        if self._running is None:
            self._running = asyncio.create_task(self._probe())
        task = self._running
        try:
            result = await asyncio.shield(task)
        finally:
            if task.done() and self._running is task:
                self._running = None
        self._last = (loop.time(), result)
        return result

    async def _probe(self) -> str | None:
        try:
            await asyncio.wait_for(self._write(), self.timeout_s)
        except TimeoutError:
            return f"database write did not finish within {self.timeout_s:g} s"
        except Exception as exc:  # what the database said, without a traceback per health check
            return f"database not writable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None

    async def _write(self) -> None:
        now = self.clock.now()
        value: Any = {"at": now.isoformat()}
        async with self.db.connection(urgent=True) as conn:
            stmt = insert_ignoring_conflicts(self.db.dialect, KV, ["key"]).values(key=self.key, value=value,
                                                                                  updated_at=now)
            await conn.execute(stmt)
            await conn.execute(KV.update().where(KV.c.key == self.key).values(value=value, updated_at=now))
