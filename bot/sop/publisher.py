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

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.commands import CommandError
from bot.effects import Effects
from bot.pump import Pump
from bot.sop.moments import (
    MAX_MOMENT_TEXT,
    ORIGIN_NAMES,
    SAMPLE_SLOT,
    Calendar,
    ChatChanges,
    DayPlan,
    PlannedSlot,
    Slot,
    calendar_findings,
    parse_calendar,
    slot_text,
    text_problem,
)
from bot.sop.store import MomentsStore
from bot.sop.timing import WEEKDAY_CN, WEEKDAYS, parse_duration
from bot.textcheck import TEXT_CHECK, TextFinding
from bot.watched import WatchedFile
from bot.yamldoc import Problem, tree_stamp

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.moments")

POST_STATES = {"queued": "已提交，等待结果", "reminded": "已提醒员工", "done": "已发布", "failed": "发送失败",
               "skipped": "已跳过", "missed": "已错过", "unpolled": "已提交（未查询结果）", "unknown": "结果未知"}


def slot_status(plan: DayPlan, ps: PlannedSlot, post: Any, now: datetime, *, grace: timedelta,
                late_grace: str = "", enabled: bool = True, held: str = "") -> str:
    """What ``/moments week|today`` says of a slot. A slot is sent (or recorded as skipped or missed) only
    when the publisher writes its post row, so a past slot without one was never queued: 未发布 while the
    publisher may still take it (within ``late_grace``), 已错过 after that — with the reason. ``held``: why the
    slot waits for an approval although the day needs none (a reject term of the compliance lexicon)."""
    if post is not None:
        label = POST_STATES.get(post.state, post.state)
        return f"{label}（{post.detail}）" if post.detail and post.state != "reminded" else label
    if ps.skipped_by:
        return f"将跳过（{ps.skipped_by}）"
    waiting = (plan.approval_required or bool(held)) and not plan.approved_by
    if ps.at > now:
        return (f"待审批（{held}）" if held else "待审批") if waiting else "待发布"
    late = now - ps.at > grace
    if not enabled:
        return f"{'已错过' if late else '未发布'}（朋友圈发布没有开启：moments.enabled = false）"
    if waiting:
        return "已错过（没有在宽限期内审批）" if late else f"待审批（已到时间，{late_grace} 内审批仍会发出）"
    if late:
        return f"已错过（超过宽限期 {late_grace} 仍没有排队，不会再发出：机器人当时没有运行？）"
    return "未发布（已到时间，还没有排队：机器人运行时会在宽限期内发出）"


def post_key(day: date | str, slot_id: str) -> str:
    return f"moment:{day}:{slot_id}"


@dataclass(slots=True)
class Decision:
    planned: PlannedSlot
    state: str            # publish | skipped | missed
    detail: str = ""


class MomentsService:
    """The live calendar (the last good version of the file), the chat changes over it, and publishing."""

    def __init__(self, app: BotApp, path: Path, templates_dir: Path, store: MomentsStore) -> None:
        self.app = app
        self.path = path
        self.templates_dir = templates_dir
        self.store = store
        self.cfg = app.config.moments
        self.tz = app.config.bot.tz
        self.since: datetime | None = None
        self._templates_stamp: tuple[Any, ...] | None = None
        self.file: WatchedFile[Calendar] = WatchedFile(path, self._parse, shown=self.shown(),
                                                      missing="朋友圈日历文件不存在")

    def _parse(self, text: str, shown: str) -> Calendar:
        return parse_calendar(text, shown, templates=self.app.templates, templates_dir=self.templates_dir)

    @property
    def calendar(self) -> Calendar | None:
        return self.file.good

    @property
    def problems(self) -> list[Problem]:
        return list(self.file.problems)

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.cfg.late_grace)

    def shown(self) -> str:
        try:
            return str(self.path.relative_to(self.app.config.base_dir))
        except ValueError:
            return str(self.path)

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the calendar if it (or a template of it) changed; True when a new version went live."""
        tstamp = tree_stamp(self.templates_dir)
        if tstamp != self._templates_stamp:
            force = force or self._templates_stamp is not None
            self._templates_stamp = tstamp
        before = self.calendar
        report = self.file.refresh(force=force)
        kept = "; the previous version stays live" if before is not None else ""
        for p in report.new_problems:
            log.error("moments calendar refused%s: %s", kept, p)
        now = self.calendar
        if now is None or (before is not None and now.version == before.version):
            return False
        log.info("moments calendar loaded (version %s)", now.version)
        for finding in self.findings():
            log.warning("moments calendar: %s", finding)
        return True

    # ── planning ──

    async def changes(self, session: Any) -> ChatChanges:
        return ChatChanges.from_rows(await self.store.active_changes(session))

    def local_today(self, now: datetime | None = None) -> date:
        return (now or self.app.clock.now()).astimezone(self.tz).date()

    def plan(self, day: date, changes: ChatChanges) -> DayPlan | None:
        if self.calendar is None:
            return None
        return self.calendar.plan(day, self.tz, changes, force_approval=self.cfg.approval)

    async def posts(self, session: Any, days: list[date]) -> dict[tuple[str, str], Any]:
        return await self.store.posts(session, days)

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
        return slot_text(self.app.templates, slot, day)

    def held(self, slot: Slot, day: date) -> str:
        """Why a slot waits for ``/moments approve`` of its day whatever ``approval`` says: its text for
        ``day`` holds a ``reject`` term of the compliance lexicon (bot.textcheck; "" when none, or when the
        compliance feature is not installed)."""
        lexicon = self.app.maybe(TEXT_CHECK)
        if lexicon is None:
            return ""
        try:
            text = self.render(slot, day)
        except Exception:  # a text that cannot render is the publisher's to report, not a hold
            return ""
        return next((str(f) for f in lexicon.findings(text) if f.refuses), "")

    def needs_approval(self, plan: DayPlan) -> bool:
        """Whether the day waits for ``/moments approve``: approval is on, or a slot is held (:meth:`held`)."""
        if plan.approved_by:
            return False
        return plan.approval_required or any(self.held(ps.slot, plan.day) for ps in plan.slots if not ps.skipped_by)

    def decide(self, plan: DayPlan, planned: PlannedSlot, now: datetime) -> Decision | None:
        """What to do with a slot whose time has come (None: wait, e.g. for an approval — of the day, or of a
        slot held for a reject term)."""
        if planned.skipped_by:
            return Decision(planned, "skipped", f"{planned.skipped_by} 在聊天中跳过")
        late = now - planned.at > self.grace
        if (plan.approval_required or self.held(planned.slot, planned.day)) and not plan.approved_by:
            if late:
                return Decision(planned, "missed", "没有在宽限期内审批")
            return None
        if late:
            return Decision(planned, "missed", f"超过宽限期 {self.cfg.late_grace} 才被发现，没有发送")
        return Decision(planned, "publish")

    # ── what the /moments commands do ──

    def need_calendar(self) -> Calendar:
        if self.calendar is None:
            problems = "；".join(str(p) for p in self.problems) or "没有加载"
            raise CommandError(f"朋友圈日历不可用：{problems}")
        return self.calendar

    def render_or_why(self, slot: Slot, day: date) -> str:
        try:
            return self.render(slot, day)
        except Exception as exc:
            return f"（渲染失败：{exc}）"

    async def days_view(self, session: Any, days: list[date], now: datetime) -> list[dict[str, Any]]:
        """Each day's plan with every slot's text, audience, staff and status (``/moments week|today``)."""
        self.need_calendar()
        changes = await self.changes(session)
        posts = await self.posts(session, days)
        out = []
        for day in days:
            plan = self.plan(day, changes)
            assert plan is not None
            slots = []
            held_any = False
            for ps in plan.slots:
                post = posts.get((day.isoformat(), ps.slot.id))
                tags, tiers = self.audience(ps.slot)
                held = self.held(ps.slot, day)
                held_any = held_any or bool(held and not ps.skipped_by)
                status = slot_status(plan, ps, post, now, grace=self.grace, late_grace=self.cfg.late_grace,
                                     enabled=self.cfg.enabled, held=held)
                slots.append({"ps": ps, "slot": ps.slot, "text": self.render_or_why(ps.slot, day),
                              "status": status, "via": self.via(ps.slot),
                              "staff": self.staff(ps.slot), "tags": tags, "tiers": tiers,
                              "origin": ORIGIN_NAMES.get(ps.slot.origin, ps.slot.origin), "post": post})
            # approval: the day waits for /moments approve (approval is on, or a slot is held for a reject term)
            out.append({"plan": plan, "day": day, "weekday": WEEKDAY_CN[day.weekday()], "slots": slots,
                        "approval": plan.approval_required or held_any})
        return out

    async def skip(self, session: Any, day: date, wanted: str, actor: str, now: datetime
                   ) -> tuple[list[PlannedSlot], list[PlannedSlot]]:
        """Skip ``day`` (or its slot ``wanted``: id or HH:MM); (the slots skipped, those already handled)."""
        self.need_calendar()
        if day < self.local_today(now):
            raise CommandError(f"{day} 已经过去了")
        plan = self.plan(day, await self.changes(session))
        assert plan is not None
        posts = await self.posts(session, [day])
        targets = plan.slots
        if wanted:
            hhmm = wanted.replace("：", ":")
            targets = tuple(ps for ps in plan.slots if wanted in (ps.slot.id,) or ps.slot.hhmm == hhmm)
            if not targets:
                ids = "、".join(f"{ps.slot.hhmm} {ps.slot.id}" for ps in plan.slots) or "（这天没有时段）"
                raise CommandError(f"{day} 没有时段 {wanted}；这天的时段：{ids}")
        if not targets:
            raise CommandError(f"{day} 本来就没有要发的朋友圈")
        done = [ps for ps in targets if (day.isoformat(), ps.slot.id) in posts]
        if done and len(done) == len(targets):
            raise CommandError("这些时段已经处理过了（" + "、".join(ps.slot.hhmm for ps in done) + "），不能再跳过")
        for sid in [ps.slot.id for ps in targets] if wanted else ["*"]:
            await self._change(session, f"skip:{day}:{sid}", now, kind="skip", date=day.isoformat(), slot_id=sid,
                               actor=actor)
        return [ps for ps in targets if ps not in done], done

    async def approve(self, session: Any, day: date, actor: str, now: datetime) -> None:
        self.need_calendar()
        if day < self.local_today(now):
            raise CommandError(f"{day} 已经过去了，不能再审批")
        await self._change(session, f"approve:{day}", now, kind="approve", date=day.isoformat(), actor=actor)

    async def set_text(self, session: Any, weekday: int, hhmm: str, text: str, actor: str, now: datetime
                       ) -> tuple[Slot | None, list[str]]:
        """Every ``weekday`` at ``hhmm`` posts ``text``: (the file's slot it replaces, if any; the review terms
        of the compliance lexicon in it). A reject term refuses the text."""
        if len(text) > MAX_MOMENT_TEXT:
            raise CommandError(f"朋友圈文字最多 {MAX_MOMENT_TEXT} 字，这里有 {len(text)} 字")
        problem = await asyncio.to_thread(text_problem, self.app.templates, text)  # a budgeted render
        if problem:
            raise CommandError(f"文案里的模板有问题：{problem}")
        findings = await asyncio.to_thread(self.text_findings, text)
        refused = next((f for f in findings if f.refuses), None)
        if refused is not None:
            raise CommandError(f"文案没有保存：{refused}")
        name = WEEKDAYS[weekday]
        await self._change(session, f"set:{name}:{hhmm}", now, kind="set", weekday=name, time=hhmm, text=text,
                           actor=actor)
        warnings = [str(f) for f in findings]
        if self.calendar is None:
            return None, warnings
        return next((s for s in self.calendar.week.get(weekday, ()) if s.hhmm == hhmm), None), warnings

    def text_findings(self, source: str) -> list[TextFinding]:
        """The compliance lexicon's terms in a Moments text rendered with sample values (none without the
        compliance feature)."""
        lexicon = self.app.maybe(TEXT_CHECK)
        if lexicon is None:
            return []
        return lexicon.findings(self.app.templates.trial(source, limit=MAX_MOMENT_TEXT, **SAMPLE_SLOT))

    def findings(self) -> list[str]:
        """The compliance lexicon's terms in the live calendar's slots (held or warned of)."""
        if self.calendar is None:
            return []
        return calendar_findings(self.calendar, self.app.templates, self.app.maybe(TEXT_CHECK))

    async def unset_text(self, session: Any, weekday: int, hhmm: str, actor: str, now: datetime) -> None:
        if not await self.store.drop_change(session, f"set:{WEEKDAYS[weekday]}:{hhmm}", actor, now):
            raise CommandError(f"{WEEKDAY_CN[weekday]} {hhmm} 没有聊天里设置的文案")

    async def _change(self, session: Any, key: str, now: datetime, *, kind: str, actor: str, date: str = "",
                      weekday: str = "", time: str = "", slot_id: str = "", text: str = "") -> None:
        await self.store.put_change(session, key, {"kind": kind, "date": date, "weekday": weekday, "time": time,
                                                   "slot_id": slot_id, "text": text, "actor": actor, "active": True,
                                                   "at": now})

    # ── publishing ──

    async def started_at(self, now: datetime) -> datetime:
        """When this database first published: slots before it are not this bot's to publish or miss."""
        if self.since is None:
            self.since = await self.store.started_at(now)
        return self.since

    async def _recent(self, now: datetime) -> tuple[datetime, list[tuple[date, DayPlan | None]], dict[Any, Any]]:
        """(when publishing started, the plans of yesterday and today, their posts by (date, slot id))."""
        since = await self.started_at(now)
        today = self.local_today(now)
        days = [today - timedelta(days=1), today]
        async with self.app.db.read() as s:
            changes = await self.changes(s)
            done = await self.posts(s, days)
        return since, [(day, self.plan(day, changes)) for day in days], done

    async def publish_due(self) -> int:
        """Publish (or record) every slot of yesterday and today whose time has come; returns rows written."""
        if self.calendar is None:
            return 0
        now = self.app.clock.now()
        since, plans, done = await self._recent(now)
        decisions: list[Decision] = []
        for day, plan in plans:
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
        effects: dict[date, Effects] = {}
        async with self.app.db.session() as s:
            for d in decisions:
                day = d.planned.day
                fx = effects.setdefault(day, Effects(self.app, s, source=f"moments:{day}"))
                await self._record(fx, d, now)
        for fx in effects.values():
            fx.kick()
        return len(decisions)

    async def next_slot(self) -> datetime | None:
        """The time of the next slot of today or tomorrow that is still to come."""
        if self.calendar is None:
            return None
        now = self.app.clock.now()
        today = self.local_today(now)
        async with self.app.db.read() as s:
            changes = await self.changes(s)
        times = [ps.at for day in (today, today + timedelta(days=1)) if (plan := self.plan(day, changes))
                 for ps in plan.slots if ps.at > now]
        return min(times, default=None)

    async def activity(self, now: datetime, seen: set[str]) -> list[str]:
        """What ``siyu simulate`` tells of the slots of yesterday and today whose time has come: held for an
        approval, skipped or missed (each once: ``seen`` collects their keys). Published ones are deliveries."""
        if self.calendar is None:
            return []
        since, plans, done = await self._recent(now)
        lines: list[str] = []
        for day, plan in plans:
            for ps in plan.slots if plan else ():
                key = post_key(day, ps.slot.id)
                post = done.get((day.isoformat(), ps.slot.id))
                if ps.at > now or ps.at < since or key in seen:
                    continue
                what = f"朋友圈 {day:%m-%d} {ps.at.astimezone(self.tz):%H:%M}「{ps.slot.theme}」"
                if post is None and plan is not None and plan.approval_required and not plan.approved_by:
                    if f"held:{key}" not in seen:
                        lines.append(f"暂缓 {what}：待审批（/moments approve {day}，"
                                     f"{self.cfg.late_grace} 内审批仍会发出）")
                        seen.add(f"held:{key}")
                elif post is not None and post.state in ("skipped", "missed"):
                    lines.append(f"未发布 {what}：{slot_status(plan, ps, post, now, grace=self.grace)}")
                    seen.add(key)
        return lines

    async def _record(self, fx: Effects, d: Decision, now: datetime) -> int:
        """Record the slot's post once and, when it is published, its delivery (``moment_task`` or
        ``remind_staff``) under the key ``moment:<date>:<slot>`` in the same transaction."""
        slot, day = d.planned.slot, d.planned.day
        via = self.via(slot)
        state, detail = d.state, d.detail
        staff = self.staff(slot)
        if state == "publish" and via == "remind_staff" and not staff:
            state, detail = "missed", "没有可以提醒的员工（moments.staff 或日历的 staff）"
        key = post_key(day, slot.id)
        if state == "publish":
            state = "queued" if via == "moment_task" else "reminded"
        new = await self.store.add_post(fx.session, dict(
            date=day.isoformat(), slot_id=slot.id, slot_at=d.planned.at, theme=slot.theme[:200],
            via=via if state in ("queued", "reminded") else "none", state=state,
            outbox_key=key if state in ("queued", "reminded") else "", jobid="", polls=0,
            next_poll_at=now + timedelta(seconds=self.cfg.poll_interval_s) if state == "queued" else None,
            detail=detail, created_at=now, updated_at=now))
        if not new or state not in ("queued", "reminded"):
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
            return await fx.send("moment_task", key=key, text=text, destination={"visible": visible},
                                 payload=payload)
        tags, tiers = self.audience(slot)
        reminder = self.app.templates.render("moments/remind.j2", slot=slot, day=day, weekday=WEEKDAY_CN[day.weekday()],
                                             text=text, tags=tags, tiers=tiers)
        return await fx.send("remind_staff", key=key, text=reminder, to=staff)

    # ── results ──

    async def poll_results(self) -> int:
        """Poll the moment tasks due for a look; returns how many were looked at."""
        from bot.wecomapi import WECOM_API, WeComError

        now = self.app.clock.now()
        interval = timedelta(seconds=self.cfg.poll_interval_s)
        claimed, sent = await self.store.claim_polls(now, interval)
        if not claimed:
            return 0
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
            await self.store.update_posts(updates, now)
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

    async def next_due(self) -> datetime | None:
        return await self.service.next_slot()


class MomentResultsPump(Pump):
    name = "moments-results"

    def __init__(self, service: MomentsService) -> None:
        super().__init__()
        self.service = service

    async def drain_once(self) -> int:
        return await self.service.poll_results()


async def approval_reminder(app: BotApp, service: MomentsService, fire_time: datetime) -> None:
    """Tell the approvers what tomorrow holds when it still needs approving (the daily cron job)."""
    if service.calendar is None:
        return
    tomorrow = service.local_today(fire_time) + timedelta(days=1)
    async with app.db.session() as s:
        plan = service.plan(tomorrow, await service.changes(s))
        if plan is None or not service.needs_approval(plan):
            return
        slots = [ps for ps in plan.slots if not ps.skipped_by]
        if not slots:
            return
        to = list(app.config.moments.approvers or app.config.bot.ops_users)
        if not to:
            log.warning("moments for %s need approval but no moments.approvers / bot.ops_users are set", tomorrow)
            return
        texts = [service.render_or_why(ps.slot, tomorrow) for ps in slots]
        held = [service.held(ps.slot, tomorrow) for ps in slots]
        text = app.templates.render("moments/approval_needed.j2", day=tomorrow, weekday=WEEKDAY_CN[tomorrow.weekday()],
                                    slots=list(zip(slots, texts, held, strict=True)))
        fx = Effects(app, s, source=f"moments:{tomorrow}")
        await fx.send("app_message", key=f"moments-approve:{tomorrow}", text=text, to=to)
    fx.kick()
