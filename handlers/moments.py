"""The Moments (朋友圈) calendar in chat: the week ahead, today's posts, skips, approvals, changes.

Publishing runs in pumps (bot.sop.publisher): each slot of each date once, as an
``add_moment_task`` job or a reminder to the staff; the job's result is polled.
A daily reminder asks the approvers to approve tomorrow when approval is on.
The work is ``MomentsService`` (``ctx.get(MOMENTS)``).
"""

from __future__ import annotations

from datetime import date, timedelta

from bot.commands import Arg, CommandError
from bot.context import Context
from bot.events import MessageEvent
from bot.roles import OPERATOR, REVIEWER
from bot.routing import Router
from bot.sop import MOMENTS
from bot.sop.timing import WEEKDAY_ALIASES, WEEKDAY_CN, WEEKDAYS

router = Router("moments")
router.alias("朋友圈", "moments")
router.describe("moments", "朋友圈日历：未来 7 天、今天、跳过、审批、修改（运营）")


def _weekday(raw: str) -> int:
    found = WEEKDAY_ALIASES.get(raw.strip().lower())
    if found is None:
        raise CommandError(f"星期应是 周一…周日 或 monday…sunday，收到 {raw!r}")
    return found


@router.command("moments week", Arg("start", "开始日期", type="date", optional=True), roles=[OPERATOR], private=True,
                help="未来 7 天的朋友圈计划：每天每个时段的时间、主题、文案、可见范围、发布员工和状态",
                examples=["/moments week", "/moments week 2026-12-08"])
async def moments_week(event: MessageEvent, ctx: Context) -> None:
    moments = ctx.get(MOMENTS)
    start = ctx.args["start"] or moments.local_today()
    view = await moments.days_view(ctx.session, [start + timedelta(days=i) for i in range(7)], ctx.now())
    await ctx.reply(ctx.render("moments/week.j2", days=view, start=start,
                               problems=[str(p) for p in moments.problems]))


@router.command("moments today", roles=[OPERATOR], private=True, help="今天的朋友圈：每个时段的状态，已发布的任务结果")
async def moments_today(event: MessageEvent, ctx: Context) -> None:
    moments = ctx.get(MOMENTS)
    view = await moments.days_view(ctx.session, [moments.local_today()], ctx.now())
    await ctx.reply(ctx.render("moments/today.j2", day=view[0], problems=[str(p) for p in moments.problems]))


@router.command("moments skip", Arg("date", "日期", type="date"), Arg("slot", "时段id或时间", optional=True),
                roles=[OPERATOR], private=True, confirm=True,
                help="某天不发朋友圈（或只跳过其中一个时段，写时段 id 或 HH:MM）",
                examples=["/moments skip 2026-11-27", "/moments skip 2026-11-27 08:30"])
async def moments_skip(event: MessageEvent, ctx: Context) -> None:
    day: date = ctx.args["date"]
    wanted = ctx.args["slot"]
    skipped, done = await ctx.get(MOMENTS).skip(ctx.session, day, wanted, event.sender.id, ctx.now())
    await ctx.reply(ctx.render("moments/skipped.j2", day=day, weekday=WEEKDAY_CN[day.weekday()],
                               slots=[ps.slot for ps in skipped], done=done, whole=not wanted))


@router.command("moments approve", Arg("date", "日期", type="date"), roles=[OPERATOR, REVIEWER], private=True,
                help="审批某天的朋友圈（开启审批时，未审批的时段不会发出）",
                examples=["/moments approve 2026-11-24"])
async def moments_approve(event: MessageEvent, ctx: Context) -> None:
    moments = ctx.get(MOMENTS)
    day: date = ctx.args["date"]
    await moments.approve(ctx.session, day, event.sender.id, ctx.now())
    view = await moments.days_view(ctx.session, [day], ctx.now())
    await ctx.reply(ctx.render("moments/approved.j2", day=view[0], actor=event.sender.display))


@router.command("moments set", Arg("weekday", "星期"), Arg("time", "时间", type="time"),
                Arg("text", "文案", rest=True),
                roles=[OPERATOR], private=True,
                help="修改每周某天某个时间的朋友圈文案（该时间已有时段则替换文案，否则新增时段）；"
                     "保存在数据库里，之后可以写进 moments.yaml 再 /moments unset；"
                     "文案含合规词库的违规词（reject）不保存，敏感词（review）会提醒",
                examples=["/moments set 周三 12:00 午休时间，泡一杯白牡丹吧🍵",
                          "/moments set friday 20:00 周末茶单来啦"])
async def moments_set(event: MessageEvent, ctx: Context) -> None:
    weekday = _weekday(ctx.args["weekday"])
    hhmm = ctx.args["time"].strftime("%H:%M")
    text = ctx.args["text"].strip()
    replaced, warnings = await ctx.get(MOMENTS).set_text(ctx.session, weekday, hhmm, text, event.sender.id,
                                                         ctx.now())
    await ctx.reply(ctx.render("moments/set.j2", weekday=WEEKDAY_CN[weekday], name=WEEKDAYS[weekday], hhmm=hhmm,
                               text=text, replaced=replaced, warnings=warnings))


@router.command("moments unset", Arg("weekday", "星期"), Arg("time", "时间", type="time"), roles=[OPERATOR],
                private=True, help="撤销 /moments set 的修改，恢复文件里的安排", examples=["/moments unset 周三 12:00"])
async def moments_unset(event: MessageEvent, ctx: Context) -> None:
    weekday = _weekday(ctx.args["weekday"])
    hhmm = ctx.args["time"].strftime("%H:%M")
    await ctx.get(MOMENTS).unset_text(ctx.session, weekday, hhmm, event.sender.id, ctx.now())
    await ctx.reply(ctx.render("moments/unset.j2", weekday=WEEKDAY_CN[weekday], hhmm=hhmm))


@router.command("moments reload", roles=[OPERATOR], private=True,
                help="立即重新加载 moments.yaml，并列出每个问题（文件:行号）")
async def moments_reload(event: MessageEvent, ctx: Context) -> None:
    moments = ctx.get(MOMENTS)
    changed = moments.reload(force=True)
    await ctx.reply(ctx.render("moments/reload.j2", changed=changed, calendar=moments.calendar,
                               problems=[str(p) for p in moments.problems], findings=moments.findings()))
