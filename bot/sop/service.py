"""What the SOP handlers do: start runs on events, stop them, and the operators' /sop commands.

Members and groups come from the member directory (bot.members) when the tiers
feature provides one; without it a run knows only what the event says (no group
owner, no member profile).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.commands import CommandError
from bot.events import EXTERNAL_PREFIXES, Actor, Chat, MemberSilent
from bot.members import MEMBERS, GroupInfo, MemberDirectory, MemberProfile, profile_of
from bot.sop.engine import OUTCOME_NAMES, RUN_STATES, SopEngine, StepPump, Subject
from bot.sop.preview import PreviewItem, timeline
from bot.sop.timing import WEEKDAY_CN
from bot.watched import Refresh

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.effects import Effects
    from bot.sop.files import ScriptFiles
    from bot.sop.script import Script
    from bot.sop.survey import Surveys

log = logging.getLogger("siyu.sop")

HERE = ("本群", "here", ".", "当前群")
SILENT_WINDOW = timedelta(days=2)  # a silence that reached N days this long ago is still found (a missed day)


@dataclass(frozen=True, slots=True)
class Started:
    """What ``/sop start`` did: the run (or the one already running) for the subject."""

    subject: Subject
    run_id: int | None
    existing: int | None = None


class SopService:
    """The SOP feature's use cases (``ctx.get(SOP)``): the engine, the script files and the step pump."""

    def __init__(self, app: BotApp, files: ScriptFiles, engine: SopEngine, pump: StepPump) -> None:
        self.app = app
        self.files = files
        self.engine = engine
        self.pump = pump
        self.store = engine.store

    @property
    def scripts(self) -> dict[str, Script]:
        return self.engine.scripts

    @property
    def surveys(self) -> Surveys:
        """Members' answers to ``via: survey`` steps (bot.sop.survey)."""
        return self.engine.surveys

    @property
    def directory(self) -> MemberDirectory | None:
        return self.app.maybe(MEMBERS)

    async def start(self, session: Any, script: Script, subject: Subject, *, anchor: datetime, started_by: str
                    ) -> int | None:
        """Start a run of ``script`` for ``subject`` (see :meth:`SopEngine.start`)."""
        return await self.engine.start(session, script, subject, anchor=anchor, started_by=started_by)

    def reload(self, *, force: bool = False) -> Refresh:
        report = self.files.refresh(force=force)
        if not force and (report.reloaded or report.removed):
            log.info("SOP scripts reloaded: %s; removed: %s", ", ".join(report.reloaded) or "-",
                     ", ".join(report.removed) or "-")
        return report

    # ── members and groups ──

    async def group(self, session: Any, chat_id: str) -> GroupInfo | None:
        return await self.directory.group(session, chat_id) if self.directory is not None else None

    async def member(self, session: Any, member_id: str) -> MemberProfile | None:
        return await self.directory.profile(session, member_id) if self.directory is not None else None

    # ── events ──

    async def stop_matching(self, session: Any, name: str, value: str, runs: list[Any], reason: str) -> int:
        """Stop the runs whose script's ``stop_on`` names this event (``tag_added:复购`` matches one value)."""
        wanted: list[int] = []
        for run in runs:
            script = await self.engine.version(session, run.script_id, run.version)
            if script is None:
                continue
            for entry in script.stop_on:
                base, _, qualifier = entry.partition(":")
                if base == name and (not qualifier or qualifier == value):
                    wanted.append(run.id)
                    break
        return await self.engine.stop(session, wanted, reason)

    async def trigger(self, session: Any, name: str, *, chat: Chat | None, member: Actor | None, anchor: datetime,
                      started_by: str, staff_id: str = "", details: dict[str, Any] | None = None, value: str = ""
                      ) -> list[int]:
        """Start every enabled script triggered by ``name`` whose ``where`` and ``per`` fit; the runs started."""
        scripts = [s for s in self.scripts.values() if s.trigger == name and s.enabled]
        if not scripts:
            return []
        chat_name = ""
        if chat is not None:
            group = await self.group(session, chat.id)
            chat_name = chat.name or (group.name if group is not None else "")
            if not staff_id and group is not None and group.owner_id:
                staff_id = group.owner_id
        profile = await profile_of(self.app, session, member) if member is not None else None
        if member is not None and not staff_id:
            known = await self.member(session, member.id)
            if known is not None and known.owner_staff:
                staff_id = known.owner_staff
        started: list[int] = []
        for script in scripts:
            if not _fits(script, name, value, chat, chat_name, member, profile):
                continue
            subject = Subject(
                per=script.per, chat_id=chat.id if chat else "", chat_name=chat_name,
                member_id=member.id if member and script.per == "member" else "",
                member_name=(profile.name if profile else "") if script.per == "member" else "",
                staff_id=staff_id, trigger={"type": name, **(details or {})})
            run_id = await self.engine.start(session, script, subject, anchor=anchor, started_by=started_by)
            if run_id is not None:
                started.append(run_id)
        return started

    # ── commands ──

    def find(self, script_id: str) -> Script:
        script = self.scripts.get(script_id)
        if script is None:
            known = "、".join(sorted(self.scripts)) or "（没有可用的脚本）"
            raise CommandError(f"没有脚本 {script_id}；可用：{known}")
        return script

    async def resolve_group(self, session: Any, here: Chat, target: str) -> tuple[str, str]:
        """(chat id, name) of ``target``: 本群, a group id, a group's name, or a group known from runs."""
        if target in HERE:
            if not here.is_group:
                raise CommandError("「本群」只能在群里使用；私聊里请写群名或群 ID")
            group = await self.group(session, here.id)
            return here.id, here.name or (group.name if group is not None else "")
        group = await self.group(session, target)
        if group is not None:
            return group.chat_id, group.name
        named = await self.directory.groups_named(session, target) if self.directory is not None else []
        if len(named) == 1:
            return named[0].chat_id, named[0].name
        if len(named) > 1:
            raise CommandError(f"有 {len(named)} 个群叫「{target}」，请用群 ID：" + "、".join(g.chat_id for g in named))
        if here.is_group and target == here.id:
            return here.id, here.name
        known = await self.store.chat_of_runs(session, target)
        if known is not None:
            return known
        raise CommandError(f"找不到群「{target}」（群名或群 ID；在群里可以写「本群」）")

    async def live_counts(self, session: Any) -> dict[str, int]:
        return await self.store.live_counts(session)

    async def find_silent(self, session: Any, fx: Effects, now: datetime) -> int:
        """The daily check behind ``trigger: silent``: for each enabled script's ``silent_days`` N, the customers
        whose silence reached N days in the last SILENT_WINDOW raise ``member_silent`` — keyed by member, N and
        the start of the silence, so a silence starts a run once however often it is seen (and again only after
        the member spoke and fell silent anew). How many events were new."""
        directory = self.app.maybe(MEMBERS)
        days = sorted({s.silent_days for s in self.scripts.values() if s.trigger == "silent" and s.enabled})
        if directory is None or not days:
            return 0
        raised = 0
        for n in days:
            for profile, since in await directory.became_silent(session, n, now, SILENT_WINDOW):
                chat = Chat(id=profile.last_chat_id, type="group") if profile.last_chat_id else None
                raised += await fx.emit(MemberSilent(
                    key=f"silent:{profile.id}:{n}:{int(since.timestamp())}", time=now, days=n, since=since, chat=chat,
                    member=Actor(id=profile.id, name=profile.name, staff=profile.staff)))
        return raised

    async def member_facts(self, session: Any, member_id: str) -> list[str]:
        """The member's live runs and how far they are, for the profile (bot.memberfacts)."""
        runs = await self.engine.live_runs(session, member_id=member_id)
        progress = await self.engine.progress(session, [r.id for r in runs])
        tz = self.app.config.bot.tz
        lines = []
        for r in runs:
            p = progress.get(r.id, {})
            script = self.scripts.get(r.script_id)
            when = f"，下一步 {p['next'].astimezone(tz):%m-%d %H:%M}" if p.get("next") else ""
            lines.append(f"{script.name if script else r.script_id}（{RUN_STATES.get(r.status, r.status)}，"
                         f"已完成 {p.get('done', 0)}/{p.get('total', 0)} 步{when}）")
        return lines

    def preview(self, script: Script, anchor: datetime, group: dict[str, Any], limit: int) -> list[PreviewItem]:
        return timeline(script, anchor, self.app.templates, self.app.config.bot.tz, group=group,
                        max_occurrences=limit)

    async def start_for_member(self, session: Any, script: Script, who: str, here: Chat, by: str,
                               now: datetime) -> Started:
        """``/sop start <script> @member``: in this group, else the member's last group when the script needs one."""
        if script.per != "member":
            raise CommandError(f"脚本 {script.id} 是 per: group（每个群一次），请写群名、群 ID 或「本群」")
        if not who:
            raise CommandError("@ 后面要写成员")
        found = await self.directory.find(session, who) if self.directory is not None else []
        if len(found) > 1:
            raise CommandError(f"有 {len(found)} 位成员叫 {who}，请用成员 ID")
        m = found[0] if found else None
        if m is None and not who.startswith(EXTERNAL_PREFIXES):
            raise CommandError(f"找不到成员 {who}（写成员 ID，或机器人见过的昵称）")
        member_name = (m.name if m is not None else "") or who
        chat_id, chat_name = "", ""
        if here.is_group:
            chat_id, chat_name = here.id, here.name
        elif script.uses_chat and m is not None and m.last_chat_id:
            chat_id = m.last_chat_id
            group = await self.group(session, chat_id)
            chat_name = group.name if group is not None else ""
        if script.uses_chat and not chat_id:
            raise CommandError(f"脚本 {script.id} 要在群里发消息，但不知道 {member_name} 在哪个群；"
                               "请在那个群里执行这条命令")
        staff = (m.owner_staff if m is not None else "") or ""
        if not staff and chat_id:
            group = await self.group(session, chat_id)
            staff = (group.owner_id if group is not None else "") or ""
        subject = Subject(per="member", chat_id=chat_id, chat_name=chat_name or "",
                          member_id=m.id if m is not None else who, member_name=member_name,
                          staff_id=staff or by, trigger={"type": "manual", "by": by})
        return await self._start_manual(session, script, subject, by, now)

    async def start_for_group(self, session: Any, script: Script, target: str, here: Chat, by: str,
                              now: datetime) -> Started:
        if script.per != "group":
            raise CommandError(f"脚本 {script.id} 是 per: member（每位成员一次），请写 @成员")
        chat_id, chat_name = await self.resolve_group(session, here, target)
        group = await self.group(session, chat_id)
        staff = (group.owner_id if group is not None else "") or by
        subject = Subject(per="group", chat_id=chat_id, chat_name=chat_name, staff_id=staff,
                          trigger={"type": "manual", "by": by})
        return await self._start_manual(session, script, subject, by, now)

    async def _start_manual(self, session: Any, script: Script, subject: Subject, by: str, now: datetime) -> Started:
        run_id = await self.engine.start(session, script, subject, anchor=now, started_by=f"operator:{by}")
        if run_id is None:
            existing = await self.store.active_run_id(session, subject.active_key(script.id))
            return Started(subject, None, existing)
        return Started(subject, run_id)

    async def activity(self, session: Any, *, after_run: int, since: datetime, now: datetime,
                       seen: set[int], limit: int = 50) -> tuple[list[str], int]:
        """What ``siyu simulate`` tells after each move: the runs started after run ``after_run`` (with their
        steps' count and next due time), the occurrences held by quiet hours and those finished since
        ``since`` without being sent (each once: ``seen`` collects their ids). Returns (lines, last run id)."""
        lines: list[str] = []
        last = after_run
        for r in await self.store.runs_after(session, after_run, limit):
            nxt = f"，下一步 {self.when(r.next_due, now)}" if r.next_due else ""
            lines.append(f"已启动 SOP：{r.script_id}（共 {r.steps or 0} 步{nxt}）→ {Subject.of_run(r).display}")
            last = r.id
        for st in await self.store.held_steps(session, now, limit):
            if st.id not in seen:
                seen.add(st.id)
                script = self.scripts.get(st.script_id)
                quiet = f"（{script.quiet.text}）" if script is not None and script.quiet else ""
                lines.append(f"暂缓 SOP：{st.script_id} 的 {st.step_key} 在免打扰时段{quiet}，"
                             f"推迟到 {self.when(st.due_at, now)}")
        for st in await self.store.finished_since(session, since, limit):
            if -st.id not in seen:
                seen.add(-st.id)
                why = OUTCOME_NAMES.get(st.outcome, st.outcome)
                detail = f"（{st.detail}）" if st.detail else ""
                lines.append(f"未发送 SOP：{st.script_id} 的 {st.step_key}：{why}{detail}")
        return lines, last

    def when(self, at: datetime, now: datetime) -> str:
        """A time as 今天 / 明天 / 后天 HH:MM, or MM-DD（周几）HH:MM further away."""
        tz = self.engine.tz
        local, today = at.astimezone(tz), now.astimezone(tz).date()
        days = (local.date() - today).days
        day = {0: "今天", 1: "明天", 2: "后天"}.get(days, f"{local:%m-%d}（{WEEKDAY_CN[local.weekday()]}）")
        return f"{day} {local:%H:%M}"

    async def one_run(self, session: Any, run_id: int) -> Any:
        run = await self.store.run(session, run_id)
        if run is None:
            raise CommandError(f"没有编号为 {run_id} 的运行；/sop status 查看正在运行的")
        return run

    async def run_detail(self, session: Any, run: Any) -> dict[str, Any]:
        """One run's steps, its script version and whether the live script is newer (``/sop status #12``)."""
        steps = await self.store.steps_of(session, run.id)
        script = await self.engine.version(session, run.script_id, run.version)
        live = self.scripts.get(run.script_id)
        return {"steps": steps, "script": script, "live": live,
                "outdated": live is not None and live.version != run.version}

    async def live_page(self, session: Any, chat_id: str | None, limit: int) -> dict[str, Any]:
        """The newest live runs (of one group or all), their progress and the live script versions."""
        total, runs = await self.store.live_page(session, chat_id, limit)
        return {"total": total, "runs": runs, "progress": await self.engine.progress(session, [r.id for r in runs]),
                "names": {sid: sc.name for sid, sc in self.scripts.items()},
                "live": {sid: sc.version for sid, sc in self.scripts.items()}}

    async def migrate(self, session: Any, script: Script, run_id: int | None) -> tuple[dict[str, int], int]:
        """Move the live runs of ``script`` (or one) to its current version; (totals, runs already on it)."""
        if run_id is not None:
            run = await self.one_run(session, run_id)
            if run.script_id != script.id:
                raise CommandError(f"运行 {run.id} 属于脚本 {run.script_id}，不是 {script.id}")
            if run.status not in ("running", "paused"):
                raise CommandError(f"运行 {run.id} 已经结束（{RUN_STATES.get(run.status, run.status)}），不能迁移")
            runs = [run]
        else:
            runs = await self.engine.live_runs(session, script_ids=[script.id])
        todo = [r for r in runs if r.version != script.version]
        totals = {"runs": 0, "rescheduled": 0, "added": 0, "dropped": 0, "skipped": 0}
        for run in todo:
            counts = await self.engine.migrate(session, run, script)
            totals["runs"] += 1
            for k, v in counts.items():
                totals[k] += v
        return totals, len(runs) - len(todo)


def _fits(script: Script, name: str, value: str, chat: Chat | None, chat_name: str, member: Actor | None,
          profile: MemberProfile | None) -> bool:
    """Whether a trigger ``name`` (with its tag, tier or channel ``value``) starts ``script`` here."""
    where = script.where
    if (chat is None and where.groups) or (chat is not None and not where.group_ok(chat.id, chat_name)):
        return False
    # a tag just added or a tier just reached counts even before the member's profile shows it
    tags = (*profile.tags, value) if profile is not None and name == "tag_added" else \
        (profile.tags if profile is not None else ())
    tier = value if name == "tier_changed" else (profile.tier if profile is not None else "")
    if profile is not None and not where.member_ok(tier, profile.tier_name, tags):
        return False
    if name == "contact_added" and not where.state_ok(value):
        return False
    if name == "tag_added" and where.tags and value not in where.tags:
        return False
    if name == "tier_changed" and where.tiers and value not in where.tiers:
        return False
    if name == "silent" and value != str(script.silent_days):
        return False
    if script.per == "member" and member is None:
        return False
    return not (script.per == "group" and chat is None)
