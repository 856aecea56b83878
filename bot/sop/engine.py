"""The SOP engine: runs, their step occurrences, and the pump that sends what is due.

A run is started (by a trigger event or ``/sop start``) on the script version
that is live at that moment; the version's body is stored, the run's steps are
materialised as ``sop_step`` rows with their due times (quiet hours already
applied), and from then on the database is the schedule. :class:`StepPump`
claims due occurrences with a lease, and in a second transaction — guarded by
the claim, so a replica whose lease ran out and was taken over changes nothing —
hands each to :meth:`StepBatch.send_step`, **where a step is sent**: the late
rule, the ``when:`` condition, the text, and the outbox row under the key
``sop:<run>:<step>:<occurrence>`` (a member run's ``mass_send`` joins the day's 群发 task of its
staff member instead: bot.sop.mass). A repeating step gets its next occurrence in
that same transaction; a run with nothing left is done. Every statement is in
bot.sop.store.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from bot.effects import Effects
from bot.events import Actor
from bot.members import MEMBERS, profile_of
from bot.pump import Pump
from bot.sop.checkins import tally
from bot.sop.mass import QUEUED_DETAIL, MassMerge
from bot.sop.render import Renderer, StepView, needs_checkins, needs_profile
from bot.sop.script import WELCOME_WINDOW, Script, Step
from bot.sop.store import OPEN_STEP, SopStore
from bot.sop.survey import Surveys
from bot.sop.timing import due_time
from bot.storage.keys import bounded_key

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.sop.files import ScriptFiles

log = logging.getLogger("siyu.sop")

OUTCOME_NAMES = {
    "sent": "已发送", "sent_late": "迟发", "skipped_late": "超时跳过", "skipped_when": "条件不满足",
    "skipped_migrated": "迁移时已过期", "no_chat": "没有群", "no_staff": "没有员工", "no_member": "没有成员",
    "no_welcome_code": "没有欢迎语码", "expired": "欢迎语码过期", "error": "出错", "stopped": "已停止",
    "migrated": "迁移后不再需要", "external": "外部联系人没有群", "mass_failed": "群发失败",
    "unconfirmed": "员工未确认群发",
}
WHY_NOT = {
    "no_chat": "这次运行没有群，群内消息发不出去",
    "no_staff": "不知道发给哪位员工：在脚本或步骤里写 staff，或用 /group owner 设置群负责人，或配置 sop.staff",
    "no_member": "这次运行没有成员",
    "no_welcome_code": "添加好友事件里没有欢迎语码（WelcomeCode）",
    "expired": "欢迎语码只在添加好友后 20 秒内有效，已经过期",
    "external": "外部联系人收不到应用私聊，这次运行也没有群可以问：满意度调查问外部联系人要在群里",
}
STATE_NAMES = {"pending": "待发送", "claimed": "发送中", "paused": "已暂停", "done": "已完成", "cancelled": "已取消"}
RUN_STATES = {"running": "运行中", "paused": "已暂停", "stopped": "已停止", "done": "已完成"}


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
        return bounded_key(f"{script_id}|{self.per}|{self.chat_id}|{who}", 255)

    @property
    def display(self) -> str:
        if self.per == "group":
            return self.chat_name or self.chat_id
        who = self.member_name or self.member_id
        return f"{who}@{self.chat_name or self.chat_id}" if self.chat_id else who

    @classmethod
    def of_run(cls, run: Any) -> Subject:
        return cls(per=run.per, chat_id=run.chat_id, chat_name=run.chat_name, member_id=run.member_id,
                   member_name=run.member_name)


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
    """Runs: start, stop, pause, resume, migrate, and the script versions they run on."""

    def __init__(self, app: BotApp, files: ScriptFiles, store: SopStore) -> None:
        self.app = app
        self.files = files
        self.store = store
        self.tz = app.config.bot.tz
        self.renderer = Renderer(app.templates, self.tz)
        self.surveys = Surveys(app, store)
        self._versions: dict[tuple[str, str], Script] = {}

    @property
    def scripts(self) -> dict[str, Script]:
        return self.files.scripts

    # ── versions ──

    async def ensure_version(self, session: Any, script: Script) -> None:
        self._versions[(script.id, script.version)] = script
        await self.store.save_version(session, script_id=script.id, version=script.version, name=script.name,
                                      file=script.file, body=script.body, at=self.app.clock.now())

    async def version(self, session: Any, script_id: str, version: str) -> Script | None:
        key = (script_id, version)
        found = self._versions.get(key)
        if found is None:
            live = self.scripts.get(script_id)
            if live is not None and live.version == version:
                found = live
            else:
                body = await self.store.version_body(session, script_id, version)
                if body is None:
                    return None
                found = Script.from_body(body)
            self._versions[key] = found
        return found

    # ── starting, stopping, pausing ──

    def occurrence_times(self, script: Script, step: Step, anchor: datetime, n: int) -> tuple[datetime, datetime]:
        """(nominal, due) of occurrence ``n``: due is nominal moved out of the script's quiet hours."""
        return due_time(step.at, anchor, self.tz, step.repeat, n, script.quiet_for(step))

    async def start(self, session: Any, script: Script, subject: Subject, *, anchor: datetime, started_by: str
                    ) -> int | None:
        """Start a run and materialise its steps; None if this subject already has a live run of the script."""
        await self.ensure_version(session, script)
        now = self.app.clock.now()
        run_id = await self.store.insert_run(session, dict(
            script_id=script.id, version=script.version, per=subject.per, status="running",
            active_key=subject.active_key(script.id), chat_id=subject.chat_id, chat_name=subject.chat_name[:200],
            member_id=subject.member_id, member_name=subject.member_name[:128], staff_id=subject.staff_id,
            trigger=subject.trigger, started_by=started_by[:255], anchor_at=anchor, created_at=now, end_reason="",
            migrated_from=""))
        if run_id is None:
            return None
        rows = []
        for step in script.steps:
            nominal, due = self.occurrence_times(script, step, anchor, 0)
            rows.append(self._step_row(run_id, script, step, 0, nominal, due))
        await self.store.insert_steps(session, rows)
        log.info("SOP run %s started: %s v%s for %s (%d steps)", run_id, script.id, script.version,
                 subject.display, len(rows))
        return run_id

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
        return await self.store.stop_runs(session, ids, reason, self.app.clock.now())

    async def pause(self, session: Any, run_id: int) -> bool:
        return await self.store.pause_run(session, run_id, self.app.clock.now())

    async def resume(self, session: Any, run_id: int) -> bool:
        return await self.store.resume_run(session, run_id)

    async def live_runs(self, session: Any, *, script_ids: Iterable[str] | None = None, member_id: str | None = None,
                        chat_id: str | None = None) -> list[Any]:
        return await self.store.live_runs(session, script_ids=script_ids, member_id=member_id, chat_id=chat_id)

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
        by_key: dict[str, list[Any]] = defaultdict(list)
        for r in await self.store.steps_of(session, run.id):
            by_key[r.step_key].append(r)
        new_keys = {s.key for s in script.steps}
        open_state = "paused" if run.status == "paused" else "pending"
        for key, occ in by_key.items():
            ids = [r.id for r in occ if r.state in OPEN_STEP]
            if key not in new_keys and ids:
                await self.store.set_steps(session, ids, dict(
                    state="cancelled", outcome="migrated", detail=f"新版本 {script.version} 没有这一步", done_at=now,
                    claimed_by=None, lease_until=None))
                counts["dropped"] += len(ids)
        for step in script.steps:
            occ = by_key.get(step.key, [])
            live = [r for r in occ if r.state in OPEN_STEP]
            if live:
                for r in live:
                    counts[await self._retime(session, run, script, step, r, open_state, now)] += 1
                continue
            done = [r.occurrence for r in occ if r.state == "done"]
            if done and step.repeat is None:
                continue
            n = self._next_occurrence(run, script, step, max(done) + 1 if done else 0, now)
            if n is None:
                continue
            nominal, due = self.occurrence_times(script, step, run.anchor_at, n)
            if due < now:
                row = self._step_row(run.id, script, step, n, nominal, due, state="done")
                row.update(outcome="skipped_migrated", detail="迁移到新版本时这一步已经过了", done_at=now)
                counts["skipped"] += 1
            else:
                row = self._step_row(run.id, script, step, n, nominal, due, state=open_state)
                counts["added"] += 1
            await self.store.add_steps(session, [row])
        await self.store.set_run_version(session, run.id, script.version, run.version)
        await self.finish_runs(session, [run.id])
        return counts

    async def _retime(self, session: Any, run: Any, script: Script, step: Step, r: Any, open_state: str,
                      now: datetime) -> str:
        """An open occurrence on the new timing: "rescheduled", or "skipped" when its new time has passed."""
        nominal, due = self.occurrence_times(script, step, run.anchor_at, r.occurrence)
        values: dict[str, Any] = {"step_index": step.index, "version": script.version, "nominal_at": nominal,
                                  "due_at": due, "claimed_by": None, "lease_until": None}
        if due < now:
            values.update(state="done", outcome="skipped_migrated", done_at=now, detail="迁移到新版本时这一次已经过了")
        else:
            values["state"] = open_state
        await self.store.set_steps(session, [r.id], values)
        return "skipped" if due < now else "rescheduled"

    def _next_occurrence(self, run: Any, script: Script, step: Step, n: int, now: datetime) -> int | None:
        """The first occurrence from ``n`` not already past (a one-off step: ``n``); None when none is left."""
        while True:
            if step.repeat is not None and not step.repeat.allows(n):
                return None
            _, due = self.occurrence_times(script, step, run.anchor_at, n)
            if due >= now or step.repeat is None:
                return n
            n += 1

    async def finish_runs(self, session: Any, run_ids: Iterable[int]) -> None:
        """Runs with no open step left are done."""
        ids = sorted(set(run_ids))
        if ids:
            await self.store.finish_runs(session, ids, self.app.clock.now())

    # ── reading ──

    async def progress(self, session: Any, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Per run: done and total occurrences so far, and the next due time."""
        if not run_ids:
            return {}
        out: dict[int, dict[str, Any]] = {rid: {"done": 0, "total": 0, "next": None} for rid in run_ids}
        for run_id, state, n, first_due in await self.store.progress_rows(session, run_ids):
            p = out[run_id]
            if state != "cancelled":
                p["total"] += n
            if state == "done":
                p["done"] += n
            if state in OPEN_STEP and (p["next"] is None or first_due < p["next"]):
                p["next"] = first_due
        return out


class StepPump(Pump):
    """Claims due step occurrences and hands each to :meth:`StepBatch.send_step`."""

    name = "sop-steps"

    def __init__(self, app: BotApp, engine: SopEngine) -> None:
        super().__init__()
        self.app = app
        self.engine = engine
        self.store = engine.store
        self.cfg = app.config.sop
        self.replica = app.replica

    async def drain_once(self) -> int:
        claimed = await self.claim(self.cfg.poll_batch)
        if not claimed:
            return 0
        await self.process(claimed)
        return len(claimed)

    async def next_due(self) -> datetime | None:
        return await self.store.next_due()

    async def claim(self, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due occurrences: first those whose lease ran out, then the pending ones."""
        rows = await self.store.claim(self.replica, limit, self.app.clock.now(), timedelta(seconds=self.cfg.lease_s))
        return sorted((Claim(r.id, r.run_id, r.step_key, r.step_index, r.version, r.occurrence, r.due_at)
                       for r in rows), key=lambda c: (c.due_at, c.id))

    async def process(self, claimed: Sequence[Claim]) -> int:
        """Send (or record why not) what this replica still holds; returns the outbox rows written."""
        now = self.app.clock.now()
        async with self.app.db.session() as s:
            held = await self.store.still_held(s, [c.id for c in claimed], self.replica)
            if not held:
                return 0
            work = [c for c in claimed if c.id in held]
            runs = await self.store.runs_by_id(s, {c.run_id for c in work})
            more = await self._same_day(s, work, runs, now)
            if more:
                work += more
                runs.update(await self.store.runs_by_id(s, {c.run_id for c in more} - set(runs)))
            fx = Effects(self.app, s, source="sop:steps")
            batch = StepBatch(self, fx, now)
            for c in work:
                await batch.send_step(c, runs.get(c.run_id))
            written = await batch.flush()
            await self.engine.finish_runs(s, {c.run_id for c in work})
        fx.kick()
        return written

    async def _same_day(self, s: Any, work: Sequence[Claim], runs: dict[int, Any], now: datetime) -> list[Claim]:
        """The pending occurrences due later the same local day of the ``mass_send`` steps of member runs in
        ``work``: they go into the same 群发 task (bot.sop.mass)."""
        tz, seen, more = self.engine.tz, set(), []
        for c in work:
            run = runs.get(c.run_id)
            day = c.due_at.astimezone(tz).date()
            key = (getattr(run, "script_id", ""), c.step_key, c.version, day)
            if run is None or run.per != "member" or key in seen:
                continue
            seen.add(key)
            script = await self.engine.version(s, run.script_id, c.version)
            step = script.steps[c.step_index] if script is not None and c.step_index < len(script.steps) else None
            if step is None or step.key != c.step_key or step.via != "mass_send":
                continue
            day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            rows = await self.store.claim_same_day(s, self.replica, run.script_id, c.step_key, c.version, day_end,
                                                   now + timedelta(seconds=self.cfg.lease_s))
            more += [Claim(r.id, r.run_id, r.step_key, r.step_index, r.version, r.occurrence, r.due_at) for r in rows]
        return more

    async def release(self) -> int:
        return await self.store.release(self.replica)


class StepBatch:
    """One transaction's worth of occurrences: outcomes grouped into a few updates, deliveries into one insert."""

    def __init__(self, pump: StepPump, fx: Effects, now: datetime) -> None:
        self.pump = pump
        self.app = pump.app
        self.engine = pump.engine
        self.store = pump.store
        self.fx = fx
        self.s = fx.session
        self.now = now
        self.outcomes: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self.next_rows: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.surveys: list[dict[str, Any]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.tallies: dict[tuple[str, str], dict[str, Any]] = {}
        self.merge = MassMerge(self.engine.tz, timedelta(seconds=self.app.config.sop.mass_poll_after_s))

    def record(self, step_id: int, state: str, outcome: str, detail: str = "") -> None:
        self.outcomes[(state, outcome, detail[:500])].append(step_id)

    async def flush(self) -> int:
        """Write the outbox rows (the merged 群发 tasks too), the outcomes and the next occurrences; returns the
        outbox rows written."""
        tasks, task_rows = self.merge.tasks(self.now)
        written = await self.fx.send_many(self.deliveries + tasks)
        if task_rows:
            await self.store.add_mass_tasks(self.s, task_rows)
        for (state, outcome, detail), ids in self.outcomes.items():
            values: dict[str, Any] = {"state": state, "outcome": outcome, "detail": detail, "claimed_by": None,
                                      "lease_until": None}
            if state in ("done", "cancelled"):
                values["done_at"] = self.now
            await self.store.set_steps(self.s, ids, values)
        if self.next_rows:
            await self.store.add_steps(self.s, self.next_rows)
        if self.surveys:
            await self.store.add_surveys(self.s, self.surveys)
        return written

    async def send_step(self, c: Claim, run: Any) -> None:
        """Where an SOP step is sent: one claimed occurrence becomes an outbox delivery, or an outcome saying why not.

        - Quiet hours were applied when the occurrence was scheduled (its ``due_at``, see
          :meth:`SopEngine.occurrence_times`); a welcome or a tagging step is never held back.
        - A paused run keeps the occurrence paused; a stopped or finished run cancels it.
        - A repeating step gets its next occurrence scheduled first, whatever happens to this one.
        - Late: past the step's (else the script's) ``late.grace`` the occurrence is sent late
          (``sent_late``) or skipped (``skipped_late``) as ``late.then`` says.
        - ``when:`` is evaluated and the text rendered with the member's profile and the group's check-ins
          (through the member directory) only when the step uses them.
        - ``via`` decides the delivery kind and destination (:meth:`delivery_for`): ``reply`` /
          ``group_robot`` / ``appchat`` into the run's group, ``mass_send`` by a staff member,
          ``remind_staff`` / ``app_message`` to the staff, ``welcome`` with the contact's welcome code,
          ``mark_tag`` on the member, ``survey`` 1:1 to the member (recorded in ``sop_survey``, whose
          answer bot.sop.survey reads).
        - Idempotency: the outbox key is ``sop:<run>:<step>:<occurrence>``, so an occurrence that is
          processed twice (a lease taken over) is enqueued once.
        - A ``mass_send`` of a member run is not sent alone: the batch merges the same day's occurrences of the
          step with the same text and staff member into one 群发 task (bot.sop.mass, keyed by the task).
        """
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
            reason = self.engine.renderer.text(step.reason, ctx) if step.via == "survey" else ""
        except Exception as exc:
            log.warning("SOP run %s step %s failed to render: %s", run.id, step.key, exc)
            self.record(c.id, "done", "error", f"{type(exc).__name__}: {exc}")
            return
        outcome = "sent_late" if verdict == "late_send" else "sent"
        delivery = self.delivery_for(c, run, script, step, text)
        if isinstance(delivery, str):
            self.record(c.id, "done", delivery, WHY_NOT.get(delivery, OUTCOME_NAMES.get(delivery, delivery)))
            return
        late = f"迟了 {self._late_by(c.due_at)}" if outcome == "sent_late" else ""
        if step.via == "mass_send" and run.per == "member":
            self.merge.add(script.id, step.key, c.due_at, delivery, c.id)
            self.record(c.id, "done", outcome, "，".join(x for x in (late, QUEUED_DETAIL) if x))
            return
        self.deliveries.append(delivery)
        if step.via == "survey":
            self.surveys.append(self._survey(c, run, script, step, reason, delivery["chat"]["id"]))
        self.record(c.id, "done", outcome, late)

    def _survey(self, c: Claim, run: Any, script: Script, step: Step, reason: str, asked_in: str
                ) -> dict[str, Any]:
        """The ``sop_survey`` row of a survey sent: its answer is awaited for the step's window from now."""
        window = step.window or self.engine.surveys.default_window
        return {"run_id": run.id, "step_key": step.key, "occurrence": c.occurrence, "script_id": script.id,
                "member_id": run.member_id, "member_name": run.member_name, "chat_id": run.chat_id,
                "asked_in": asked_in, "state": "asked", "reason": reason, "window_s": int(window.total_seconds()),
                "asked_at": self.now, "open_until": self.now + window}

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
                checkins = await tally(self.app.maybe(MEMBERS), self.s, run.chat_id, due_local.date())
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

    def delivery_for(self, c: Claim, run: Any, script: Script, step: Step, text: str) -> dict[str, Any] | str:
        """The outbox delivery of this occurrence (kind = ``via``); a string names why there can be none."""
        d = _Delivery(kw={"key": outbox_key(run.id, step.key, c.occurrence), "kind": step.via, "text": text,
                          "source": f"sop:{run.id}"})
        if step.attachments:
            d.payload["attachments"] = [dict(a) for a in step.attachments]
        route = {"reply": self._in_group, "group_robot": self._in_group, "appchat": self._in_group,
                 "mass_send": self._mass_send, "remind_staff": self._to_staff, "app_message": self._to_staff,
                 "welcome": self._welcome, "mark_tag": self._mark_tag, "survey": self._survey_question}.get(step.via)
        why = route(d, run, script, step) if route is not None else ""
        return why or d.finish()

    def _in_group(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``reply`` / ``group_robot`` / ``appchat``: into the run's group, @-mentioning its member by default."""
        if not run.chat_id:
            return "no_chat"
        d.kw["chat"] = {"id": run.chat_id, "type": "group", "name": run.chat_name}
        if run.per == "member" and run.member_id:
            d.kw["to"] = [run.member_id]
            if step.mention if step.mention is not None else True:
                d.dest["mention"] = [run.member_id]
        return ""

    def _survey_question(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``survey``: the question 1:1 to the run's member (a reply in their own chat: an app message); an
        external contact, whom app messages do not reach, is asked in the run's group with a mention."""
        if not run.member_id:
            return "no_member"
        d.kw["kind"] = "reply"
        if not Actor(id=run.member_id).is_external:
            d.kw.update(to=[run.member_id], chat={"id": run.member_id, "type": "single", "name": run.member_name})
            return ""
        return "external" if not run.chat_id else self._in_group(d, run, script, step)

    def _mass_send(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``mass_send``: a task for the first staff member, to the member or to the group."""
        staff = self._staff(run, script, step)
        if not staff:
            return "no_staff"
        d.dest["sender"] = staff[0]
        if run.per == "member":
            if not run.member_id:
                return "no_member"
            d.dest["external_userids"] = [run.member_id]
        elif run.chat_id:
            d.dest["chat_ids"] = [run.chat_id]
        else:
            return "no_chat"
        return ""

    def _to_staff(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``remind_staff`` (the text wrapped in a reminder of whom it is for) / ``app_message``: to the staff."""
        staff = self._staff(run, script, step)
        if not staff:
            return "no_staff"
        d.kw["to"] = staff
        if step.via == "remind_staff":
            d.dest["about"] = {"member": run.member_id, "member_name": run.member_name, "chat": run.chat_id,
                               "chat_name": run.chat_name}
            d.kw["text"] = self.app.templates.render(
                "sop/remind_staff.j2", script=script, step=step, run=run, text=d.kw["text"],
                target=run.member_name or run.member_id or run.chat_name or run.chat_id)
        return ""

    def _welcome(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``welcome``: with the contact's welcome code, valid for 20 seconds after the contact was added."""
        code = (run.trigger or {}).get("welcome_code", "")
        if not code:
            return "no_welcome_code"
        expires = run.anchor_at + WELCOME_WINDOW
        if self.now > expires:
            return "expired"
        d.dest["welcome_code"] = code
        if run.staff_id:
            d.dest["sender"] = run.staff_id
        d.kw["expires_at"] = expires
        return ""

    def _mark_tag(self, d: _Delivery, run: Any, script: Script, step: Step) -> str:
        """``mark_tag``: tags added to and removed from the member, by the run's staff member."""
        if not run.member_id:
            return "no_member"
        d.dest.update(userid=run.staff_id, external_userid=run.member_id)
        d.payload.update(add_tag=list(step.add_tag), remove_tag=list(step.remove_tag))
        d.kw["text"] = d.kw["text"] or " ".join([*(f"+{t}" for t in step.add_tag),
                                                 *(f"-{t}" for t in step.remove_tag)])
        return ""


@dataclass(slots=True)
class _Delivery:
    """An outbox delivery being put together: its arguments, destination and payload."""

    kw: dict[str, Any]
    dest: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> dict[str, Any]:
        if self.dest:
            self.kw["destination"] = self.dest
        if self.payload:
            self.kw["payload"] = self.payload
        return self.kw
