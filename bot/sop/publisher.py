"""Publishing the Moments calendar: each slot of each date once, and the task's result polled.

:class:`MomentsService` holds the live calendar (the last good version of the
file) and lays the chat changes over it. :class:`MomentsPump` looks at
yesterday and today: a slot whose time has come gets its ``moment_post`` row
(unique per date and slot) and — in the same transaction, only if that row is
new — its outbox row ``moment:<date>:<slot>``: an ``add_moment_task`` job
(``moment_task``) or the text for the staff to post (``remind_staff``). Slots
skipped in chat, waiting for an approval that never came, or found later than
``moments.late_grace`` are recorded as such instead.

:class:`MomentResultsPump` polls ``externalcontact/get_moment_task_result`` for
each job the sender returned a ``jobid`` for, and records the outcome; without
the WeCom API service (the console sender) it records that nothing was polled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from bot.pump import Pump
from bot.sop.models import MomentOverride, MomentPost
from bot.sop.moments import Calendar, ChatChanges, DayPlan, PlannedSlot, Slot, load_calendar
from bot.sop.timing import WEEKDAY_CN, parse_duration
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.models import KeyValue, OutboxRow
from bot.yamldoc import FileProblems, Problem, file_stamp, tree_stamp

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.moments")

POSTS = MomentPost.__table__
OVERRIDES = MomentOverride.__table__
OUTBOX = OutboxRow.__table__
KV = KeyValue.__table__
SINCE_KEY = "moments:since"

POST_STATES = {"queued": "已提交，等待结果", "reminded": "已提醒员工", "done": "已发布", "failed": "发送失败",
               "skipped": "已跳过", "missed": "已错过", "unpolled": "已提交（未查询结果）", "unknown": "结果未知"}


def post_key(day: date | str, slot_id: str) -> str:
    return f"moment:{day}:{slot_id}"


@dataclass(slots=True)
class Decision:
    planned: PlannedSlot
    state: str            # publish | skipped | missed
    detail: str = ""


@dataclass(slots=True)
class _FileState:
    stamp: tuple[int, int] | None = None
    templates_stamp: tuple[Any, ...] = ()
    problems: list[Problem] = field(default_factory=list)


class MomentsService:
    def __init__(self, app: BotApp, path: Path, templates_dir: Path) -> None:
        self.app = app
        self.path = path
        self.templates_dir = templates_dir
        self.cfg = app.config.moments
        self.tz = app.config.bot.tz
        self.calendar: Calendar | None = None
        self.since: datetime | None = None
        self._state = _FileState()

    @property
    def problems(self) -> list[Problem]:
        return list(self._state.problems)

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.cfg.late_grace)

    def shown(self) -> str:
        try:
            return str(self.path.relative_to(self.app.config.base_dir))
        except ValueError:
            return str(self.path)

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the calendar if it changed; True when a new version went live."""

        stamp = file_stamp(self.path)
        tstamp = tree_stamp(self.templates_dir)
        if not force and stamp == self._state.stamp and tstamp == self._state.templates_stamp:
            return False
        self._state.stamp, self._state.templates_stamp = stamp, tstamp
        if stamp is None:
            self._state.problems = [Problem(self.shown(), 0, "朋友圈日历文件不存在")]
            return False
        try:
            calendar = load_calendar(self.path, self.shown(), templates=self.app.templates,
                                     templates_dir=self.templates_dir)
        except FileProblems as exc:
            self._state.problems = exc.problems
            kept = "; the previous version stays live" if self.calendar is not None else ""
            for p in exc.problems:
                log.error("moments calendar refused%s: %s", kept, p)
            return False
        self._state.problems = []
        if self.calendar is not None and calendar.version == self.calendar.version:
            return False
        self.calendar = calendar
        log.info("moments calendar loaded (version %s)", calendar.version)
        return True

    # ── planning ──

    async def changes(self, session: Any) -> ChatChanges:
        rows = (await session.execute(select(OVERRIDES).where(OVERRIDES.c.active.is_(True)))).all()
        return ChatChanges.from_rows(rows)

    def local_today(self, now: datetime | None = None) -> date:
        return (now or self.app.clock.now()).astimezone(self.tz).date()

    def plan(self, day: date, changes: ChatChanges) -> DayPlan | None:
        if self.calendar is None:
            return None
        return self.calendar.plan(day, self.tz, changes, force_approval=self.cfg.approval)

    async def posts(self, session: Any, days: list[date]) -> dict[tuple[str, str], Any]:
        rows = (await session.execute(select(POSTS).where(POSTS.c.date.in_([d.isoformat() for d in days])))).all()
        return {(r.date, r.slot_id): r for r in rows}

    def via(self, slot: Slot) -> str:
        return slot.via or self.cfg.delivery

    def staff(self, slot: Slot) -> list[str]:
        cal = self.calendar
        return list(slot.staff or (cal.staff if cal else ()) or self.cfg.staff)

    def audience(self, slot: Slot) -> tuple[list[str], list[str]]:
        cal = self.calendar
        tags = list(slot.tags or (cal.tags if cal else ()))
        tiers = list(slot.tiers or (cal.tiers if cal else ()))
        return tags, tiers

    def tag_list(self, slot: Slot) -> list[str]:
        """WeCom tag ids for the audience: tags by ``moments.tag_ids``, tiers by ``tiers.wecom_tag_ids``."""
        tags, tiers = self.audience(slot)
        tier_ids = self.app.config.tiers.wecom_tag_ids
        out = [self.cfg.tag_ids.get(t, t) for t in tags]
        out += [tier_ids.get(t, f"tier:{t}") for t in tiers]
        return list(dict.fromkeys(out))

    def render(self, slot: Slot, day: date) -> str:
        return self.app.templates.render_string(
            slot.source, date=day.isoformat(), weekday=WEEKDAY_CN[day.weekday()], theme=slot.theme,
            slot={"id": slot.id, "time": slot.hhmm, "theme": slot.theme})

    def decide(self, plan: DayPlan, planned: PlannedSlot, now: datetime) -> Decision | None:
        """What to do with a slot whose time has come (None: wait, e.g. for an approval)."""
        if planned.skipped_by:
            return Decision(planned, "skipped", f"{planned.skipped_by} 在聊天中跳过")
        late = now - planned.at > self.grace
        if plan.approval_required and not plan.approved_by:
            if late:
                return Decision(planned, "missed", "没有在宽限期内审批")
            return None
        if late:
            return Decision(planned, "missed", f"超过宽限期 {self.cfg.late_grace} 才被发现，没有发送")
        return Decision(planned, "publish")

    # ── publishing ──

    async def started_at(self, now: datetime) -> datetime:
        """When this database first published: slots before it are not this bot's to publish or miss."""
        if self.since is None:
            async with self.app.db.session() as s:
                await s.execute(insert_ignoring_conflicts(self.app.db.dialect, KV, ["key"]).values(
                    key=SINCE_KEY, value=now.isoformat(), updated_at=now))
                value = (await s.execute(select(KV.c.value).where(KV.c.key == SINCE_KEY))).scalar()
            self.since = datetime.fromisoformat(str(value))
        return self.since

    async def publish_due(self) -> int:
        """Publish (or record) every slot of yesterday and today whose time has come; returns rows written."""
        if self.calendar is None:
            return 0
        now = self.app.clock.now()
        since = await self.started_at(now)
        today = self.local_today(now)
        days = [today - timedelta(days=1), today]
        async with self.app.db.read() as s:
            changes = await self.changes(s)
            done = await self.posts(s, days)
        decisions: list[Decision] = []
        for day in days:
            plan = self.plan(day, changes)
            if plan is None:
                continue
            for planned in plan.slots:
                if planned.at > now or planned.at < since or (day.isoformat(), planned.slot.id) in done:
                    continue
                d = self.decide(plan, planned, now)
                if d is not None:
                    decisions.append(d)
        if not decisions:
            return 0
        written = 0
        async with self.app.db.session() as s:
            for d in decisions:
                written += await self._record(s, d, now)
        if written:
            self.app.outbox_pump.kick()
        return len(decisions)

    async def _record(self, session: Any, d: Decision, now: datetime) -> int:
        slot, day = d.planned.slot, d.planned.day
        via = self.via(slot)
        state, detail = d.state, d.detail
        staff = self.staff(slot)
        if state == "publish" and via == "remind_staff" and not staff:
            state, detail = "missed", "没有可以提醒的员工（moments.staff 或日历的 staff）"
        key = post_key(day, slot.id)
        if state == "publish":
            state = "queued" if via == "moment_task" else "reminded"
        row = (await session.execute(insert_ignoring_conflicts(self.app.db.dialect, POSTS, ["date", "slot_id"]).values(
            date=day.isoformat(), slot_id=slot.id, slot_at=d.planned.at, theme=slot.theme[:200],
            via=via if state in ("queued", "reminded") else "none", state=state,
            outbox_key=key if state in ("queued", "reminded") else "", jobid="", polls=0,
            next_poll_at=now + timedelta(seconds=self.cfg.poll_interval_s) if state == "queued" else None,
            detail=detail, created_at=now, updated_at=now,
        ).returning(POSTS.c.id))).first()
        if row is None or state not in ("queued", "reminded"):
            return 0
        text = self.render(slot, day)
        if via == "moment_task":
            visible: dict[str, Any] = {}  # the moment_task destination shape of docs/delivery.md's delivery table
            if staff:
                visible["users"] = staff
            tag_list = self.tag_list(slot)
            if tag_list:
                visible["tags"] = tag_list
            payload = {"attachments": [dict(a) for a in slot.attachments]} if slot.attachments else None
            return await self.app.outbox.enqueue(session, key=key, kind="moment_task", text=text,
                                                 destination={"visible": visible}, payload=payload,
                                                 source=f"moments:{day}")
        tags, tiers = self.audience(slot)
        reminder = self.app.templates.render("moments/remind.j2", slot=slot, day=day, weekday=WEEKDAY_CN[day.weekday()],
                                             text=text, tags=tags, tiers=tiers)
        return await self.app.outbox.enqueue(session, key=key, kind="remind_staff", text=reminder, to=staff,
                                             source=f"moments:{day}")

    # ── results ──

    async def poll_results(self) -> int:
        """Poll the moment tasks due for a look; returns how many were looked at."""
        from bot.wecomapi import WECOM_API, WeComError

        now = self.app.clock.now()
        interval = timedelta(seconds=self.cfg.poll_interval_s)
        pick = select(POSTS.c.id).where(and_(POSTS.c.state == "queued", POSTS.c.next_poll_at <= now)).limit(50)
        if not self.app.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        async with self.app.db.session() as s:
            claimed = (await s.execute(
                update(POSTS).where(POSTS.c.id.in_(pick.scalar_subquery()))
                .values(next_poll_at=now + interval, polls=POSTS.c.polls + 1)
                .returning(POSTS.c.id, POSTS.c.outbox_key, POSTS.c.created_at, POSTS.c.polls, POSTS.c.jobid))).all()
            if not claimed:
                return 0
            sent = {r.key: r for r in (await s.execute(
                select(OUTBOX.c.key, OUTBOX.c.status, OUTBOX.c.result, OUTBOX.c.last_error)
                .where(OUTBOX.c.key.in_([c.outbox_key for c in claimed])))).all()}
        api = self.app.maybe(WECOM_API)
        updates: list[tuple[int, dict[str, Any]]] = []
        for c in claimed:
            row = sent.get(c.outbox_key)
            if row is None or row.status in ("pending", "sending"):
                continue  # not sent yet: look again next interval
            if row.status == "dead":
                why = f"朋友圈任务没有发出：{row.last_error or ''}"[:2000]
                updates.append((c.id, {"state": "failed", "detail": why}))
                continue
            result = dict(row.result or {})
            jobid = str(result.get("jobid") or c.jobid or "")
            if not jobid:
                updates.append((c.id, {"state": "unpolled", "result": {"polled": False, "send_result": result},
                                       "detail": "发送方没有返回 jobid（例如 console sender），没有查询任务结果"}))
                continue
            if api is None:
                updates.append((c.id, {"state": "unpolled", "jobid": jobid, "result": {"polled": False},
                                       "detail": "没有企业微信 API 服务（console sender），没有查询任务结果"}))
                continue
            try:
                answer = await api.call("externalcontact/get_moment_task_result", method="GET",
                                        params={"jobid": jobid})
            except WeComError as exc:
                updates.append((c.id, {"jobid": jobid, "detail": f"查询结果失败：{exc}"[:2000]}))
                continue
            except Exception as exc:
                log.warning("moment task %s result poll failed: %s", jobid, exc)
                updates.append((c.id, {"jobid": jobid, "detail": f"查询结果失败：{type(exc).__name__}"}))
                continue
            status = answer.get("status")
            values: dict[str, Any] = {"jobid": jobid, "task_status": status if isinstance(status, int) else None,
                                      "result": answer}
            if status == 3:
                res = answer.get("result") or {}
                values["state"] = "failed" if res.get("errcode") else "done"
                values["detail"] = _result_summary(res)
            elif now - c.created_at > timedelta(hours=self.cfg.poll_max_hours):
                values["state"] = "unknown"
                values["detail"] = f"{self.cfg.poll_max_hours:g} 小时内任务没有完成（status {status}）"
            else:
                values["detail"] = {1: "任务开始创建", 2: "任务正在创建"}.get(status, f"status {status}")
            updates.append((c.id, values))
        if updates:
            async with self.app.db.session() as s:
                for post_id, values in updates:
                    await s.execute(update(POSTS).where(POSTS.c.id == post_id).values(**values, updated_at=now))
        return len(claimed)


def _result_summary(res: dict[str, Any]) -> str:
    if res.get("errcode"):
        return f"任务失败：errcode {res.get('errcode')} {res.get('errmsg', '')}".strip()
    invalid_staff = (res.get("invalid_sender_list") or {}).get("user_list") or []
    invalid = res.get("invalid_external_contact_list") or {}
    bad_tags = invalid.get("tag_list") or []
    parts = [f"已发布，moment_id {res.get('moment_id', '')}".strip()]
    if invalid_staff:
        parts.append(f"无效员工 {len(invalid_staff)} 个：{', '.join(map(str, invalid_staff[:5]))}")
    if bad_tags:
        parts.append(f"无效标签 {len(bad_tags)} 个：{', '.join(map(str, bad_tags[:5]))}")
    return "；".join(parts)


class MomentsPump(Pump):
    name = "moments"

    def __init__(self, service: MomentsService) -> None:
        super().__init__()
        self.service = service

    async def drain_once(self) -> int:
        return await self.service.publish_due()


class MomentResultsPump(Pump):
    name = "moments-results"

    def __init__(self, service: MomentsService) -> None:
        super().__init__()
        self.service = service

    async def drain_once(self) -> int:
        return await self.service.poll_results()
