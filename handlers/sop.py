"""SOP scripts in chat: runs started by events, stopped by events, and the operators' /sop commands.

A member's reply to a survey step, where it was asked (priority 44, after the handoff, before the
knowledge base), is taken as the answer while one is awaited, and then the event stops there.
Triggers (priority 45, observers): a member joining a group, a contact added,
a group created, a tag put on a member, a tier change, a customer lost (``churned``:
deleted the staff member or was deleted, left or was removed from a group) and a
customer fallen silent (``silent``: ``member_silent`` from the daily check). Stops (priority 41, so a
run stopped and started by the same event ends before the new one begins): the
script's ``stop_on`` events; a dismissed group ends every run in it. Both run in
the event handler's transaction; the step pump is kicked after it commits.
The work is bot.sop.service (``ctx.get(SOP)``); a step is sent by
bot.sop.engine (``StepBatch.send_step``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.commands import Arg, parse_when
from bot.context import Context
from bot.events import (
    Actor,
    Chat,
    ContactAdded,
    ContactChanged,
    GroupCreated,
    GroupDismissed,
    MemberJoined,
    MemberLeft,
    MemberSilent,
    MessageEvent,
    TagAdded,
    TierChanged,
)
from bot.roles import OPERATOR
from bot.routing import Router, from_customer, is_command_text
from bot.sop import SOP
from bot.sop.engine import OUTCOME_NAMES, RUN_STATES, STATE_NAMES, Subject
from bot.sop.script import TRIGGER_NAMES, VIA_NAMES
from bot.sop.timing import WEEKDAY_CN

router = Router("sop")
router.alias("脚本", "sop")
router.describe("sop", "SOP 脚本：查看、预览、启动、暂停、停止、迁移运行（运营）")


def _local(ctx: Context, at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return at.astimezone(ctx.app.config.bot.tz).strftime(fmt) if at else ""


def _subject_of(run: Any) -> str:
    return Subject.of_run(run).display


# ── stops and triggers ──


@router.on(MemberLeft, priority=41)
async def stop_on_left(event: MemberLeft, ctx: Context) -> None:
    sop = ctx.get(SOP)
    runs = await sop.engine.live_runs(ctx.session, member_id=event.member.id, chat_id=event.chat.id)
    await sop.stop_matching(ctx.session, "member_left", "", runs, f"{event.member.display} 退群")


@router.on(TierChanged, priority=41)
async def stop_on_tier(event: TierChanged, ctx: Context) -> None:
    sop = ctx.get(SOP)
    runs = await sop.engine.live_runs(ctx.session, member_id=event.member.id)
    await sop.stop_matching(ctx.session, "tier_changed", event.to_tier, runs,
                            f"等级变化 {event.from_tier} → {event.to_tier}")


@router.on(TagAdded, priority=41)
async def stop_on_tag(event: TagAdded, ctx: Context) -> None:
    sop = ctx.get(SOP)
    runs = await sop.engine.live_runs(ctx.session, member_id=event.member.id)
    await sop.stop_matching(ctx.session, "tag_added", event.tag, runs, f"打上标签 {event.tag}")


@router.on(ContactChanged, priority=41)
async def stop_on_removed(event: ContactChanged, ctx: Context) -> None:
    if event.change not in ("removed_by_customer", "removed_by_staff"):
        return
    sop = ctx.get(SOP)
    runs = [r for r in await sop.engine.live_runs(ctx.session, member_id=event.member.id) if not r.chat_id]
    await sop.stop_matching(ctx.session, "contact_removed", "", runs, "好友关系已解除")


@router.on(GroupDismissed, priority=41)
async def stop_on_dismissed(event: GroupDismissed, ctx: Context) -> None:
    sop = ctx.get(SOP)
    runs = await sop.engine.live_runs(ctx.session, chat_id=event.chat.id)
    await sop.engine.stop(ctx.session, [r.id for r in runs], "群已解散")


async def _trigger(ctx: Context, name: str, *, chat: Chat | None, member: Actor | None, staff_id: str = "",
                   details: dict[str, Any] | None = None, value: str = "") -> None:
    sop = ctx.get(SOP)
    started = await sop.trigger(ctx.session, name, chat=chat, member=member, anchor=ctx.event.time,
                                started_by=ctx.event.key, staff_id=staff_id, details=details, value=value)
    if started:
        ctx.after_commit(sop.pump.kick)


@router.on(MemberJoined, priority=45)
async def on_joined(event: MemberJoined, ctx: Context) -> None:
    if event.member.staff:
        return
    await _trigger(ctx, "member_joined", chat=event.chat, member=event.member,
                   details={"scene": event.scene, "inviter": event.inviter.id if event.inviter else ""})


@router.on(ContactAdded, priority=45)
async def on_contact(event: ContactAdded, ctx: Context) -> None:
    await _trigger(ctx, "contact_added", chat=None, member=event.member, staff_id=event.staff.id,
                   details={"state": event.state, "welcome_code": event.welcome_code, "staff": event.staff.id},
                   value=event.state)


@router.on(GroupCreated, priority=45)
async def on_group(event: GroupCreated, ctx: Context) -> None:
    await _trigger(ctx, "group_created", chat=event.chat, member=None, staff_id=event.owner.id if event.owner else "")


@router.on(TagAdded, priority=45)
async def on_tag(event: TagAdded, ctx: Context) -> None:
    await _trigger(ctx, "tag_added", chat=event.chat, member=event.member, details={"tag": event.tag}, value=event.tag)


@router.on(TierChanged, priority=45)
async def on_tier(event: TierChanged, ctx: Context) -> None:
    await _trigger(ctx, "tier_changed", chat=event.chat, member=event.member,
                   details={"from_tier": event.from_tier, "to_tier": event.to_tier}, value=event.to_tier)


@router.on(ContactChanged, priority=45)
async def on_lost_contact(event: ContactChanged, ctx: Context) -> None:
    if event.lost:
        await _trigger(ctx, "churned", chat=None, member=event.member, staff_id=event.staff.id,
                       details={"how": event.change, "staff": event.staff.id}, value=event.change)


@router.on(MemberLeft, priority=45)
async def on_left(event: MemberLeft, ctx: Context) -> None:
    if not event.member.staff:
        await _trigger(ctx, "churned", chat=event.chat, member=event.member,
                       details={"how": event.scene, "chat": event.chat.id}, value=event.scene)


@router.on(MemberSilent, priority=45)
async def on_silent(event: MemberSilent, ctx: Context) -> None:
    await _trigger(ctx, "silent", chat=event.chat, member=event.member,
                   details={"days": event.days, "since": event.since.isoformat()}, value=str(event.days))


# ── survey answers ──


@router.message(from_customer & ~is_command_text, priority=44)
async def survey_reply(event: MessageEvent, ctx: Context) -> None:
    if await ctx.get(SOP).surveys.on_reply(ctx, event):
        ctx.stop()  # the member answered a survey: not a question for the knowledge base


# ── commands ──


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


@router.command("sop list", roles=[OPERATOR], private=True,
                help="列出所有 SOP 脚本：触发方式、步骤数、版本、正在运行的次数，以及文件问题")
async def sop_list(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    counts = await sop.live_counts(ctx.session)
    scripts = sorted(sop.scripts.values(), key=lambda s: s.id)
    await ctx.reply(ctx.render("sop/list.j2", scripts=scripts, counts=counts, triggers=TRIGGER_NAMES,
                               problems=[str(p) for p in sop.files.problems]))


@router.command("sop show", Arg("id", "脚本id"), roles=[OPERATOR], private=True,
                help="查看一个脚本的触发条件、适用范围、免打扰、超时规则和每一步",
                examples=["/sop show newcomer-7d"])
async def sop_show(event: MessageEvent, ctx: Context) -> None:
    script = ctx.get(SOP).find(ctx.args["id"])
    await ctx.reply(ctx.render("sop/show.j2", s=script, triggers=TRIGGER_NAMES, vias=VIA_NAMES))


@router.command("sop preview", Arg("id", "脚本id"),
                Arg("rest", "群 开始时间", optional=True, rest=True, default=""),
                roles=[OPERATOR], private=True, help="预览时间线：每一步的真实日期时间（已按免打扰顺延）和渲染后的文字",
                examples=["/sop preview newcomer-7d", "/sop preview newcomer-7d 禾屿茶友会1群 2026-11-23 10:00",
                          "/sop preview checkin-21d 本群 20:30"])
async def sop_preview(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    script = sop.find(ctx.args["id"])
    group_text, start = parse_preview_args(ctx, ctx.args["rest"] or "")
    group = {"id": "", "name": "示例群"}
    if group_text:
        chat_id, chat_name = await sop.resolve_group(ctx.session, event.chat, group_text)
        group = {"id": chat_id, "name": chat_name or chat_id}
    elif event.chat.is_group:
        group = {"id": event.chat.id, "name": event.chat.name or event.chat.id}
    anchor = start or ctx.now()
    limit = ctx.config.sop.preview_occurrences
    items = sop.preview(script, anchor, group, limit)
    await ctx.reply(ctx.render("sop/preview.j2", s=script, items=items, anchor=anchor.astimezone(
        ctx.app.config.bot.tz), group=group, vias=VIA_NAMES, limit=limit,
                               weekday=lambda d: WEEKDAY_CN[d.weekday()]))


@router.command("sop start", Arg("id", "脚本id"), Arg("target", "群|@成员"), roles=[OPERATOR], private=True,
                help="为一个群（群名、群 ID 或「本群」）或一位成员（@成员）启动脚本，从现在开始计时",
                examples=["/sop start live-weekly 本群", "/sop start newcomer-7d @wmBob"])
async def sop_start(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    script = sop.find(ctx.args["id"])
    target: str = ctx.args["target"]
    now = ctx.now()
    if target.startswith(("@", "＠")):
        started = await sop.start_for_member(ctx.session, script, target[1:], event.chat, event.sender.id, now)
    else:
        started = await sop.start_for_group(ctx.session, script, target, event.chat, event.sender.id, now)
    if started.run_id is None:
        await ctx.reply(ctx.render("sop/already_running.j2", s=script, subject=started.subject,
                                   run_id=started.existing))
        return
    ctx.after_commit(sop.pump.kick)
    first = sop.preview(script, now, {}, 1)[:3]
    await ctx.reply(ctx.render("sop/started.j2", s=script, subject=started.subject, run_id=started.run_id,
                               first=first, vias=VIA_NAMES))


@router.command("sop pause", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR], private=True,
                help="暂停一次运行：到点的步骤先不发，恢复后按超时规则补发或跳过", examples=["/sop pause 12"])
async def sop_pause(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    run = await sop.one_run(ctx.session, ctx.args["run"])
    ok = await sop.engine.pause(ctx.session, run.id)
    await ctx.reply(ctx.render("sop/run_changed.j2", action="暂停", ok=ok, run=run, subject=_subject_of(run),
                               states=RUN_STATES))


@router.command("sop resume", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR], private=True,
                help="恢复一次暂停的运行", examples=["/sop resume 12"])
async def sop_resume(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    run = await sop.one_run(ctx.session, ctx.args["run"])
    ok = await sop.engine.resume(ctx.session, run.id)
    if ok:
        ctx.after_commit(sop.pump.kick)
    await ctx.reply(ctx.render("sop/run_changed.j2", action="恢复", ok=ok, run=run, subject=_subject_of(run),
                               states=RUN_STATES))


@router.command("sop stop", Arg("run", "运行编号", type="int", min=1), roles=[OPERATOR], private=True, confirm=True,
                help="停止一次运行：还没发的步骤全部取消", examples=["/sop stop 12"])
async def sop_stop(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    run = await sop.one_run(ctx.session, ctx.args["run"])
    ok = bool(await sop.engine.stop(ctx.session, [run.id], f"{event.sender.display} 手动停止"))
    await ctx.reply(ctx.render("sop/run_changed.j2", action="停止", ok=ok, run=run, subject=_subject_of(run),
                               states=RUN_STATES))


@router.command("sop status", Arg("target", "群|运行编号", optional=True, rest=True, default=""),
                roles=[OPERATOR], private=True, help="正在运行的脚本（全部、某个群，或 #编号 查看一次运行的每一步）",
                examples=["/sop status", "/sop status 本群", "/sop status #12"])
async def sop_status(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    target = (ctx.args["target"] or "").strip()
    m = re.fullmatch(r"#?(\d+)", target)
    if m:
        run = await sop.one_run(ctx.session, int(m.group(1)))
        detail = await sop.run_detail(ctx.session, run)
        await ctx.reply(ctx.render("sop/run.j2", run=run, subject=_subject_of(run), states=STATE_NAMES,
                                   outcomes=OUTCOME_NAMES, vias=VIA_NAMES, run_states=RUN_STATES,
                                   local=lambda at: _local(ctx, at), **detail))
        return
    chat_id, where = None, ""
    if target:
        chat_id, chat_name = await sop.resolve_group(ctx.session, event.chat, target)
        where = chat_name or chat_id
    limit = ctx.config.sop.status_limit
    page = await sop.live_page(ctx.session, chat_id, limit)
    await ctx.reply(ctx.render("sop/status.j2", where=where, limit=limit, subject=_subject_of, run_states=RUN_STATES,
                               local=lambda at: _local(ctx, at), **page))


@router.command("sop migrate", Arg("id", "脚本id"), Arg("run", "运行编号", type="int", optional=True, min=1),
                roles=[OPERATOR], private=True, confirm=True,
                help="把正在运行的（或某一次）运行迁移到脚本的当前版本：已发的不重发，没发的按新版本重新排期",
                examples=["/sop migrate newcomer-7d", "/sop migrate newcomer-7d 12"])
async def sop_migrate(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    script = sop.find(ctx.args["id"])
    totals, already = await sop.migrate(ctx.session, script, ctx.args["run"])
    if totals["runs"]:
        ctx.after_commit(sop.pump.kick)
    await ctx.reply(ctx.render("sop/migrated.j2", s=script, totals=totals, already=already))


@router.command("sop reload", roles=[OPERATOR], private=True, help="立即重新加载脚本文件，并列出每个问题（文件:行号）")
async def sop_reload(event: MessageEvent, ctx: Context) -> None:
    sop = ctx.get(SOP)
    report = sop.reload(force=True)
    await ctx.reply(ctx.render("sop/reload.j2", report=report, scripts=sop.scripts,
                               problems=[str(p) for p in report.problems]))
