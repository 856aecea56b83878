"""The Moments (朋友圈) calendar in chat: the week ahead, today's posts, skips, approvals, changes.

Publishing runs in pumps (bot.sop.publisher): each slot of each date once, as an
``add_moment_task`` job or a reminder to the staff; the job's result is polled.
A daily reminder asks the approvers to approve tomorrow when approval is on.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from bot.commands import Arg, CommandError
from bot.context import Context
from bot.events import MessageEvent
from bot.pump import Reloader
from bot.roles import OPERATOR, REVIEWER
from bot.routing import Router
from bot.sop import MOMENTS
from bot.sop.moments import ORIGIN_NAMES, DayPlan, PlannedSlot
from bot.sop.publisher import OVERRIDES, POST_STATES, MomentResultsPump, MomentsPump, MomentsService
from bot.sop.timing import WEEKDAY_ALIASES, WEEKDAY_CN, WEEKDAYS
from bot.storage.db import insert_ignoring_conflicts

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.moments")


def slot_status(plan: DayPlan, ps: PlannedSlot, post: Any, now: datetime) -> str:
    if post is not None:
        label = POST_STATES.get(post.state, post.state)
        return f"{label}（{post.detail}）" if post.detail and post.state != "reminded" else label
    if ps.skipped_by:
        return f"将跳过（{ps.skipped_by}）"
    waiting = plan.approval_required and not plan.approved_by
    if ps.at > now:
        return "待审批" if waiting else "待发布"
    return "待审批（已到时间）" if waiting else "发布中"


def setup(app: BotApp) -> Router:
    cfg = app.config.moments
    path = app.config.resolve(cfg.calendar)
    templates_dir = path.parent / "templates"  # beside the calendar, as `moments week --calendar` reads it
    service = MomentsService(app, path, templates_dir)
    service.reload(force=True)
    app.provide(MOMENTS, service)
    if cfg.enabled:
        reloader = Reloader("moments-reload", app.clock, app.config.sop.reload_interval_s,
                            lambda _files: service.reload())
        app.pumps.extend([reloader, MomentsPump(service),
                          MomentResultsPump(service)])

        async def remind_approvers(fire_time: datetime) -> None:
            await approval_reminder(app, service, fire_time)

        app.scheduler.add_cron("moments-approval-reminder", remind_approvers, crontab=cfg.approval_reminder)

    router = Router("moments")
    router.describe("moments", "朋友圈日历：未来 7 天、今天、跳过、审批、修改（运营）")

    def need_calendar() -> None:
        if service.calendar is None:
            problems = "；".join(str(p) for p in service.problems) or "没有加载"
            raise CommandError(f"朋友圈日历不可用：{problems}")

    async def days_view(ctx: Context, days: list[date]) -> list[dict[str, Any]]:
        need_calendar()
        s = ctx.session
        changes = await service.changes(s)
        posts = await service.posts(s, days)
        now = ctx.now()
        out = []
        for day in days:
            plan = service.plan(day, changes)
            assert plan is not None
            slots = []
            for ps in plan.slots:
                post = posts.get((day.isoformat(), ps.slot.id))
                try:
                    text = service.render(ps.slot, day)
                except Exception as exc:
                    text = f"（渲染失败：{exc}）"
                tags, tiers = service.audience(ps.slot)
                slots.append({"ps": ps, "slot": ps.slot, "text": text, "status": slot_status(plan, ps, post, now),
                              "via": service.via(ps.slot), "staff": service.staff(ps.slot), "tags": tags,
                              "tiers": tiers, "origin": ORIGIN_NAMES.get(ps.slot.origin, ps.slot.origin),
                              "post": post})
            out.append({"plan": plan, "day": day, "weekday": WEEKDAY_CN[day.weekday()], "slots": slots})
        return out

    @router.command("moments week", Arg("start", "开始日期", type="date", optional=True), roles=[OPERATOR],
                    help="未来 7 天的朋友圈计划：每天每个时段的时间、主题、文案、可见范围、发布员工和状态",
                    examples=["/moments week", "/moments week 2026-12-08"])
    async def moments_week(event: MessageEvent, ctx: Context) -> None:
        start = ctx.args["start"] or service.local_today()
        view = await days_view(ctx, [start + timedelta(days=i) for i in range(7)])
        await ctx.reply(ctx.render("moments/week.j2", days=view, start=start, problems=[str(p) for p in
                                                                                        service.problems]))

    @router.command("moments today", roles=[OPERATOR], help="今天的朋友圈：每个时段的状态，已发布的任务结果")
    async def moments_today(event: MessageEvent, ctx: Context) -> None:
        view = await days_view(ctx, [service.local_today()])
        await ctx.reply(ctx.render("moments/today.j2", day=view[0], problems=[str(p) for p in service.problems]))

    @router.command("moments skip", Arg("date", "日期", type="date"), Arg("slot", "时段id或时间", optional=True),
                    roles=[OPERATOR], confirm=True,
                    help="某天不发朋友圈（或只跳过其中一个时段，写时段 id 或 HH:MM），需确认",
                    examples=["/moments skip 2026-11-27", "/moments skip 2026-11-27 08:30"])
    async def moments_skip(event: MessageEvent, ctx: Context) -> None:
        need_calendar()
        day: date = ctx.args["date"]
        today = service.local_today()
        if day < today:
            raise CommandError(f"{day} 已经过去了")
        s = ctx.session
        plan = service.plan(day, await service.changes(s))
        assert plan is not None
        posts = await service.posts(s, [day])
        wanted = ctx.args["slot"]
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
        slot_ids = [ps.slot.id for ps in targets] if wanted else ["*"]
        for sid in slot_ids:
            await _upsert(ctx, key=f"skip:{day}:{sid}", kind="skip", date_=day.isoformat(), slot_id=sid,
                          actor=event.sender.id)
        await ctx.reply(ctx.render("moments/skipped.j2", day=day, weekday=WEEKDAY_CN[day.weekday()],
                                   slots=[ps.slot for ps in targets if ps not in done], done=done, whole=not wanted))

    @router.command("moments approve", Arg("date", "日期", type="date"), roles=[OPERATOR, REVIEWER],
                    help="审批某天的朋友圈（开启审批时，未审批的时段不会发出）",
                    examples=["/moments approve 2026-11-24"])
    async def moments_approve(event: MessageEvent, ctx: Context) -> None:
        need_calendar()
        day: date = ctx.args["date"]
        if day < service.local_today():
            raise CommandError(f"{day} 已经过去了，不能再审批")
        await _upsert(ctx, key=f"approve:{day}", kind="approve", date_=day.isoformat(), actor=event.sender.id)
        view = await days_view(ctx, [day])
        await ctx.reply(ctx.render("moments/approved.j2", day=view[0], actor=event.sender.display))

    @router.command("moments set", Arg("weekday", "星期"), Arg("time", "时间", type="time"),
                    Arg("text", "文案", rest=True),
                    roles=[OPERATOR],
                    help="修改每周某天某个时间的朋友圈文案（该时间已有时段则替换文案，否则新增时段）；"
                         "保存在数据库里，之后可以写进 moments.yaml 再 /moments unset",
                    examples=["/moments set 周三 12:00 午休时间，泡一杯白牡丹吧🍵",
                              "/moments set friday 20:00 周末茶单来啦"])
    async def moments_set(event: MessageEvent, ctx: Context) -> None:
        weekday = _weekday(ctx.args["weekday"])
        hhmm = ctx.args["time"].strftime("%H:%M")
        text = ctx.args["text"].strip()
        if len(text) > 2000:
            raise CommandError(f"朋友圈文字最多 2000 字，这里有 {len(text)} 字")
        try:
            ctx.app.templates.check(text)
        except Exception as exc:
            raise CommandError(f"文案里的模板写法有误：{exc}") from None
        await _upsert(ctx, key=f"set:{WEEKDAYS[weekday]}:{hhmm}", kind="set", weekday=WEEKDAYS[weekday], time=hhmm,
                      text=text, actor=event.sender.id)
        replaced = None
        if service.calendar is not None:
            replaced = next((s for s in service.calendar.week.get(weekday, ()) if s.hhmm == hhmm), None)
        await ctx.reply(ctx.render("moments/set.j2", weekday=WEEKDAY_CN[weekday], name=WEEKDAYS[weekday], hhmm=hhmm,
                                   text=text, replaced=replaced))

    @router.command("moments unset", Arg("weekday", "星期"), Arg("time", "时间", type="time"), roles=[OPERATOR],
                    help="撤销 /moments set 的修改，恢复文件里的安排", examples=["/moments unset 周三 12:00"])
    async def moments_unset(event: MessageEvent, ctx: Context) -> None:
        weekday = _weekday(ctx.args["weekday"])
        hhmm = ctx.args["time"].strftime("%H:%M")
        res = await ctx.session.execute(update(OVERRIDES).where(
            OVERRIDES.c.key == f"set:{WEEKDAYS[weekday]}:{hhmm}", OVERRIDES.c.active.is_(True)).values(
            active=False, actor=event.sender.id, at=ctx.now()))
        if not res.rowcount:
            raise CommandError(f"{WEEKDAY_CN[weekday]} {hhmm} 没有聊天里设置的文案")
        await ctx.reply(ctx.render("moments/unset.j2", weekday=WEEKDAY_CN[weekday], hhmm=hhmm))

    @router.command("moments reload", roles=[OPERATOR], help="立即重新加载 moments.yaml，并列出每个问题（文件:行号）")
    async def moments_reload(event: MessageEvent, ctx: Context) -> None:
        changed = service.reload(force=True)
        await ctx.reply(ctx.render("moments/reload.j2", changed=changed, calendar=service.calendar,
                                   problems=[str(p) for p in service.problems]))

    return router


def _weekday(raw: str) -> int:
    found = WEEKDAY_ALIASES.get(raw.strip().lower())
    if found is None:
        raise CommandError(f"星期应是 周一…周日 或 monday…sunday，收到 {raw!r}")
    return found


async def _upsert(ctx: Context, *, key: str, kind: str, actor: str, date_: str = "", weekday: str = "", time: str = "",
                  slot_id: str = "", text: str = "") -> None:
    values = {"kind": kind, "date": date_, "weekday": weekday, "time": time, "slot_id": slot_id, "text": text,
              "actor": actor, "active": True, "at": ctx.now()}
    s = ctx.session
    await s.execute(insert_ignoring_conflicts(ctx.app.db.dialect, OVERRIDES, ["key"]).values(key=key, **values))
    await s.execute(update(OVERRIDES).where(OVERRIDES.c.key == key).values(**values))


async def approval_reminder(app: BotApp, service: MomentsService, fire_time: datetime) -> None:
    """Tell the approvers what tomorrow holds when it still needs approving."""
    if service.calendar is None:
        return
    tomorrow = service.local_today(fire_time) + timedelta(days=1)
    async with app.db.session() as s:
        plan = service.plan(tomorrow, await service.changes(s))
        if plan is None or not plan.approval_required or plan.approved_by:
            return
        slots = [ps for ps in plan.slots if not ps.skipped_by]
        if not slots:
            return
        to = list(app.config.moments.approvers or app.config.bot.ops_users)
        if not to:
            log.warning("moments for %s need approval but no moments.approvers / bot.ops_users are set", tomorrow)
            return
        texts = []
        for ps in slots:
            try:
                texts.append(service.render(ps.slot, tomorrow))
            except Exception as exc:
                texts.append(f"（渲染失败：{exc}）")
        text = app.templates.render("moments/approval_needed.j2", day=tomorrow, weekday=WEEKDAY_CN[tomorrow.weekday()],
                                    slots=list(zip(slots, texts, strict=True)))
        n = await app.outbox.enqueue(s, key=f"moments-approve:{tomorrow}", kind="app_message", text=text, to=to,
                                     source=f"moments:{tomorrow}")
    if n:
        app.outbox_pump.kick()



