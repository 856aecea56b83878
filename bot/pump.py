"""A pump drains one kind of due work whenever it is kicked.

Kicks come from the producers (a committed event, a queued delivery) and from
the scheduler's poll ticks; a pump never runs two drains at once, so slow work
does not pile up overlapping runs.
"""

from __future__ import annotations

import asyncio
import logging

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
