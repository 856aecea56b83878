"""How far processing is behind intake: the inbox and outbox lag, for /metrics, /healthz and the log.

- inbox lag: the age of the oldest event not yet processed (pending or being processed);
- outbox lag: how long the oldest due delivery has waited past its due time (a row waiting for its
  backoff, its rate-limit slot or its ``not_before`` is not late).

Past ``inbox.lag_degraded_s`` / ``outbox.lag_degraded_s`` the bot is *degraded*: /healthz says so with
the lag, and one warning line is logged when it starts and one when it clears.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from sqlalchemy import and_, func, select

from bot.clock import Clock
from bot.config import Config
from bot.metrics import Metrics
from bot.storage.db import Database
from bot.storage.models import InboxRow, OutboxRow

log = logging.getLogger("siyu.lag")
INBOX, OUTBOX = InboxRow.__table__, OutboxRow.__table__


class LagWatch:
    def __init__(self, db: Database, clock: Clock, config: Config, metrics: Metrics) -> None:
        self.db = db
        self.clock = clock
        self.limits = {"inbox": config.inbox.lag_degraded_s, "outbox": config.outbox.lag_degraded_s}
        self.metrics = metrics
        self.behind: set[str] = set()   # the queues over their limit at the last look

    async def measure(self) -> dict[str, float]:
        """Seconds behind per queue (0 when nothing waits); sets the gauges and logs a change of state."""
        now = self.clock.now()
        async with self.db.read() as s:
            oldest_event = (await s.execute(select(func.min(INBOX.c.received_at))
                                            .where(INBOX.c.status.in_(("pending", "processing"))))).scalar()
            oldest_due = (await s.execute(select(func.min(OUTBOX.c.next_attempt_at)).where(
                and_(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at <= now)))).scalar()
        lags = {name: max(0.0, (now - _aware(at)).total_seconds()) if at is not None else 0.0
                for name, at in (("inbox", oldest_event), ("outbox", oldest_due))}
        self.metrics.inbox_lag.set(lags["inbox"])
        self.metrics.outbox_lag.set(lags["outbox"])
        self._log_changes(lags)
        return lags

    def over(self, lags: dict[str, float]) -> dict[str, float]:
        """The queues past their limit, with their lag."""
        return {name: lag for name, lag in lags.items() if lag > self.limits[name]}

    def _log_changes(self, lags: dict[str, float]) -> None:
        over = self.over(lags)
        for name in sorted(set(over) - self.behind):
            log.warning("%s lag %.1f s is over %s.lag_degraded_s = %g: processing is behind intake",
                        name, over[name], name, self.limits[name])
        for name in sorted(self.behind - set(over)):
            log.warning("%s lag is back to %.1f s (under %g s)", name, lags[name], self.limits[name])
        self.behind = set(over)

    async def check(self) -> None:
        """The periodic look (scheduler poller): only logs a change of state."""
        try:
            await self.measure()
        except Exception:
            log.exception("could not measure the lag")


def _aware(at: Any) -> Any:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
