"""The SOP engine: runs, their step occurrences, and the pump that sends what is due.

A run is started (by a trigger event or ``/sop start``) on the script version
that is live at that moment; the version's body is stored, the run's steps are
materialised as ``sop_step`` rows with their due times, and from then on the
database is the schedule. :class:`StepPump` claims due occurrences with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer), and in a
second transaction — guarded by the claim, so a replica whose lease ran out and
was taken over changes nothing — evaluates the step's condition and the late
rule, renders its text and writes the outbox row under the key
``sop:<run>:<step>:<occurrence>``. A repeating step gets its next occurrence in
that same transaction; a run with nothing left is done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select, update

from bot.events import Actor
from bot.members import profile_of
from bot.pump import Pump
from bot.sop.checkins import tally
from bot.sop.files import ScriptFiles
from bot.sop.models import SopRun, SopScriptVersion, SopStep
from bot.sop.render import Renderer, StepView, needs_checkins, needs_profile
from bot.sop.script import WELCOME_WINDOW, Script, Step
from bot.sop.timing import due_time
from bot.storage.db import insert_ignoring_conflicts

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.sop")

RUNS = SopRun.__table__
STEPS = SopStep.__table__
VERSIONS = SopScriptVersion.__table__
LIVE_RUN = ("running", "paused")
OPEN_STEP = ("pending", "claimed", "paused")

OUTCOME_NAMES = {
    "sent": "已发送", "sent_late": "迟发", "skipped_late": "超时跳过", "skipped_when": "条件不满足",
    "skipped_migrated": "迁移时已过期", "no_chat": "没有群", "no_staff": "没有员工", "no_member": "没有成员",
    "no_welcome_code": "没有欢迎语码", "expired": "欢迎语码过期", "error": "出错", "stopped": "已停止",
    "migrated": "迁移后不再需要",
}
WHY_NOT = {
    "no_chat": "这次运行没有群，群内消息发不出去",
    "no_staff": "不知道发给哪位员工：在脚本或步骤里写 staff，或用 /group owner 设置群负责人，或配置 sop.staff",
    "no_member": "这次运行没有成员",
    "no_welcome_code": "添加好友事件里没有欢迎语码（WelcomeCode）",
    "expired": "欢迎语码只在添加好友后 20 秒内有效，已经过期",
}
STATE_NAMES = {"pending": "待发送", "claimed": "发送中", "paused": "已暂停", "done": "已完成", "cancelled": "已取消"}


def outbox_key(run_id: int, step_key: str, occurrence: int) -> str:
    return f"sop:{run_id}:{step_key}:{occurrence}"


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom a run is for: a group, or a member (in a group, or 1:1 through a staff member)."""

    per: str
    chat_id: str = ""
    chat_name: str = ""
    member_id: str = ""
    member_name: str = ""
    staff_id: str = ""
    trigger: dict[str, Any] = field(default_factory=dict)

    def active_key(self, script_id: str) -> str:
        who = self.member_id if self.per == "member" else ""
        return f"{script_id}|{self.per}|{self.chat_id}|{who}"[:255]

    @property
    def display(self) -> str:
        if self.per == "group":
            return self.chat_name or self.chat_id
        who = self.member_name or self.member_id
        return f"{who}@{self.chat_name or self.chat_id}" if self.chat_id else who


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    run_id: int
    step_key: str
    step_index: int
    version: str
    occurrence: int
    due_at: datetime


class SopEngine:
    """The service the SOP handlers, the pump and the CLI share (``app.get(SOP)``)."""

    def __init__(self, app: BotApp, files: ScriptFiles) -> None:
        self.app = app
        self.files = files
        self.tz = app.config.bot.tz
        self.renderer = Renderer(app.templates, self.tz)
        self._versions: dict[tuple[str, str], Script] = {}

    @property
    def scripts(self) -> dict[str, Script]:
        return self.files.scripts

    @property
    def dialect(self) -> str:
        return str(self.app.db.dialect)

    # ── versions ──

    async def ensure_version(self, session: Any, script: Script) -> None:
        self._versions[(script.id, script.version)] = script
        await session.execute(insert_ignoring_conflicts(self.dialect, VERSIONS, ["script_id", "version"]).values(
            script_id=script.id, version=script.version, name=script.name, file=script.file, body=script.body,
            loaded_at=self.app.clock.now()))

    async def version(self, session: Any, script_id: str, version: str) -> Script | None:
        key = (script_id, version)
        found = self._versions.get(key)
        if found is None:
            live = self.scripts.get(script_id)
            if live is not None and live.version == version:
                found = live
            else:
                body = (await session.execute(select(VERSIONS.c.body).where(and_(
                    VERSIONS.c.script_id == script_id, VERSIONS.c.version == version)))).scalar()
                if body is None:
                    return None
                found = Script.from_body(dict(body))
            self._versions[key] = found
        return found

    # ── starting, stopping, pausing ──

    def occurrence_times(self, script: Script, step: Step, anchor: datetime, n: int) -> tuple[datetime, datetime]:
        return due_time(step.at, anchor, self.tz, step.repeat, n, script.quiet_for(step))

    async def start(self, session: Any, script: Script, subject: Subject, *, anchor: datetime, started_by: str
                    ) -> int | None:
        """Start a run and materialise its steps; None if this subject already has a live run of the script."""
        await self.ensure_version(session, script)
        now = self.app.clock.now()
        run_id = (await session.execute(insert_ignoring_conflicts(self.dialect, RUNS, ["active_key"]).values(
            script_id=script.id, version=script.version, per=subject.per, status="running",
            active_key=subject.active_key(script.id), chat_id=subject.chat_id, chat_name=subject.chat_name[:200],
            member_id=subject.member_id, member_name=subject.member_name[:128], staff_id=subject.staff_id,
            trigger=subject.trigger, started_by=started_by[:255], anchor_at=anchor, created_at=now, end_reason="",
            migrated_from="",
        ).returning(RUNS.c.id))).scalar()
        if run_id is None:
            return None
        rows = []
        for step in script.steps:
            nominal, due = self.occurrence_times(script, step, anchor, 0)
            rows.append(self._step_row(run_id, script, step, 0, nominal, due))
        await session.execute(STEPS.insert(), rows)
        log.info("SOP run %s started: %s v%s for %s (%d steps)", run_id, script.id, script.version,
                 subject.display, len(rows))
        return int(run_id)

    @staticmethod
    def _step_row(run_id: int, script: Script, step: Step, n: int, nominal: datetime, due: datetime,
                  state: str = "pending") -> dict[str, Any]:
        return {"run_id": run_id, "step_key": step.key, "step_index": step.index, "version": script.version,
                "occurrence": n, "nominal_at": nominal, "due_at": due, "state": state, "outcome": "", "detail": "",
                "attempts": 0}

    async def stop(self, session: Any, run_ids: Iterable[int], reason: str) -> int:
        """End live runs: their open steps are cancelled. Returns how many runs stopped."""
        ids = sorted(set(run_ids))
        if not ids:
            return 0
        now = self.app.clock.now()
        res = await session.execute(update(RUNS).where(and_(RUNS.c.id.in_(ids), RUNS.c.status.in_(LIVE_RUN)))
                                    .values(status="stopped", active_key=None, ended_at=now, end_reason=reason[:500]))
        await session.execute(update(STEPS).where(and_(STEPS.c.run_id.in_(ids), STEPS.c.state.in_(OPEN_STEP)))
                              .values(state="cancelled", outcome="stopped", detail=reason[:500], done_at=now,
                                      claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    async def pause(self, session: Any, run_id: int) -> bool:
        now = self.app.clock.now()
        res = await session.execute(update(RUNS).where(and_(RUNS.c.id == run_id, RUNS.c.status == "running"))
                                    .values(status="paused", paused_at=now))
        if not res.rowcount:
            return False
        await session.execute(update(STEPS).where(and_(STEPS.c.run_id == run_id, STEPS.c.state == "pending"))
                              .values(state="paused"))
        return True

    async def resume(self, session: Any, run_id: int) -> bool:
        res = await session.execute(update(RUNS).where(and_(RUNS.c.id == run_id, RUNS.c.status == "paused"))
                                    .values(status="running", paused_at=None))
        if not res.rowcount:
            return False
        await session.execute(update(STEPS).where(and_(STEPS.c.run_id == run_id, STEPS.c.state == "paused"))
                              .values(state="pending"))
        return True

    async def live_runs(self, session: Any, *, script_ids: Iterable[str] | None = None, member_id: str | None = None,
                        chat_id: str | None = None) -> list[Any]:
        q = select(RUNS).where(RUNS.c.status.in_(LIVE_RUN))
        if script_ids is not None:
            q = q.where(RUNS.c.script_id.in_(sorted(set(script_ids))))
        if member_id is not None:
            q = q.where(RUNS.c.member_id == member_id)
        if chat_id is not None:
            q = q.where(RUNS.c.chat_id == chat_id)
        return list((await session.execute(q.order_by(RUNS.c.id))).all())

    # ── migration to a new version ──

    async def migrate(self, session: Any, run: Any, script: Script) -> dict[str, int]:
        """Move a live run to ``script`` (the current version): keep what was done, reschedule the rest.

        Steps are matched by key (their ``id``, else their number). A step already done
        is not sent again (the same outbox key); an open occurrence takes the new timing;
        a step the new version drops is cancelled; a new step is scheduled. An occurrence
        whose new due time has already passed is recorded as skipped, never sent in a burst.
        """
        await self.ensure_version(session, script)
        now = self.app.clock.now()
        counts = {"rescheduled": 0, "added": 0, "dropped": 0, "skipped": 0}
        rows = (await session.execute(select(STEPS).where(STEPS.c.run_id == run.id))).all()
        by_key: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_key[r.step_key].append(r)
        new_keys = {s.key for s in script.steps}
        open_state = "paused" if run.status == "paused" else "pending"
        for key, occ in by_key.items():
            if key in new_keys:
                continue
            ids = [r.id for r in occ if r.state in OPEN_STEP]
            if ids:
                await session.execute(update(STEPS).where(STEPS.c.id.in_(ids)).values(
                    state="cancelled", outcome="migrated", detail=f"新版本 {script.version} 没有这一步", done_at=now,
                    claimed_by=None, lease_until=None))
                counts["dropped"] += len(ids)
        for step in script.steps:
            occ = by_key.get(step.key, [])
            live = [r for r in occ if r.state in OPEN_STEP]
            done = [r.occurrence for r in occ if r.state == "done"]
            if live:
                for r in live:
                    nominal, due = self.occurrence_times(script, step, run.anchor_at, r.occurrence)
                    values: dict[str, Any] = {"step_index": step.index, "version": script.version,
                                              "nominal_at": nominal, "due_at": due, "claimed_by": None,
                                              "lease_until": None}
                    if due < now:
                        values.update(state="done", outcome="skipped_migrated", done_at=now,
                                      detail="迁移到新版本时这一次已经过了")
                        counts["skipped"] += 1
                    else:
                        values["state"] = open_state
                        counts["rescheduled"] += 1
                    await session.execute(update(STEPS).where(STEPS.c.id == r.id).values(**values))
                continue
            n = max(done) + 1 if done else 0
            if done and step.repeat is None:
                continue
            while True:
                if step.repeat is not None and not step.repeat.allows(n):
                    break
                nominal, due = self.occurrence_times(script, step, run.anchor_at, n)
                if due >= now or step.repeat is None:
                    break
                n += 1
            if step.repeat is not None and not step.repeat.allows(n):
                continue
            nominal, due = self.occurrence_times(script, step, run.anchor_at, n)
            if due < now:
                row = self._step_row(run.id, script, step, n, nominal, due, state="done")
                row.update(outcome="skipped_migrated", detail="迁移到新版本时这一步已经过了", done_at=now)
                counts["skipped"] += 1
            else:
                row = self._step_row(run.id, script, step, n, nominal, due, state=open_state)
                counts["added"] += 1
            await session.execute(insert_ignoring_conflicts(self.dialect, STEPS, ["run_id", "step_key", "occurrence"])
                                  .values(**row))
        await session.execute(update(RUNS).where(RUNS.c.id == run.id).values(
            version=script.version, migrated_from=run.version))
        await self.finish_runs(session, [run.id])
        return counts

    async def finish_runs(self, session: Any, run_ids: Iterable[int]) -> None:
        """Runs with no open step left are done."""
        ids = sorted(set(run_ids))
        if not ids:
            return
        open_steps = select(STEPS.c.id).where(and_(STEPS.c.run_id == RUNS.c.id, STEPS.c.state.in_(OPEN_STEP)))
        await session.execute(update(RUNS).where(and_(RUNS.c.id.in_(ids), RUNS.c.status == "running",
                                                      ~exists(open_steps)))
                              .values(status="done", active_key=None, ended_at=self.app.clock.now(),
                                      end_reason="全部步骤已完成"))

    # ── reading ──

    async def progress(self, session: Any, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Per run: done and total occurrences so far, and the next due time."""
        if not run_ids:
            return {}
        out: dict[int, dict[str, Any]] = {rid: {"done": 0, "total": 0, "next": None} for rid in run_ids}
        rows = (await session.execute(
            select(STEPS.c.run_id, STEPS.c.state, func.count(), func.min(STEPS.c.due_at))
            .where(STEPS.c.run_id.in_(list(run_ids))).group_by(STEPS.c.run_id, STEPS.c.state))).all()
        for run_id, state, n, first_due in rows:
            p = out[run_id]
            if state != "cancelled":
                p["total"] += n
            if state == "done":
                p["done"] += n
            if state in OPEN_STEP and (p["next"] is None or first_due < p["next"]):
                p["next"] = first_due
        return out


class StepPump(Pump):
    """Claims due step occurrences and turns them into outbox rows."""

    name = "sop-steps"

    def __init__(self, app: BotApp, engine: SopEngine) -> None:
        super().__init__()
        self.app = app
        self.engine = engine
        self.cfg = app.config.sop
        self.replica = app.replica

    async def drain_once(self) -> int:
        claimed = await self.claim(self.cfg.poll_batch)
        if not claimed:
            return 0
        await self.process(claimed)
        return len(claimed)

    async def claim(self, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due occurrences: first those whose lease ran out, then the pending ones."""
        db = self.app.db
        now = self.app.clock.now()
        # Two plain conditions rather than one OR, so each walks ix_sop_step_state_due in order.
        picks = [select(STEPS.c.id).where(and_(STEPS.c.state == "claimed", STEPS.c.lease_until < now)),
                 select(STEPS.c.id).where(and_(STEPS.c.state == "pending", STEPS.c.due_at <= now))
                 .order_by(STEPS.c.due_at)]
        rows: list[Any] = []
        async with db.session() as s:
            for pick in picks:
                wanted = limit - len(rows)
                if wanted <= 0:
                    break
                pick = pick.limit(wanted)
                if not db.is_sqlite:
                    pick = pick.with_for_update(skip_locked=True)
                rows += (await s.execute(
                    update(STEPS).where(STEPS.c.id.in_(pick.scalar_subquery()))
                    .values(state="claimed", claimed_by=self.replica, attempts=STEPS.c.attempts + 1,
                            lease_until=now + timedelta(seconds=self.cfg.lease_s))
                    .returning(STEPS.c.id, STEPS.c.run_id, STEPS.c.step_key, STEPS.c.step_index, STEPS.c.version,
                               STEPS.c.occurrence, STEPS.c.due_at)
                )).all()
        return sorted((Claim(r.id, r.run_id, r.step_key, r.step_index, r.version, r.occurrence, r.due_at)
                       for r in rows), key=lambda c: (c.due_at, c.id))

    async def process(self, claimed: Sequence[Claim]) -> int:
        """Send (or record why not) what this replica still holds; returns the outbox rows written."""
        db = self.app.db
        now = self.app.clock.now()
        written = 0
        async with db.session() as s:
            mine = select(STEPS.c.id).where(and_(STEPS.c.id.in_([c.id for c in claimed]), STEPS.c.state == "claimed",
                                                 STEPS.c.claimed_by == self.replica))
            if not db.is_sqlite:
                mine = mine.with_for_update()
            held = set((await s.execute(mine)).scalars())
            if not held:
                return 0
            work = [c for c in claimed if c.id in held]
            runs = {r.id: r for r in (await s.execute(select(RUNS).where(
                RUNS.c.id.in_(sorted({c.run_id for c in work}))))).all()}
            batch = _Batch(self, s, now)
            for c in work:
                await batch.one(c, runs.get(c.run_id))
            written = await batch.flush()
            await self.engine.finish_runs(s, {c.run_id for c in work})
        if written:
            self.app.outbox_pump.kick()
        return written

    async def release(self) -> int:
        async with self.app.db.session() as s:
            res = await s.execute(update(STEPS).where(and_(STEPS.c.state == "claimed",
                                                          STEPS.c.claimed_by == self.replica))
                                  .values(state="pending", claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)


class _Batch:
    """One transaction's worth of occurrences: outcomes grouped into a few updates."""

    def __init__(self, pump: StepPump, session: Any, now: datetime) -> None:
        self.pump = pump
        self.app = pump.app
        self.engine = pump.engine
        self.s = session
        self.now = now
        self.outcomes: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self.next_rows: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.tallies: dict[tuple[str, str], dict[str, Any]] = {}

    def record(self, step_id: int, state: str, outcome: str, detail: str = "") -> None:
        self.outcomes[(state, outcome, detail[:500])].append(step_id)

    async def flush(self) -> int:
        """Write the outbox rows, the outcomes and the next occurrences; returns the outbox rows written."""
        written = await self.app.outbox.enqueue_many(self.s, self.deliveries) if self.deliveries else 0
        for (state, outcome, detail), ids in self.outcomes.items():
            for i in range(0, len(ids), 900):
                chunk = ids[i:i + 900]
                values: dict[str, Any] = {"state": state, "outcome": outcome, "detail": detail, "claimed_by": None,
                                          "lease_until": None}
                if state in ("done", "cancelled"):
                    values["done_at"] = self.now
                await self.s.execute(update(STEPS).where(STEPS.c.id.in_(chunk)).values(**values))
        if self.next_rows:
            stmt = insert_ignoring_conflicts(self.engine.dialect, STEPS, ["run_id", "step_key", "occurrence"])
            for i in range(0, len(self.next_rows), 500):
                await self.s.execute(stmt.values(self.next_rows[i:i + 500]))
        return written

    async def one(self, c: Claim, run: Any) -> None:
        if run is None:
            self.record(c.id, "cancelled", "error", "找不到这次运行")
            return
        if run.status == "paused":
            self.record(c.id, "paused", "")
            return
        if run.status != "running":
            self.record(c.id, "cancelled", "stopped", run.end_reason or "运行已结束")
            return
        script = await self.engine.version(self.s, run.script_id, c.version)
        step = script.steps[c.step_index] if script is not None and c.step_index < len(script.steps) else None
        if script is None or step is None or step.key != c.step_key:
            self.record(c.id, "done", "error", f"找不到脚本 {run.script_id} 版本 {c.version} 的这一步")
            return
        self._schedule_next(run, script, step, c)
        late = step.late or script.late
        verdict = late.verdict(c.due_at, self.now)
        if verdict == "late_skip":
            self.record(c.id, "done", "skipped_late", f"应在 {self._local(c.due_at)} 发送，超过宽限 "
                                                       f"{int(late.grace.total_seconds() // 60)} 分钟")
            return
        try:
            view = await self._view(run, script, step, c)
            ctx = view.context(self.engine.tz)
            if not self.engine.renderer.condition(step.when, ctx):
                self.record(c.id, "done", "skipped_when", step.when)
                return
            text = self.engine.renderer.text(step.source, ctx)
        except Exception as exc:
            log.warning("SOP run %s step %s failed to render: %s", run.id, step.key, exc)
            self.record(c.id, "done", "error", f"{type(exc).__name__}: {exc}")
            return
        outcome = "sent_late" if verdict == "late_send" else "sent"
        delivery = self._delivery(c, run, script, step, text)
        if isinstance(delivery, str):
            self.record(c.id, "done", delivery, WHY_NOT.get(delivery, OUTCOME_NAMES.get(delivery, delivery)))
            return
        self.deliveries.append(delivery)
        self.record(c.id, "done", outcome, f"迟了 {self._late_by(c.due_at)}" if outcome == "sent_late" else "")

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.engine.tz).strftime("%m-%d %H:%M")

    def _late_by(self, due: datetime) -> str:
        minutes = int((self.now - due).total_seconds() // 60)
        return f"{minutes // 60} 小时 {minutes % 60} 分钟" if minutes >= 60 else f"{minutes} 分钟"

    def _schedule_next(self, run: Any, script: Script, step: Step, c: Claim) -> None:
        if step.repeat is None or not step.repeat.allows(c.occurrence + 1):
            return
        nominal, due = self.engine.occurrence_times(script, step, run.anchor_at, c.occurrence + 1)
        self.next_rows.append(SopEngine._step_row(run.id, script, step, c.occurrence + 1, nominal, due))

    async def _view(self, run: Any, script: Script, step: Step, c: Claim) -> StepView:
        tz = self.engine.tz
        due_local = c.due_at.astimezone(tz)
        fallback = "大家" if run.per == "group" else "朋友"
        member: dict[str, Any] = {"id": run.member_id, "name": run.member_name or fallback}
        if run.member_id and needs_profile(step.source, step.when):
            cached = self.profiles.get(run.member_id)
            if cached is None:
                profile = await profile_of(self.app, self.s, Actor(id=run.member_id, name=run.member_name))
                cached = profile.for_template()
                self.profiles[run.member_id] = cached
            member = cached
        checkins = None
        if run.chat_id and needs_checkins(step.source):
            key = (run.chat_id, due_local.date().isoformat())
            checkins = self.tallies.get(key)
            if checkins is None:
                checkins = await tally(self.s, run.chat_id, due_local.date())
                self.tallies[key] = checkins
        anchor_local = run.anchor_at.astimezone(tz)
        return StepView(
            member=member,
            group={"id": run.chat_id, "name": run.chat_name or run.chat_id},
            staff={"id": run.staff_id},
            run={"id": run.id, "script": script.id, "name": script.name, "started_at": anchor_local,
                 "day": (due_local.date() - anchor_local.date()).days, "occurrence": c.occurrence + 1},
            step={"number": step.number, "stage": step.stage, "at": step.at.text, "key": step.key},
            trigger=dict(run.trigger or {}),
            due=due_local,
            checkins=checkins,
        )

    def _staff(self, run: Any, script: Script, step: Step) -> list[str]:
        return list(step.staff or script.staff or ([run.staff_id] if run.staff_id else [])
                    or self.app.config.sop.staff)

    def _delivery(self, c: Claim, run: Any, script: Script, step: Step, text: str) -> dict[str, Any] | str:
        """The outbox delivery of this occurrence; a string names why there can be none."""
        key = outbox_key(run.id, step.key, c.occurrence)
        kw: dict[str, Any] = {"key": key, "kind": step.via, "text": text, "source": f"sop:{run.id}"}
        dest: dict[str, Any] = {}
        payload: dict[str, Any] = {}
        if step.attachments:
            payload["attachments"] = [dict(a) for a in step.attachments]
        chat = {"id": run.chat_id, "type": "group", "name": run.chat_name} if run.chat_id else None
        via = step.via
        if via in ("reply", "group_robot", "appchat"):
            if chat is None:
                return "no_chat"
            kw["chat"] = chat
            if run.per == "member" and run.member_id:
                kw["to"] = [run.member_id]
                if step.mention if step.mention is not None else True:
                    dest["mention"] = [run.member_id]
        elif via == "mass_send":
            staff = self._staff(run, script, step)
            if not staff:
                return "no_staff"
            dest["sender"] = staff[0]
            if run.per == "member":
                if not run.member_id:
                    return "no_member"
                dest["external_userids"] = [run.member_id]
            elif chat is not None:
                dest["chat_ids"] = [run.chat_id]
            else:
                return "no_chat"
        elif via in ("remind_staff", "app_message"):
            staff = self._staff(run, script, step)
            if not staff:
                return "no_staff"
            kw["to"] = staff
            if via == "remind_staff":
                dest["about"] = {"member": run.member_id, "member_name": run.member_name, "chat": run.chat_id,
                                 "chat_name": run.chat_name}
                kw["text"] = self.app.templates.render(
                    "sop/remind_staff.j2", script=script, step=step, run=run, text=text,
                    target=run.member_name or run.member_id or run.chat_name or run.chat_id)
        elif via == "welcome":
            code = (run.trigger or {}).get("welcome_code", "")
            if not code:
                return "no_welcome_code"
            expires = run.anchor_at + WELCOME_WINDOW
            if self.now > expires:
                return "expired"
            dest["welcome_code"] = code
            if run.staff_id:
                dest["sender"] = run.staff_id
            kw["expires_at"] = expires
        elif via == "mark_tag":
            if not run.member_id:
                return "no_member"
            dest.update(userid=run.staff_id, external_userid=run.member_id)
            payload.update(add_tag=list(step.add_tag), remove_tag=list(step.remove_tag))
            kw["text"] = text or " ".join([*(f"+{t}" for t in step.add_tag), *(f"-{t}" for t in step.remove_tag)])
        if dest:
            kw["destination"] = dest
        if payload:
            kw["payload"] = payload
        return kw
