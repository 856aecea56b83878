"""群发 tasks (``externalcontact/add_msg_template``) made for several customers of one staff member at once.

Segment sends (``/send``) and SOP ``mass_send`` steps both put one text in front of many customers through the
staff member who owns them. This module is what they share:

- :func:`task_deliveries`: the ``mass_send`` outbox deliveries of one staff member's customers — one task, or
  several of :data:`TASK_RECIPIENTS` when there are more —, keyed ``<base>``, ``<base>:1``, ``<base>:2`` …
  so a redelivered or reprocessed batch queues each task once (the outbox's unique key).
- :class:`TaskPoller`: the results of those tasks, read from the task's outbox row (its ``msgid``, or why the
  task was not created) and then every page of ``externalcontact/get_groupmsg_send_result`` for the staff
  member: per customer 0 unsent (the staff member has not confirmed the task), 1 sent, 2 not a contact,
  3 already given another 群发 that day. A feature keeps its tasks in its own table with the columns
  :data:`TASK_COLUMNS`; the poller claims those due for a look and writes what it found, and hands each look
  to the feature (``record``) in the same transaction, for the feature's own per-customer bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from bot.pump import Pump
from bot.storage.models import OutboxRow

if TYPE_CHECKING:
    from sqlalchemy import Table

    from bot.storage.db import Database

log = logging.getLogger("siyu.masssend")

TASK_RECIPIENTS = 10_000   # add_msg_template takes at most 10,000 external_userids
RESULT_PAGE = 1000         # get_groupmsg_send_result: limit ≤ 1,000 a page
UNSENT, SENT, NOT_CONTACT, ALREADY_SENT = 0, 1, 2, 3
# what a task table holds (besides its own columns): campaign_task, sop_mass_task
TASK_COLUMNS = ("id", "outbox_key", "staff", "customers", "state", "msgid", "sent", "failed", "unsent", "polls",
                "next_poll_at", "detail", "created_at")
OUTBOX = OutboxRow.__table__


def task_deliveries(base_key: str, staff: str, customers: Sequence[str], text: str, *, not_before: datetime,
                    attachments: Sequence[dict[str, Any]] = (), source: str = "") -> list[dict[str, Any]]:
    """The ``mass_send`` deliveries of one staff member's customers, :data:`TASK_RECIPIENTS` a task at most."""
    out: list[dict[str, Any]] = []
    for n, first in enumerate(range(0, len(customers), TASK_RECIPIENTS)):
        d: dict[str, Any] = {"key": base_key + (f":{n}" if n else ""), "kind": "mass_send", "text": text,
                             "not_before": not_before,
                             "destination": {"sender": staff,
                                             "external_userids": list(customers[first:first + TASK_RECIPIENTS])}}
        if attachments:
            d["payload"] = {"attachments": [dict(a) for a in attachments]}
        if source:
            d["source"] = source
        out.append(d)
    return out


@dataclass(frozen=True, slots=True)
class PollTimes:
    """When a task is looked at: ``after_s`` once due, then every ``interval_s``, for at most ``max_hours``."""

    after_s: float
    interval_s: float
    max_hours: float


@dataclass(slots=True)
class Look:
    """What one look at a task found: the task's new values, and each customer's status when it was read."""

    values: dict[str, Any]
    statuses: dict[str, int] = field(default_factory=dict)


Record = Callable[[Any, Any, Look], Awaitable[None]]


async def claim_due(db: Database, table: Table, next_look: datetime, now: datetime, limit: int = 50
                    ) -> tuple[list[Any], dict[str, Any]]:
    """Take the rows of ``table`` (a 群发 task or a Moments post) queued and due for a look: in their own
    transaction, ``polls`` + 1 and the next look at ``next_look``; and the outbox rows of their deliveries
    by key (``outbox_key``)."""
    pick = select(table.c.id).where(and_(table.c.state == "queued", table.c.next_poll_at <= now)).limit(limit)
    if not db.is_sqlite:
        pick = pick.with_for_update(skip_locked=True)
    async with db.session() as s:
        claimed = (await s.execute(
            update(table).where(table.c.id.in_(pick.scalar_subquery()))
            .values(next_poll_at=next_look, polls=table.c.polls + 1)
            .returning(*table.c))).all()
        if not claimed:
            return [], {}
        rows = {r.key: r for r in (await s.execute(
            select(OUTBOX.c.key, OUTBOX.c.status, OUTBOX.c.result, OUTBOX.c.last_error)
            .where(OUTBOX.c.key.in_([c.outbox_key for c in claimed])))).all()}
    return list(claimed), rows


class TaskPoller:
    """Looks at the queued tasks of one task table (``state`` queued, ``next_poll_at`` due)."""

    def __init__(self, db: Database, table: Table, times: PollTimes, api: Callable[[], Any]) -> None:
        self.db = db
        self.table = table
        self.times = times
        self.api = api   # the WeCom API service when there is one (app.maybe(WECOM_API)), else None

    async def poll(self, now: datetime, record: Record | None = None, limit: int = 50) -> int:
        """One round: claim the tasks due for a look, look at each, write what was found; returns how many."""
        claimed, rows = await claim_due(self.db, self.table, now + timedelta(seconds=self.times.interval_s), now,
                                        limit)
        looks: list[tuple[Any, Look]] = []
        for c in claimed:
            look = await self.look(c, rows.get(c.outbox_key), now)
            if look is not None:
                looks.append((c, look))
        if looks:
            t = self.table
            async with self.db.session() as s:
                for c, look in looks:
                    await s.execute(update(t).where(t.c.id == c.id).values(**look.values))
                    if record is not None:
                        await record(s, c, look)
        return len(claimed)

    async def look(self, c: Any, row: Any, now: datetime) -> Look | None:
        """What one look found; None while the task is not sent yet (looked at again next interval)."""
        if row is None or row.status in ("pending", "sending"):
            return None
        if row.status == "dead":
            return Look({"state": "failed", "failed": c.customers, "unsent": 0, "next_poll_at": None,
                         "detail": f"群发任务没有创建：{row.last_error or ''}"[:2000]})
        msgid = str((row.result or {}).get("msgid") or c.msgid or "")
        api = self.api()
        if not msgid or api is None:
            why = "发送方没有返回 msgid（例如 console sender）" if not msgid else "没有企业微信 API 服务"
            return Look({"state": "unpolled", "msgid": msgid, "next_poll_at": None,
                         "detail": f"{why}，没有查询发送结果"})
        return await self._read(api, c, msgid, now)

    async def _read(self, api: Any, c: Any, msgid: str, now: datetime) -> Look:
        """Every page of get_groupmsg_send_result for the task's staff member."""
        from bot.wecomapi import WeComError

        statuses: dict[str, int] = {}
        cursor = ""
        try:
            while True:
                body: dict[str, Any] = {"msgid": msgid, "userid": c.staff, "limit": RESULT_PAGE}
                if cursor:
                    body["cursor"] = cursor
                answer = await api.call("externalcontact/get_groupmsg_send_result", body)
                for d in answer.get("detail_list") or []:
                    if isinstance(d, dict) and d.get("external_userid"):
                        status = d.get("status")
                        statuses[str(d["external_userid"])] = status if status in (0, 1, 2, 3) else UNSENT
                cursor = str(answer.get("next_cursor") or "")
                if not cursor:
                    break
        except WeComError as exc:
            return Look({"msgid": msgid, "detail": f"查询结果失败：{exc}"[:2000]})
        except Exception as exc:  # a bad answer must not stop the other tasks' looks
            log.warning("mass send %s result poll failed: %s", msgid, exc)
            return Look({"msgid": msgid, "detail": f"查询结果失败：{type(exc).__name__}"})
        n = {s: sum(1 for v in statuses.values() if v == s) for s in (UNSENT, SENT, NOT_CONTACT, ALREADY_SENT)}
        values: dict[str, Any] = {"msgid": msgid, "sent": n[SENT], "failed": n[NOT_CONTACT] + n[ALREADY_SENT],
                                  "unsent": n[UNSENT],
                                  "detail": f"不是好友 {n[NOT_CONTACT]}，当天已收到其他群发 {n[ALREADY_SENT]}"}
        if n[UNSENT] == 0:
            values.update(state="done", next_poll_at=None)
        elif now - c.created_at > timedelta(hours=self.times.max_hours):
            values.update(state="unknown", next_poll_at=None,
                          detail=f"{self.times.max_hours:g} 小时后仍有 {n[UNSENT]} 位客户未发送（员工没有确认群发）")
        return Look(values, statuses)


class ResultsPump(Pump):
    """The pump of one feature's task table: each tick, one round of ``poll`` (:meth:`TaskPoller.poll`)."""

    def __init__(self, name: str, poll: Callable[[], Awaitable[int]]) -> None:
        super().__init__()
        self.name = name
        self.poll = poll

    async def drain_once(self) -> int:
        return await self.poll()
