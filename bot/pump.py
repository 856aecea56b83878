"""A pump drains one kind of due work whenever it is kicked.

Kicks come from the producers (a committed event, a queued delivery) and from
the scheduler's poll ticks; a pump never runs two drains at once, so slow work
does not pile up overlapping runs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger("siyu.pump")


class Pump:
    name = "pump"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = asyncio.Lock()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            try:
                await self.drain()
            except Exception:
                log.exception("%s drain failed; will retry on the next tick", self.name)
                await asyncio.sleep(0.5)

    async def drain(self) -> int:
        async with self._draining:
            total = 0
            while not self._stopping:
                n = await self.drain_once()
                if n == 0:
                    break
                total += n
            return total

    async def drain_once(self) -> int:
        """Claim and finish one batch; return how many items it held (0 when nothing is due)."""
        raise NotImplementedError

    async def next_due(self) -> datetime | None:
        """When the earliest work it knows of falls due (None: nothing waits for a time, or it cannot tell).

        A clock that is moved by hand (``siyu simulate``'s ``:wait``) stops at each of these times."""
        return None


class Reloader(Pump):
    """Looks at operator-edited files every ``interval_s`` by the app clock, and at once when asked.

    ``reload(files)`` does the work: ``files`` is True when the interval came round (look at the
    files), False when only :meth:`request` asked (e.g. a chat command changed the database).
    It returns whether something new went live.
    """

    def __init__(self, name: str, clock: Any, interval_s: float,
                 reload: Callable[[bool], bool | Awaitable[bool]]) -> None:
        super().__init__()
        self.name = name
        self.clock = clock
        self.interval = timedelta(seconds=interval_s)
        self.reload = reload
        self.last: datetime | None = None
        self.wanted = False

    def request(self) -> None:
        self.wanted = True
        self.kick()

    def looked(self) -> None:
        """The files were just looked at (on start, or by a command): the next look is an interval away."""
        self.last = self.clock.now()

    async def drain_once(self) -> int:
        now = self.clock.now()
        due = self.last is None or not (self.last <= now < self.last + self.interval)  # a clock set back counts
        if not due and not self.wanted:
            return 0
        if due:
            self.last = now
        self.wanted = False
        result = self.reload(due)
        if inspect.isawaitable(result):
            result = await result
        return int(bool(result))
