"""The report in chat: ``/stats [今天|本周|本月|N天]`` and ``/nps [N天]`` (operators; answered 1:1 when typed in a
group).

The figures come from :class:`bot.insights.report.Insights` — the same query layer as
``siyu report`` and the console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.commands import Arg, Args
from bot.context import Context
from bot.events import MessageEvent
from bot.insights import INSIGHTS
from bot.insights.labels import channel_label
from bot.insights.period import Period, local_today, parse_span
from bot.roles import OPERATOR
from bot.routing import Router

if TYPE_CHECKING:
    from bot.app import BotApp

router = Router("insights")
router.alias("统计", "stats")
router.alias("数据", "stats")
router.alias("满意度", "nps")


async def report_first(event: MessageEvent, app: BotApp, args: Args) -> tuple[Period, dict[str, Any]] | None:
    """The report of the span asked for, read before the command's transaction opens (the command stage's
    prepare): a report over many members takes seconds and must not hold the database's writer."""
    tz = app.config.bot.tz
    period = parse_span(args["span"], local_today(app.clock.now(), tz), tz)
    return None if period is None else (period, await app.get(INSIGHTS).report(period))


@router.command("stats", Arg("span", "今天|昨天|本周|本月|N天", optional=True, default="7天"), roles=[OPERATOR],
                private=True, help="运营数据：用户、转化、行为、裂变、成交，与上一个同样长的时段对比（默认近 7 天）",
                examples=["/stats", "/stats 今天", "/stats 本月", "/stats 30天"], prepare=report_first)
async def stats(event: MessageEvent, ctx: Context) -> None:
    period = await _period(ctx, "insights/stats_usage.j2")
    if period is None:
        return
    ready = ctx.prepared
    report = ready[1] if ready is not None and ready[0] == period else await ctx.get(INSIGHTS).report(period)
    names = {t["tier"]: t["name"] for t in report["conversion"]["funnel"]}
    await ctx.reply(ctx.render("insights/stats.j2", r=report, names=names, channel=channel_label))


@router.command("nps", Arg("span", "N天", optional=True, default="30天"), roles=[OPERATOR], private=True,
                help="满意度 NPS：推荐、中立、贬损人数与最近的低分原因（默认近 30 天）",
                examples=["/nps", "/nps 7天", "/nps 本月", "/满意度 90天"])
async def nps(event: MessageEvent, ctx: Context) -> None:
    period = await _period(ctx, "insights/nps_usage.j2")
    if period is None:
        return
    insights = ctx.get(INSIGHTS)
    figures = await insights.nps(ctx.session, period)
    latest = await insights.detractors(ctx.session, period, ctx.config.report.nps_comments)
    await ctx.reply(ctx.render("insights/nps.j2", n=figures, period=period, latest=latest))


async def _period(ctx: Context, usage: str) -> Period | None:
    """The period the ``span`` argument names; None (and the command's usage answered) when it names none."""
    tz = ctx.app.config.bot.tz
    period = parse_span(ctx.args["span"], local_today(ctx.now(), tz), tz)
    if period is None:
        await ctx.reply(ctx.render(usage, span=ctx.args["span"]))
    return period
