"""SOP ``mass_send`` steps of member runs merged into one 群发 task per step, day, staff member and text.

WeCom's 群发 (``add_msg_template``) is a task the staff member confirms in WeCom; one task per customer would
have staff confirm dozens a day. So when the step pump meets a due ``mass_send`` occurrence of a member run,
it also takes the other pending occurrences of that step (same script version) due later the same local day
(:meth:`bot.sop.store.SopStore.claim_same_day`), and :class:`MassMerge` puts every occurrence whose rendered
text and attachments are the same and that goes through the same staff member into one task — several of
10,000 customers when there are more (:func:`bot.masssend.task_deliveries`). The task goes out at once (the
first occurrence's due time, already out of the quiet hours), under the outbox key
``sop:mass:<script>:<step>:<day>:<staff>:<first step id>``, in the same transaction that records the
occurrences as sent: a restart or a lease taken over queues it once. :class:`MassResults` polls each task
(:class:`bot.masssend.TaskPoller`) and records every customer's occurrence as ``sent`` (confirmed and
delivered), ``mass_failed`` (not a contact, already given another 群发 that day, or the task not created)
or ``unconfirmed`` (still unsent after ``sop.mass_poll_max_hours``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.masssend import ALREADY_SENT, NOT_CONTACT, SENT, UNSENT, Look, PollTimes, TaskPoller, task_deliveries
from bot.storage.keys import bounded_key
from bot.wecomapi import WECOM_API

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.sop.store import SopStore

QUEUED_DETAIL = "已合并进员工的群发任务，待员工确认"
RESULTS = {SENT: ("sent", "员工已确认群发，已送达"), NOT_CONTACT: ("mass_failed", "不是员工的客户（好友）"),
           ALREADY_SENT: ("mass_failed", "客户当天已收到其他群发")}


@dataclass(slots=True)
class _Group:
    script_id: str
    step_key: str
    day: str
    staff: str
    text: str
    attachments: list[dict[str, Any]]
    recipients: dict[str, list[int]] = field(default_factory=dict)   # member id → step ids


class MassMerge:
    """One step batch's ``mass_send`` occurrences of member runs, grouped into 群发 tasks."""

    def __init__(self, tz: Any, poll_after: timedelta) -> None:
        self.tz = tz
        self.poll_after = poll_after
        self.groups: dict[tuple[str, ...], _Group] = {}

    def add(self, script_id: str, step_key: str, due: datetime, delivery: dict[str, Any], step_id: int) -> None:
        dest = delivery["destination"]
        attachments = list((delivery.get("payload") or {}).get("attachments") or [])
        day = due.astimezone(self.tz).date().isoformat()
        key = (script_id, step_key, day, dest["sender"], delivery["text"], json.dumps(attachments, sort_keys=True))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(script_id, step_key, day, dest["sender"], delivery["text"], attachments)
        for member in dest["external_userids"]:
            group.recipients.setdefault(member, []).append(step_id)

    def tasks(self, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(outbox deliveries, ``sop_mass_task`` rows) of the batch's groups."""
        deliveries: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for g in self.groups.values():
            first = min(i for ids in g.recipients.values() for i in ids)
            base = bounded_key(f"sop:mass:{g.script_id}:{g.step_key}:{g.day}:{g.staff}:{first}", 240)
            members = sorted(g.recipients)
            for d in task_deliveries(base, g.staff, members, g.text, not_before=now, attachments=g.attachments,
                                     source=f"sop:mass:{g.script_id}"):
                deliveries.append(d)
                mine = d["destination"]["external_userids"]
                rows.append({"outbox_key": d["key"], "script_id": g.script_id, "step_key": g.step_key, "day": g.day,
                             "staff": g.staff[:128], "recipients": {m: g.recipients[m] for m in mine},
                             "customers": len(mine), "state": "queued", "unsent": len(mine), "detail": "",
                             "created_at": now, "next_poll_at": now + self.poll_after})
        return deliveries, rows


class MassResults:
    """Polls the merged tasks and records each customer's occurrence."""

    def __init__(self, app: BotApp, store: SopStore) -> None:
        from bot.sop.store import MASS_TASKS

        cfg = app.config.sop
        self.app = app
        self.store = store
        self.poller = TaskPoller(app.db, MASS_TASKS, PollTimes(cfg.mass_poll_after_s, cfg.mass_poll_interval_s,
                                                               cfg.mass_poll_max_hours), lambda: app.maybe(WECOM_API))

    async def poll(self) -> int:
        return await self.poller.poll(self.app.clock.now(), self.record)

    async def record(self, s: Any, task: Any, look: Look) -> None:
        """Each customer's occurrence as the look found it (in the poller's transaction)."""
        state = look.values.get("state")
        outcomes: dict[tuple[str, str], list[int]] = {}
        for member, step_ids in (task.recipients or {}).items():
            status = look.statuses.get(member)
            if state == "failed":
                got = ("mass_failed", str(look.values.get("detail", "")))
            elif state == "unpolled":
                got = ("sent", str(look.values.get("detail", "")))
            elif status in RESULTS:
                got = RESULTS[status]
            elif state == "unknown" and status in (UNSENT, None):
                got = ("unconfirmed", "员工没有确认群发任务")
            else:
                continue
            outcomes.setdefault(got, []).extend(step_ids)
        for (outcome, detail), ids in outcomes.items():
            await self.store.set_steps(s, ids, {"outcome": outcome, "detail": detail[:500]})
