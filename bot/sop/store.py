"""Every SQL statement of SOP runs and the Moments calendar, in one place.

:class:`SopStore` holds runs (``sop_run``), their step occurrences (``sop_step``),
script versions (``sop_script_version``) and the surveys' answers (``sop_survey``;
:func:`nps_counts` and :func:`detractor_comments` are what the report reads of them); :class:`MomentsStore` the
calendar's posts (``moment_post``), the chat changes (``moment_override``) and
the date publishing started. Both take the session of the caller's transaction;
the few reads and claims that own their transaction say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select, update

from bot.masssend import claim_due
from bot.sop.models import MomentOverride, MomentPost, SopMassTask, SopRun, SopScriptVersion, SopStep, SopSurvey
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.models import KeyValue

if TYPE_CHECKING:
    from bot.storage.db import Database

RUNS = SopRun.__table__
STEPS = SopStep.__table__
VERSIONS = SopScriptVersion.__table__
SURVEYS = SopSurvey.__table__
MASS_TASKS = SopMassTask.__table__
POSTS = MomentPost.__table__
OVERRIDES = MomentOverride.__table__
KV = KeyValue.__table__

LIVE_RUN = ("running", "paused")
OPEN_STEP = ("pending", "claimed", "paused")
SINCE_KEY = "moments:since"
_CHUNK = 900          # ids per IN (…): below SQLite's variable limit
_ROWS = 500           # rows per multi-row insert


class SopStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        return str(self.db.dialect)

    # ── script versions ──

    async def save_version(self, s: Any, *, script_id: str, version: str, name: str, file: str,
                           body: dict[str, Any], at: datetime) -> None:
        await s.execute(insert_ignoring_conflicts(self.dialect, VERSIONS, ["script_id", "version"]).values(
            script_id=script_id, version=version, name=name, file=file, body=body, loaded_at=at))

    async def version_body(self, s: Any, script_id: str, version: str) -> dict[str, Any] | None:
        body = (await s.execute(select(VERSIONS.c.body).where(and_(
            VERSIONS.c.script_id == script_id, VERSIONS.c.version == version)))).scalar()
        return None if body is None else dict(body)

    # ── runs ──

    async def insert_run(self, s: Any, values: dict[str, Any]) -> int | None:
        """A new run; None when its ``active_key`` is taken (the subject already has a live run)."""
        run_id = (await s.execute(insert_ignoring_conflicts(self.dialect, RUNS, ["active_key"]).values(**values)
                                  .returning(RUNS.c.id))).scalar()
        return None if run_id is None else int(run_id)

    async def run(self, s: Any, run_id: int) -> Any:
        return (await s.execute(select(RUNS).where(RUNS.c.id == run_id))).first()

    async def runs_by_id(self, s: Any, run_ids: Iterable[int]) -> dict[int, Any]:
        return {r.id: r for r in (await s.execute(select(RUNS).where(RUNS.c.id.in_(sorted(set(run_ids)))))).all()}

    async def active_run_id(self, s: Any, active_key: str) -> int | None:
        return (await s.execute(select(RUNS.c.id).where(RUNS.c.active_key == active_key))).scalar()

    async def live_runs(self, s: Any, *, script_ids: Iterable[str] | None = None, member_id: str | None = None,
                        chat_id: str | None = None) -> list[Any]:
        q = select(RUNS).where(RUNS.c.status.in_(LIVE_RUN))
        if script_ids is not None:
            q = q.where(RUNS.c.script_id.in_(sorted(set(script_ids))))
        if member_id is not None:
            q = q.where(RUNS.c.member_id == member_id)
        if chat_id is not None:
            q = q.where(RUNS.c.chat_id == chat_id)
        return list((await s.execute(q.order_by(RUNS.c.id))).all())

    async def live_counts(self, s: Any) -> dict[str, int]:
        """Live (running or paused) runs per script id."""
        return dict((await s.execute(select(RUNS.c.script_id, func.count()).where(RUNS.c.status.in_(LIVE_RUN))
                                     .group_by(RUNS.c.script_id))).all())

    async def live_page(self, s: Any, chat_id: str | None, limit: int) -> tuple[int, list[Any]]:
        """(how many live runs, the newest ``limit`` of them), of one group or all."""
        q = select(RUNS).where(RUNS.c.status.in_(LIVE_RUN))
        if chat_id is not None:
            q = q.where(RUNS.c.chat_id == chat_id)
        total = (await s.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
        runs = (await s.execute(q.order_by(RUNS.c.id.desc()).limit(limit))).all()
        return int(total), list(runs)

    async def chat_of_runs(self, s: Any, chat_id: str) -> tuple[str, str] | None:
        """(chat id, chat name) a run was started for, when the group is known only from its runs."""
        row = (await s.execute(select(RUNS.c.chat_id, RUNS.c.chat_name).where(RUNS.c.chat_id == chat_id)
                               .limit(1))).first()
        return None if row is None else (row.chat_id, row.chat_name)

    async def stop_runs(self, s: Any, run_ids: Sequence[int], reason: str, now: datetime) -> int:
        """End live runs and cancel their open steps; how many runs stopped."""
        res = await s.execute(update(RUNS).where(and_(RUNS.c.id.in_(run_ids), RUNS.c.status.in_(LIVE_RUN)))
                              .values(status="stopped", active_key=None, ended_at=now, end_reason=reason[:500]))
        await s.execute(update(STEPS).where(and_(STEPS.c.run_id.in_(run_ids), STEPS.c.state.in_(OPEN_STEP)))
                        .values(state="cancelled", outcome="stopped", detail=reason[:500], done_at=now,
                                claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    async def pause_run(self, s: Any, run_id: int, now: datetime) -> bool:
        res = await s.execute(update(RUNS).where(and_(RUNS.c.id == run_id, RUNS.c.status == "running"))
                              .values(status="paused", paused_at=now))
        if not res.rowcount:
            return False
        await s.execute(update(STEPS).where(and_(STEPS.c.run_id == run_id, STEPS.c.state == "pending"))
                        .values(state="paused"))
        return True

    async def resume_run(self, s: Any, run_id: int) -> bool:
        res = await s.execute(update(RUNS).where(and_(RUNS.c.id == run_id, RUNS.c.status == "paused"))
                              .values(status="running", paused_at=None))
        if not res.rowcount:
            return False
        await s.execute(update(STEPS).where(and_(STEPS.c.run_id == run_id, STEPS.c.state == "paused"))
                        .values(state="pending"))
        return True

    async def set_run_version(self, s: Any, run_id: int, version: str, migrated_from: str) -> None:
        await s.execute(update(RUNS).where(RUNS.c.id == run_id).values(version=version, migrated_from=migrated_from))

    async def finish_runs(self, s: Any, run_ids: Sequence[int], now: datetime) -> None:
        """Running runs with no open step left are done."""
        open_steps = select(STEPS.c.id).where(and_(STEPS.c.run_id == RUNS.c.id, STEPS.c.state.in_(OPEN_STEP)))
        await s.execute(update(RUNS).where(and_(RUNS.c.id.in_(run_ids), RUNS.c.status == "running",
                                                ~exists(open_steps)))
                        .values(status="done", active_key=None, ended_at=now, end_reason="全部步骤已完成"))

    # ── step occurrences ──

    async def insert_steps(self, s: Any, rows: list[dict[str, Any]]) -> None:
        await s.execute(STEPS.insert(), rows)

    async def add_steps(self, s: Any, rows: list[dict[str, Any]]) -> None:
        """Insert occurrences, leaving out any (run, step, occurrence) that exists already."""
        stmt = insert_ignoring_conflicts(self.dialect, STEPS, ["run_id", "step_key", "occurrence"])
        for i in range(0, len(rows), _ROWS):
            await s.execute(stmt.values(rows[i:i + _ROWS]))

    async def steps_of(self, s: Any, run_id: int) -> list[Any]:
        return list((await s.execute(select(STEPS).where(STEPS.c.run_id == run_id)
                                     .order_by(STEPS.c.due_at, STEPS.c.id))).all())

    async def next_due(self) -> datetime | None:
        """When the earliest pending occurrence falls due (own read)."""
        async with self.db.read() as s:
            return (await s.execute(select(func.min(STEPS.c.due_at)).where(STEPS.c.state == "pending"))).scalar()

    async def runs_after(self, s: Any, run_id: int, limit: int) -> list[Any]:
        """The runs started after run ``run_id`` (the first ``limit``), each with its steps' count and the
        earliest due time of its pending ones."""
        steps = (select(STEPS.c.run_id, func.count().label("steps"),
                        func.min(STEPS.c.due_at).filter(STEPS.c.state == "pending").label("next_due"))
                 .where(STEPS.c.run_id > run_id).group_by(STEPS.c.run_id).subquery())
        return list((await s.execute(
            select(RUNS, steps.c.steps, steps.c.next_due).join(steps, steps.c.run_id == RUNS.c.id, isouter=True)
            .where(RUNS.c.id > run_id).order_by(RUNS.c.id).limit(limit))).all())

    async def held_steps(self, s: Any, now: datetime, limit: int) -> list[Any]:
        """Pending occurrences whose time has come but that wait for the end of the quiet hours."""
        return list((await s.execute(
            select(STEPS, RUNS.c.script_id).join(RUNS, RUNS.c.id == STEPS.c.run_id)
            .where(and_(STEPS.c.state == "pending", STEPS.c.nominal_at <= now, STEPS.c.due_at > now))
            .order_by(STEPS.c.due_at, STEPS.c.id).limit(limit))).all())

    async def finished_since(self, s: Any, since: datetime, limit: int) -> list[Any]:
        """Occurrences finished at or after ``since`` without being sent (skipped, no chat, an error …)."""
        return list((await s.execute(
            select(STEPS, RUNS.c.script_id).join(RUNS, RUNS.c.id == STEPS.c.run_id)
            .where(and_(STEPS.c.done_at >= since, STEPS.c.outcome.not_in(("sent", "sent_late", ""))))
            .order_by(STEPS.c.done_at, STEPS.c.id).limit(limit))).all())

    async def set_steps(self, s: Any, step_ids: Sequence[int], values: dict[str, Any]) -> None:
        for i in range(0, len(step_ids), _CHUNK):
            await s.execute(update(STEPS).where(STEPS.c.id.in_(step_ids[i:i + _CHUNK])).values(**values))

    async def progress_rows(self, s: Any, run_ids: Sequence[int]) -> list[tuple[int, str, int, datetime]]:
        """(run id, step state, occurrences, first due time) per run and state."""
        return [tuple(r) for r in (await s.execute(
            select(STEPS.c.run_id, STEPS.c.state, func.count(), func.min(STEPS.c.due_at))
            .where(STEPS.c.run_id.in_(list(run_ids))).group_by(STEPS.c.run_id, STEPS.c.state))).all()]

    async def claim(self, replica: str, limit: int, now: datetime, lease: timedelta) -> list[Any]:
        """Lease up to ``limit`` due occurrences (own transaction): first those whose lease ran out, then the
        pending ones by due time. ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer."""
        # Two plain conditions rather than one OR, so each walks ix_sop_step_state_due in order.
        picks = [select(STEPS.c.id).where(and_(STEPS.c.state == "claimed", STEPS.c.lease_until < now)),
                 select(STEPS.c.id).where(and_(STEPS.c.state == "pending", STEPS.c.due_at <= now))
                 .order_by(STEPS.c.due_at)]
        rows: list[Any] = []
        async with self.db.session() as s:
            for pick in picks:
                wanted = limit - len(rows)
                if wanted <= 0:
                    break
                pick = pick.limit(wanted)
                if not self.db.is_sqlite:
                    pick = pick.with_for_update(skip_locked=True)
                rows += (await s.execute(
                    update(STEPS).where(STEPS.c.id.in_(pick.scalar_subquery()))
                    .values(state="claimed", claimed_by=replica, attempts=STEPS.c.attempts + 1,
                            lease_until=now + lease)
                    .returning(STEPS.c.id, STEPS.c.run_id, STEPS.c.step_key, STEPS.c.step_index, STEPS.c.version,
                               STEPS.c.occurrence, STEPS.c.due_at)
                )).all()
        return rows

    async def still_held(self, s: Any, step_ids: Sequence[int], replica: str) -> set[int]:
        """Which of ``step_ids`` this replica still holds (locked on PostgreSQL until the commit)."""
        mine = select(STEPS.c.id).where(and_(STEPS.c.id.in_(list(step_ids)), STEPS.c.state == "claimed",
                                             STEPS.c.claimed_by == replica))
        if not self.db.is_sqlite:
            mine = mine.with_for_update()
        return set((await s.execute(mine)).scalars())

    async def claim_same_day(self, s: Any, replica: str, script_id: str, step_key: str, version: str,
                             before: datetime, lease_until: datetime) -> list[Any]:
        """Lease, in the caller's transaction, the pending occurrences of one step of one script version in
        member runs due before ``before`` (the end of their local day): they join that day's 群发 task."""
        pick = (select(STEPS.c.id).join(RUNS, RUNS.c.id == STEPS.c.run_id)
                .where(and_(STEPS.c.state == "pending", STEPS.c.step_key == step_key, STEPS.c.version == version,
                            STEPS.c.due_at < before, RUNS.c.script_id == script_id, RUNS.c.per == "member")))
        if not self.db.is_sqlite:
            pick = pick.with_for_update(of=STEPS, skip_locked=True)
        return list((await s.execute(
            update(STEPS).where(STEPS.c.id.in_(pick.scalar_subquery()))
            .values(state="claimed", claimed_by=replica, attempts=STEPS.c.attempts + 1, lease_until=lease_until)
            .returning(STEPS.c.id, STEPS.c.run_id, STEPS.c.step_key, STEPS.c.step_index, STEPS.c.version,
                       STEPS.c.occurrence, STEPS.c.due_at))).all())

    async def add_mass_tasks(self, s: Any, rows: list[dict[str, Any]]) -> None:
        """Record merged 群发 tasks, leaving out any whose outbox key is recorded already."""
        stmt = insert_ignoring_conflicts(self.dialect, MASS_TASKS, ["outbox_key"])
        for i in range(0, len(rows), _ROWS):
            await s.execute(stmt.values(rows[i:i + _ROWS]))

    async def release(self, replica: str) -> int:
        """Hand back every occurrence this replica holds (own transaction)."""
        async with self.db.session() as s:
            res = await s.execute(update(STEPS).where(and_(STEPS.c.state == "claimed", STEPS.c.claimed_by == replica))
                                  .values(state="pending", claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    # ── surveys ──

    async def add_surveys(self, s: Any, rows: list[dict[str, Any]]) -> None:
        """Record surveys sent, leaving out any (run, step, occurrence) recorded already."""
        stmt = insert_ignoring_conflicts(self.dialect, SURVEYS, ["run_id", "step_key", "occurrence"])
        for i in range(0, len(rows), _ROWS):
            await s.execute(stmt.values(rows[i:i + _ROWS]))

    async def open_survey(self, s: Any, member_id: str, now: datetime) -> Any:
        """The member's latest survey still waiting for a reply at ``now`` (a score, or a detractor's comment)."""
        return (await s.execute(select(SURVEYS).where(and_(SURVEYS.c.member_id == member_id,
                                                           SURVEYS.c.open_until > now))
                                .order_by(SURVEYS.c.asked_at.desc(), SURVEYS.c.id.desc()).limit(1))).first()

    async def set_survey(self, s: Any, survey_id: int, values: dict[str, Any]) -> None:
        await s.execute(update(SURVEYS).where(SURVEYS.c.id == survey_id).values(**values))


def _answered(start: datetime, end: datetime, chat_id: str | None) -> Any:
    cond = and_(SURVEYS.c.score.is_not(None), SURVEYS.c.answered_at >= start, SURVEYS.c.answered_at < end)
    return cond if chat_id is None else and_(cond, SURVEYS.c.chat_id == chat_id)


async def nps_counts(s: Any, start: datetime, end: datetime, chat_id: str | None = None) -> dict[str, int]:
    """Scores answered in [start, end) (of one group's runs, or all): promoters 9–10, passives 7–8, detractors 0–6."""
    rows = (await s.execute(select(SURVEYS.c.score, func.count()).where(_answered(start, end, chat_id))
                            .group_by(SURVEYS.c.score))).all()
    out = {"promoters": 0, "passives": 0, "detractors": 0}
    for score, n in rows:
        out["promoters" if score >= 9 else "passives" if score >= 7 else "detractors"] += int(n)
    return out


async def detractor_comments(s: Any, start: datetime, end: datetime, limit: int) -> list[Any]:
    """The latest detractors (0–6) answered in [start, end): member, score, comment (may be empty), times."""
    return list((await s.execute(
        select(SURVEYS.c.member_id, SURVEYS.c.member_name, SURVEYS.c.script_id, SURVEYS.c.score,
               SURVEYS.c.comment, SURVEYS.c.answered_at, SURVEYS.c.commented_at)
        .where(and_(_answered(start, end, None), SURVEYS.c.score <= 6))
        .order_by(SURVEYS.c.answered_at.desc(), SURVEYS.c.id.desc()).limit(limit))).all())


class MomentsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def active_changes(self, s: Any) -> list[Any]:
        return list((await s.execute(select(OVERRIDES).where(OVERRIDES.c.active.is_(True)))).all())

    async def all_changes(self, s: Any) -> list[Any]:
        return list((await s.execute(select(OVERRIDES))).all())

    async def posts(self, s: Any, days: Sequence[date]) -> dict[tuple[str, str], Any]:
        """The posts of ``days`` by (ISO date, slot id)."""
        rows = (await s.execute(select(POSTS).where(POSTS.c.date.in_([d.isoformat() for d in days])))).all()
        return {(r.date, r.slot_id): r for r in rows}

    async def put_change(self, s: Any, key: str, values: dict[str, Any]) -> None:
        """Insert or replace the chat change ``key`` (skip / set / approve)."""
        await s.execute(insert_ignoring_conflicts(self.db.dialect, OVERRIDES, ["key"]).values(key=key, **values))
        await s.execute(update(OVERRIDES).where(OVERRIDES.c.key == key).values(**values))

    async def drop_change(self, s: Any, key: str, actor: str, at: datetime) -> bool:
        """Deactivate the active chat change ``key``; False when there is none."""
        res = await s.execute(update(OVERRIDES).where(OVERRIDES.c.key == key, OVERRIDES.c.active.is_(True))
                              .values(active=False, actor=actor, at=at))
        return bool(res.rowcount)

    async def started_at(self, now: datetime) -> datetime:
        """When this database first published (own transaction; recorded the first time)."""
        async with self.db.session() as s:
            await s.execute(insert_ignoring_conflicts(self.db.dialect, KV, ["key"]).values(
                key=SINCE_KEY, value=now.isoformat(), updated_at=now))
            value = (await s.execute(select(KV.c.value).where(KV.c.key == SINCE_KEY))).scalar()
        return datetime.fromisoformat(str(value))

    async def add_post(self, s: Any, values: dict[str, Any]) -> bool:
        """Record one slot of one date; False when it was recorded already."""
        row = (await s.execute(insert_ignoring_conflicts(self.db.dialect, POSTS, ["date", "slot_id"])
                               .values(**values).returning(POSTS.c.id))).first()
        return row is not None

    async def claim_polls(self, now: datetime, interval: timedelta, limit: int = 50
                          ) -> tuple[list[Any], dict[str, Any]]:
        """Take the queued posts due for a look (own transaction; next look moved on by ``interval``), and the
        outbox rows of their deliveries by key."""
        return await claim_due(self.db, POSTS, now + interval, now, limit)

    async def update_posts(self, updates: list[tuple[int, dict[str, Any]]], now: datetime) -> None:
        """Write what polling found (own transaction)."""
        async with self.db.session() as s:
            for post_id, values in updates:
                await s.execute(update(POSTS).where(POSTS.c.id == post_id).values(**values, updated_at=now))
