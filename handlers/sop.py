"""SOP scripts in chat: runs started by events, stopped by events, and the operators' /sop commands.

Triggers (priority 45, observers): a member joining a group, a contact added,
a group created, a tag put on a member, a tier change. Stops (priority 41, so a
run stopped and started by the same event ends before the new one begins): the
script's ``stop_on`` events; a dismissed group ends every run in it. Both run in
the event handler's transaction; the step pump is kicked after it commits.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from bot.commands import Arg, CommandError, parse_when
from bot.context import Context
from bot.events import (
    EXTERNAL_PREFIXES,
    Actor,
    Chat,
    ContactAdded,
    ContactChanged,
    GroupCreated,
    GroupDismissed,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    TagAdded,
    TierChanged,
)
from bot.members import profile_of
from bot.pump import Reloader
from bot.roles import OPERATOR
from bot.routing import Router
from bot.sop import SOP
from bot.sop.engine import OUTCOME_NAMES, RUNS, STATE_NAMES, STEPS, SopEngine, StepPump, Subject
from bot.sop.files import ScriptFiles
from bot.sop.preview import timeline
from bot.sop.script import TRIGGER_NAMES, VIA_NAMES, Defaults, Script
from bot.sop.timing import WEEKDAY_CN
from bot.tiers.models import Group, Member

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.sop")

GROUP = Group.__table__
MEMBER = Member.__table__
HERE = ("本群", "here", ".", "当前群")


def defaults_of(app: BotApp) -> Defaults:
    cfg = app.config.sop
    return Defaults(quiet_hours=cfg.quiet_hours, late_grace=cfg.late_grace, late_then=cfg.late_then)


def script_files(app: BotApp) -> ScriptFiles:
    directory = app.config.resolve(app.config.sop.dir)
    calendar = app.config.resolve(app.config.moments.calendar)
    exclude = (calendar.name,) if calendar.parent.resolve() == directory.resolve() else ()
    return ScriptFiles(directory, templates=app.templates, defaults=defaults_of(app), exclude=exclude)


async def group_row(session: Any, chat_id: str) -> Any:
    return (await session.execute(select(GROUP).where(GROUP.c.chat_id == chat_id))).first()


async def member_row(session: Any, member_id: str) -> Any:
    return (await session.execute(select(MEMBER).where(MEMBER.c.id == member_id))).first()


def _local(app: BotApp, at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return at.astimezone(app.config.bot.tz).strftime(fmt) if at else ""


def setup(app: BotApp) -> Router:
    files = script_files(app)
    report = files.refresh(force=True)
    for p in report.problems:
        log.error("SOP script problem: %s", p)
    if files.templates_dir.is_dir():
        app.templates.add_dir(files.templates_dir)
    engine = SopEngine(app, files)
    app.provide(SOP, engine)
    pump = StepPump(app, engine)
    def reload(_files: bool) -> bool:
        report = files.refresh()
        if report.reloaded or report.removed:
            log.info("SOP scripts reloaded: %s; removed: %s", ", ".join(report.reloaded) or "-",
                     ", ".join(report.removed) or "-")
        return False

    reloader = Reloader("sop-reload", app.clock, app.config.sop.reload_interval_s, reload)
    app.pumps.extend([pump, reloader])

    async def release() -> None:
        n = await pump.release()
        if n:
            log.info("released %d claimed SOP steps on shutdown", n)

    app.on_shutdown.append(release)

    router = Router("sop")
    router.describe("sop", "SOP 脚本：查看、预览、启动、暂停、停止、迁移运行（运营）")

    # ── stops and triggers ──

    async def stop_matching(ctx: Context, name: str, value: str, runs: list[Any], reason: str) -> int:
        wanted: list[int] = []
        for run in runs:
            script = await engine.version(ctx.session, run.script_id, run.version)
            if script is None:
                continue
            for entry in script.stop_on:
                base, _, qualifier = entry.partition(":")
                if base == name and (not qualifier or qualifier == value):
                    wanted.append(run.id)
                    break
        return await engine.stop(ctx.session, wanted, reason)

    @router.on(MemberLeft, priority=41)
    async def stop_on_left(event: MemberLeft, ctx: Context) -> None:
        runs = await engine.live_runs(ctx.session, member_id=event.member.id, chat_id=event.chat.id)
        await stop_matching(ctx, "member_left", "", runs, f"{event.member.display} 退群")

    @router.on(TierChanged, priority=41)
    async def stop_on_tier(event: TierChanged, ctx: Context) -> None:
        runs = await engine.live_runs(ctx.session, member_id=event.member.id)
        await stop_matching(ctx, "tier_changed", event.to_tier, runs, f"等级变化 {event.from_tier} → {event.to_tier}")

    @router.on(TagAdded, priority=41)
    async def stop_on_tag(event: TagAdded, ctx: Context) -> None:
        runs = await engine.live_runs(ctx.session, member_id=event.member.id)
        await stop_matching(ctx, "tag_added", event.tag, runs, f"打上标签 {event.tag}")

    @router.on(ContactChanged, priority=41)
    async def stop_on_removed(event: ContactChanged, ctx: Context) -> None:
        if event.change not in ("removed_by_customer", "removed_by_staff"):
            return
        runs = [r for r in await engine.live_runs(ctx.session, member_id=event.member.id) if not r.chat_id]
        await stop_matching(ctx, "contact_removed", "", runs, "好友关系已解除")

    @router.on(GroupDismissed, priority=41)
    async def stop_on_dismissed(event: GroupDismissed, ctx: Context) -> None:
        runs = await engine.live_runs(ctx.session, chat_id=event.chat.id)
        await engine.stop(ctx.session, [r.id for r in runs], "群已解散")

    async def trigger(ctx: Context, name: str, *, chat: Chat | None, member: Actor | None, staff_id: str = "",
                      details: dict[str, Any] | None = None, value: str = "") -> list[int]:
        scripts = [s for s in engine.scripts.values() if s.trigger == name and s.enabled]
        if not scripts:
            return []
        s = ctx.session
        chat_name = ""
        if chat is not None:
            row = await group_row(s, chat.id)
            chat_name = chat.name or (row.name if row is not None else "")
            if not staff_id and row is not None and row.owner_id:
                staff_id = row.owner_id
        profile = await profile_of(ctx.app, s, member) if member is not None else None
        if member is not None and not staff_id:
            m = await member_row(s, member.id)
            if m is not None and m.owner_staff:
                staff_id = m.owner_staff
        started: list[int] = []
        for script in scripts:
            where = script.where
            if (chat is None and where.groups) or (chat is not None and not where.group_ok(chat.id, chat_name)):
                continue
            # a tag just added or a tier just reached counts even before the member's profile shows it
            tags = (*profile.tags, value) if profile is not None and name == "tag_added" else \
                (profile.tags if profile is not None else ())
            tier = value if name == "tier_changed" else (profile.tier if profile is not None else "")
            if profile is not None and not where.member_ok(tier, profile.tier_name, tags):
                continue
            if name == "contact_added" and not where.state_ok(value):
                continue
            if name == "tag_added" and where.tags and value not in where.tags:
                continue
            if name == "tier_changed" and where.tiers and value not in where.tiers:
                continue
            if script.per == "member" and member is None:
                continue
            if script.per == "group" and chat is None:
                continue
            subject = Subject(
                per=script.per, chat_id=chat.id if chat else "", chat_name=chat_name,
                member_id=member.id if member and script.per == "member" else "",
                member_name=(profile.name if profile else "") if script.per == "member" else "",
                staff_id=staff_id, trigger={"type": name, **(details or {})})
            run_id = await engine.start(s, script, subject, anchor=ctx.event.time, started_by=ctx.event.key)
            if run_id is not None:
                started.append(run_id)
        if started:
            ctx.after_commit(pump.kick)
        return started

    @router.on(MemberJoined, priority=45)
    async def on_joined(event: MemberJoined, ctx: Context) -> None:
        if event.member.staff:
            return
        await trigger(ctx, "member_joined", chat=event.chat, member=event.member,
                      details={"scene": event.scene, "inviter": event.inviter.id if event.inviter else ""})

    @router.on(ContactAdded, priority=45)
    async def on_contact(event: ContactAdded, ctx: Context) -> None:
        await trigger(ctx, "contact_added", chat=None, member=event.member, staff_id=event.staff.id,
                      details={"state": event.state, "welcome_code": event.welcome_code, "staff": event.staff.id},
                      value=event.state)

    @router.on(GroupCreated, priority=45)
    async def on_group(event: GroupCreated, ctx: Context) -> None:
        await trigger(ctx, "group_created", chat=event.chat, member=None,
                      staff_id=event.owner.id if event.owner else "")

    @router.on(TagAdded, priority=45)
    async def on_tag(event: TagAdded, ctx: Context) -> None:
        await trigger(ctx, "tag_added", chat=event.chat, member=event.member, details={"tag": event.tag},
                      value=event.tag)

    @router.on(TierChanged, priority=45)
    async def on_tier(event: TierChanged, ctx: Context) -> None:
        await trigger(ctx, "tier_changed", chat=event.chat, member=event.member,
                      details={"from_tier": event.from_tier, "to_tier": event.to_tier}, value=event.to_tier)

    # ── commands ──

    def find(script_id: str) -> Script:
        script = engine.scripts.get(script_id)
        if script is None:
            known = "、".join(sorted(engine.scripts)) or "（没有可用的脚本）"
            raise CommandError(f"没有脚本 {script_id}；可用：{known}")
        return script

    async def resolve_group(ctx: Context, event: MessageEvent, target: str) -> tuple[str, str]:
        if target in HERE:
            if not event.chat.is_group:
                raise CommandError("「本群」只能在群里使用；私聊里请写群名或群 ID")
            row = await group_row(ctx.session, event.chat.id)
            return event.chat.id, event.chat.name or (row.name if row is not None else "")
        row = await group_row(ctx.session, target)
        if row is not None:
            return row.chat_id, row.name
        rows = (await ctx.session.execute(select(GROUP).where(and_(GROUP.c.name == target,
                                                                    GROUP.c.dismissed_at.is_(None))))).all()
        if len(rows) == 1:
            return rows[0].chat_id, rows[0].name
        if len(rows) > 1:
            raise CommandError(f"有 {len(rows)} 个群叫「{target}」，请用群 ID：" + "、".join(r.chat_id for r in rows))
        if event.chat.is_group and target == event.chat.id:
            return event.chat.id, event.chat.name
        known = (await ctx.session.execute(select(RUNS.c.chat_id, RUNS.c.chat_name).where(
            RUNS.c.chat_id == target).limit(1))).first()
        if known is not None:
            return known.chat_id, known.chat_name
        raise CommandError(f"找不到群「{target}」（群名或群 ID；在群里可以写「本群」）")

    def parse_preview_args(ctx: Context, rest: str) -> tuple[str, datetime | None]:
        """``[group] [start time]``: the time is the last one or two words when they look like one."""
        words = rest.split()
        tz = ctx.app.config.bot.tz
        for n in (2, 1):
            if len(words) >= n:
                tail = " ".join(words[-n:])
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T]\d{1,2}:\d{2})?", tail):
                    when = parse_when(tail if " " in tail or "T" in tail else tail + " 00:00", tz)
                    return " ".join(words[:-n]), when
                if n == 1 and re.fullmatch(r"\d{1,2}[:：]\d{2}", tail):
                    today = ctx.now().astimezone(tz).date()
                    return " ".join(words[:-1]), parse_when(f"{today} {tail.replace('：', ':')}", tz)
        return rest.strip(), None

    @router.command("sop list", roles=[OPERATOR],
                    help="列出所有 SOP 脚本：触发方式、步骤数、版本、正在运行的次数，以及文件问题")
    async def sop_list(event: MessageEvent, ctx: Context) -> None:
        counts = dict((await ctx.session.execute(
            select(RUNS.c.script_id, func.count()).where(RUNS.c.status.in_(("running", "paused")))
            .group_by(RUNS.c.script_id))).all())
        scripts = sorted(engine.scripts.values(), key=lambda s: s.id)
        await ctx.reply(ctx.render("sop/list.j2", scripts=scripts, counts=counts, triggers=TRIGGER_NAMES,
                                   problems=[str(p) for p in files.problems]))

    @router.command("sop show", Arg("id", "脚本id"), roles=[OPERATOR],
                    help="查看一个脚本的触发条件、适用范围、免打扰、超时规则和每一步",
                    examples=["/sop show newcomer-7d"])
    async def sop_show(event: MessageEvent, ctx: Context) -> None:
        script = find(ctx.args["id"])
        await ctx.reply(ctx.render("sop/show.j2", s=script, triggers=TRIGGER_NAMES, vias=VIA_NAMES))

    @router.command("sop preview", Arg("id", "脚本id"),
                    Arg("rest", "群 开始时间", optional=True, rest=True, default=""),
                    roles=[OPERATOR], help="预览时间线：每一步的真实日期时间（已按免打扰顺延）和渲染后的文字",
                    examples=["/sop preview newcomer-7d", "/sop preview newcomer-7d 禾屿茶友会1群 2026-11-23 10:00",
                              "/sop preview checkin-21d 本群 20:30"])
    async def sop_preview(event: MessageEvent, ctx: Context) -> None:
        script = find(ctx.args["id"])
        group_text, start = parse_preview_args(ctx, ctx.args["rest"] or "")
        group = {"id": "", "name": "示例群"}
        if group_text:
            chat_id, chat_name = await resolve_group(ctx, event, group_text)
            group = {"id": chat_id, "name": chat_name or chat_id}
        elif event.chat.is_group:
            group = {"id": event.chat.id, "name": event.chat.name or event.chat.id}
        anchor = start or ctx.now()
        limit = ctx.config.sop.preview_occurrences
        items = timeline(script, anchor, ctx.app.templates, ctx.app.config.bot.tz, group=group,
                         max_occurrences=limit)
        await ctx.reply(ctx.render("sop/preview.j2", s=script, items=items, anchor=anchor.astimezone(
            ctx.app.config.bot.tz), group=group, vias=VIA_NAMES, limit=limit,
                                   weekday=lambda d: WEEKDAY_CN[d.weekday()]))

    @router.command("sop start", Arg("id", "脚本id"), Arg("target", "群|@成员"), roles=[OPERATOR],
                    help="为一个群（群名、群 ID 或「本群」）或一位成员（@成员）启动脚本，从现在开始计时",
                    examples=["/sop start live-weekly 本群", "/sop start newcomer-7d @wmBob"])
    async def sop_start(event: MessageEvent, ctx: Context) -> None:
        script = find(ctx.args["id"])
        target: str = ctx.args["target"]
        s = ctx.session
        now = ctx.now()
        if target.startswith(("@", "＠")):
            if script.per != "member":
                raise CommandError(f"脚本 {script.id} 是 per: group（每个群一次），请写群名、群 ID 或「本群」")
            who = target[1:]
            if not who:
                raise CommandError("@ 后面要写成员")
            m = await member_row(s, who)
            if m is None:
                rows = (await s.execute(select(MEMBER).where(MEMBER.c.name == who).limit(3))).all()
                if len(rows) > 1:
                    raise CommandError(f"有 {len(rows)} 位成员叫 {who}，请用成员 ID")
                m = rows[0] if rows else None
            if m is None and not who.startswith(EXTERNAL_PREFIXES):
                raise CommandError(f"找不到成员 {who}（写成员 ID，或机器人见过的昵称）")
            member_id = m.id if m is not None else who
            member_name = (m.name if m is not None else "") or who
            chat_id, chat_name = "", ""
            if event.chat.is_group:
                chat_id, chat_name = event.chat.id, event.chat.name
            elif script.uses_chat and m is not None and m.last_chat_id:
                chat_id = m.last_chat_id
                row = await group_row(s, chat_id)
                chat_name = row.name if row is not None else ""
            if script.uses_chat and not chat_id:
                raise CommandError(f"脚本 {script.id} 要在群里发消息，但不知道 {member_name} 在哪个群；"
                                   "请在那个群里执行这条命令")
            staff = (m.owner_staff if m is not None else "") or ""
            if not staff and chat_id:
                row = await group_row(s, chat_id)
                staff = (row.owner_id if row is not None else "") or ""
            subject = Subject(per="member", chat_id=chat_id, chat_name=chat_name or "", member_id=member_id,
                              member_name=member_name, staff_id=staff or event.sender.id,
                              trigger={"type": "manual", "by": event.sender.id})
        else:
            if script.per != "group":
                raise CommandError(f"脚本 {script.id} 是 per: member（每位成员一次），请写 @成员")
            chat_id, chat_name = await resolve_group(ctx, event, target)
            row = await group_row(s, chat_id)
            staff = (row.owner_id if row is not None else "") or event.sender.id
            subject = Subject(per="group", chat_id=chat_id, chat_name=chat_name, staff_id=staff,
                              trigger={"type": "manual", "by": event.sender.id})
        run_id = await engine.start(s, script, subject, anchor=now, started_by=f"operator:{event.sender.id}")
        if run_id is None:
            existing = (await s.execute(select(RUNS.c.id).where(
                RUNS.c.active_key == subject.active_key(script.id)))).scalar()
            await ctx.reply(ctx.render("sop/already_running.j2", s=script, subject=subject, run_id=existing))
            return
        ctx.after_commit(pump.kick)
        first = timeline(script, now, ctx.app.templates, ctx.app.config.bot.tz, max_occurrences=1)[:3]
        await ctx.reply(ctx.render("sop/started.j2", s=script, subject=subject, run_id=run_id, first=first,
                                   vias=VIA_NAMES))

    async def one_run(ctx: Context, run_id: int) -> Any:
        run = (await ctx.session.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
        if run is None:
            raise CommandError(f"没有编号为 {run_id} 的运行；/sop status 查看正在运行的")
        return run

    def subject_of(run: Any) -> str:
        return Subject(per=run.per, chat_id=run.chat_id, chat_name=run.chat_name, member_id=run.member_id,
                       member_name=run.member_name).display

    @router.command("sop pause", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR],
                    help="暂停一次运行：到点的步骤先不发，恢复后按超时规则补发或跳过", examples=["/sop pause 12"])
    async def sop_pause(event: MessageEvent, ctx: Context) -> None:
        run = await one_run(ctx, ctx.args["run"])
        ok = await engine.pause(ctx.session, run.id)
        await ctx.reply(ctx.render("sop/run_changed.j2", action="暂停", ok=ok, run=run, subject=subject_of(run),
                                   states=STATE_RUN))

    @router.command("sop resume", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR],
                    help="恢复一次暂停的运行", examples=["/sop resume 12"])
    async def sop_resume(event: MessageEvent, ctx: Context) -> None:
        run = await one_run(ctx, ctx.args["run"])
        ok = await engine.resume(ctx.session, run.id)
        if ok:
            ctx.after_commit(pump.kick)
        await ctx.reply(ctx.render("sop/run_changed.j2", action="恢复", ok=ok, run=run, subject=subject_of(run),
                                   states=STATE_RUN))

    @router.command("sop stop", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR], confirm=True,
                    help="停止一次运行：还没发的步骤全部取消（需确认）", examples=["/sop stop 12"])
    async def sop_stop(event: MessageEvent, ctx: Context) -> None:
        run = await one_run(ctx, ctx.args["run"])
        ok = bool(await engine.stop(ctx.session, [run.id], f"{event.sender.display} 手动停止"))
        await ctx.reply(ctx.render("sop/run_changed.j2", action="停止", ok=ok, run=run, subject=subject_of(run),
                                   states=STATE_RUN))

    @router.command("sop status", Arg("target", "群|运行编号", optional=True, rest=True, default=""),
                    roles=[OPERATOR], help="正在运行的脚本（全部、某个群，或 #编号 查看一次运行的每一步）",
                    examples=["/sop status", "/sop status 本群", "/sop status #12"])
    async def sop_status(event: MessageEvent, ctx: Context) -> None:
        target = (ctx.args["target"] or "").strip()
        s = ctx.session
        m = re.fullmatch(r"#?(\d+)", target)
        if m:
            run = await one_run(ctx, int(m.group(1)))
            steps = (await s.execute(select(STEPS).where(STEPS.c.run_id == run.id)
                                     .order_by(STEPS.c.due_at, STEPS.c.id))).all()
            script = await engine.version(s, run.script_id, run.version)
            live = engine.scripts.get(run.script_id)
            await ctx.reply(ctx.render("sop/run.j2", run=run, steps=steps, script=script, subject=subject_of(run),
                                       states=STATE_NAMES, outcomes=OUTCOME_NAMES, vias=VIA_NAMES,
                                       run_states=STATE_RUN, local=lambda at: _local(ctx.app, at),
                                       outdated=live is not None and live.version != run.version,
                                       live=live))
            return
        q = select(RUNS).where(RUNS.c.status.in_(("running", "paused")))
        where = ""
        if target:
            chat_id, chat_name = await resolve_group(ctx, event, target)
            q = q.where(RUNS.c.chat_id == chat_id)
            where = chat_name or chat_id
        limit = ctx.config.sop.status_limit
        total = (await s.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
        runs = (await s.execute(q.order_by(RUNS.c.id.desc()).limit(limit))).all()
        progress = await engine.progress(s, [r.id for r in runs])
        names = {sid: sc.name for sid, sc in engine.scripts.items()}
        await ctx.reply(ctx.render("sop/status.j2", runs=runs, progress=progress, names=names, where=where,
                                   total=total, limit=limit, subject=subject_of, run_states=STATE_RUN,
                                   local=lambda at: _local(ctx.app, at),
                                   live={sid: sc.version for sid, sc in engine.scripts.items()}))

    @router.command("sop migrate", Arg("id", "脚本id"), Arg("run", "运行编号", type="int", optional=True, min=1),
                    roles=[OPERATOR], confirm=True,
                    help="把正在运行的（或某一次）运行迁移到脚本的当前版本：已发的不重发，没发的按新版本重新排期（需确认）",
                    examples=["/sop migrate newcomer-7d", "/sop migrate newcomer-7d 12"])
    async def sop_migrate(event: MessageEvent, ctx: Context) -> None:
        script = find(ctx.args["id"])
        s = ctx.session
        if ctx.args["run"] is not None:
            run = await one_run(ctx, ctx.args["run"])
            if run.script_id != script.id:
                raise CommandError(f"运行 {run.id} 属于脚本 {run.script_id}，不是 {script.id}")
            if run.status not in ("running", "paused"):
                raise CommandError(f"运行 {run.id} 已经结束（{STATE_RUN.get(run.status, run.status)}），不能迁移")
            runs = [run]
        else:
            runs = await engine.live_runs(s, script_ids=[script.id])
        todo = [r for r in runs if r.version != script.version]
        totals = {"runs": 0, "rescheduled": 0, "added": 0, "dropped": 0, "skipped": 0}
        for run in todo:
            counts = await engine.migrate(s, run, script)
            totals["runs"] += 1
            for k, v in counts.items():
                totals[k] += v
        if todo:
            ctx.after_commit(pump.kick)
        await ctx.reply(ctx.render("sop/migrated.j2", s=script, totals=totals, already=len(runs) - len(todo)))

    @router.command("sop reload", roles=[OPERATOR], help="立即重新加载脚本文件，并列出每个问题（文件:行号）")
    async def sop_reload(event: MessageEvent, ctx: Context) -> None:
        report = files.refresh(force=True)
        await ctx.reply(ctx.render("sop/reload.j2", report=report, scripts=engine.scripts,
                                   problems=[str(p) for p in report.problems]))

    return router


STATE_RUN = {"running": "运行中", "paused": "已暂停", "stopped": "已停止", "done": "已完成"}
