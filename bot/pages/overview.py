"""The overview: the report's five dimensions as charts for a period against the one before, and the
operations health (outbox, inbox lag, files refused on reload).

The figures are :meth:`bot.insights.report.Insights.report` — the one query layer of ``siyu report
--json`` and ``/stats`` — turned into ECharts options here (data, not code: ``static/console.js``
draws them). The report part is an htmx partial (``/console/overview/report``) so the health shows at
once; the report of a period is kept ``console.report_cache_s`` seconds and computed once at a time,
since on a large database it takes seconds. Operators (as for ``/stats``) see the report; reviewers
see the health.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from bot.compliance import MODERATION
from bot.insights import INSIGHTS
from bot.insights.labels import channel_label
from bot.insights.period import MAX_DAYS, Period, local_today, parse_span
from bot.knowledge import KNOWLEDGE
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import OPERATOR, REVIEWER
from bot.sop import MOMENTS, SOP

if TYPE_CHECKING:
    from bot.app import BotApp

SPANS = {"today": ("今天", "今天"), "7": ("7天", "近 7 天"), "30": ("30天", "近 30 天")}
NOW, BEFORE = "本期", "上期"
DEAD_SHOWN = 20


# ── the period asked for ──


@dataclass(frozen=True, slots=True)
class Asked:
    """The period of ``?span=`` (today, 7, 30) or ``?since=&until=`` (custom), or the problem with it."""

    period: Period | None
    span: str
    since: str
    until: str
    problem: str = ""

    @property
    def query(self) -> str:
        if self.span == "custom":
            return urlencode({"span": "custom", "since": self.since, "until": self.until})
        return f"span={self.span}"


def asked_period(request: web.Request) -> Asked:
    bot = bot_of(request)
    tz = bot.config.bot.tz
    today = local_today(bot.clock.now(), tz)
    since, until = request.query.get("since", "").strip()[:10], request.query.get("until", "").strip()[:10]
    span = request.query.get("span", "") or ("custom" if since else "7")
    if span in SPANS:
        period = parse_span(SPANS[span][0], today, tz)
        assert period is not None  # the three spans always parse
        return Asked(period, span, period.since.isoformat(), period.until.isoformat())
    if span != "custom":
        return Asked(None, "7", since, until, "未知的时段")
    try:
        first = date.fromisoformat(since)
        last = date.fromisoformat(until) if until else today
    except ValueError:
        return Asked(None, "custom", since, until, "日期应写成 YYYY-MM-DD，例如 2026-12-01")
    if first > last:
        return Asked(None, "custom", since, until, f"开始日期 {first} 晚于结束日期 {last}")
    if (last - first).days + 1 > MAX_DAYS:
        return Asked(None, "custom", since, until, f"一次最多看 {MAX_DAYS} 天")
    if not (2000 <= first.year and last.year <= 2100):
        return Asked(None, "custom", since, until, "日期超出范围")
    return Asked(Period(first, last, tz), "custom", first.isoformat(), last.isoformat())


# ── the report, kept a little while ──


class ReportCache:
    """The report per period, reused ``ttl`` seconds; one computation per period at a time (a second
    viewer waits for the first one's result instead of starting another)."""

    def __init__(self, ttl: float, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.kept: dict[tuple[str, str], tuple[float, datetime, dict[str, Any]]] = {}
        self.running: dict[tuple[str, str], asyncio.Future[tuple[datetime, dict[str, Any]]]] = {}

    async def get(self, bot: BotApp, period: Period) -> tuple[datetime, dict[str, Any]]:
        """(when computed, the report) — ``Insights.report`` of the period, the whole bot."""
        key = (period.since.isoformat(), period.until.isoformat())
        found = self.kept.get(key)
        if found is not None and self.clock() - found[0] < self.ttl:
            return found[1], found[2]
        waiting = self.running.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[tuple[datetime, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.running[key] = future
        try:
            report = await bot.get(INSIGHTS).report(period)
            at = bot.clock.now()
            if self.ttl > 0:
                self.kept = {k: v for k, v in self.kept.items() if self.clock() - v[0] < self.ttl}
                self.kept[key] = (self.clock(), at, report)
            future.set_result((at, report))
            return at, report
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked as seen: nobody else may be waiting for it
            raise
        finally:
            del self.running[key]


# ── the health ──


async def file_problems(bot: BotApp) -> list[tuple[str, list[str]]]:
    """What each reloaded kind of file has wrong now (the previous good version stays in service)."""
    out: list[tuple[str, list[str]]] = []
    moderation = bot.maybe(MODERATION)
    if moderation is not None:
        out.append(("敏感词词库", list(moderation.problems)))
    kb = bot.maybe(KNOWLEDGE)
    if kb is not None:
        out.append(("知识库", [str(p) for p in kb.base.problems]))
    sop = bot.maybe(SOP)
    if sop is not None:
        out.append(("SOP 脚本", [str(p) for p in sop.files.problems]))
    moments = bot.maybe(MOMENTS)
    if moments is not None:
        out.append(("朋友圈日历", [str(p) for p in moments.problems]))
    return out


@requires(OPERATOR, REVIEWER)
@aiohttp_jinja2.template("overview.html")
async def overview(request: web.Request) -> dict[str, Any]:
    bot = bot_of(request)
    asked = asked_period(request)
    outbox = await bot.outbox.counts(("pending", "sending", "dead"))  # not every sent row: an index range each
    return {"page": "overview", "health": await bot.health(), "outbox": outbox,
            "dead": await bot.outbox.dead(DEAD_SHOWN), "files": await file_problems(bot), "asked": asked,
            "spans": {k: v[1] for k, v in SPANS.items()}, "report": bot.maybe(INSIGHTS) is not None
            and request[STAFF].has_role(OPERATOR)}


@requires(OPERATOR)
async def report_part(request: web.Request) -> web.StreamResponse:
    """The charts of the period (htmx partial of the overview)."""
    from bot.pages.app import REPORTS  # the cache lives with the console application

    bot = bot_of(request)
    asked = asked_period(request)
    context: dict[str, Any] = {"asked": asked, "installed": bot.maybe(INSIGHTS) is not None}
    if context["installed"] and asked.period is not None:
        at, report = await request.app[REPORTS].get(bot, asked.period)
        context.update(at=at, r=report, charts=charts(report))
    return aiohttp_jinja2.render_template("overview_report.html", request, context)


@requires(OPERATOR)
async def report_json(request: web.Request) -> web.StreamResponse:
    """The same report as JSON (what ``siyu report --json`` prints for the period)."""
    from bot.pages.app import REPORTS  # the cache lives with the console application

    bot = bot_of(request)
    asked = asked_period(request)
    if bot.maybe(INSIGHTS) is None:
        return web.json_response({"error": "报表功能没有启用"}, status=404)
    if asked.period is None:
        return web.json_response({"error": asked.problem}, status=400)
    _, report = await request.app[REPORTS].get(bot, asked.period)
    return web.json_response(report, dumps=_dumps)


def _dumps(obj: Any) -> str:
    import json  # the answer keeps the Chinese readable

    return json.dumps(obj, ensure_ascii=False)


# ── the charts (ECharts options: data only) ──


def bars(categories: list[str], now: list[Any], before: list[Any], *, unit: str = "") -> dict[str, Any]:
    """Grouped bars: this period against the one before, category by category."""
    return {
        "tooltip": {"trigger": "axis"}, "legend": {"data": [NOW, BEFORE], "top": 0},
        "grid": {"left": 8, "right": 8, "top": 32, "bottom": 8, "containLabel": True},
        "xAxis": {"type": "category", "data": categories, "axisLabel": {"interval": 0}},
        "yAxis": {"type": "value", "name": unit, "minInterval": 1},
        "series": [{"name": NOW, "type": "bar", "data": now, "itemStyle": {"color": "#07c160"}},
                   {"name": BEFORE, "type": "bar", "data": before, "itemStyle": {"color": "#9aa5b1"}}],
    }


def ladder(steps: list[dict[str, Any]], before: list[dict[str, Any]]) -> dict[str, Any]:
    """The funnel as horizontal bars, the lowest tier on top: members at each tier or above, this period
    and the one before."""
    option = bars([s["name"] for s in steps], [s["members"] for s in steps],
                  [b["members"] for b in before], unit="人")
    option["xAxis"], option["yAxis"] = ({"type": "value", "minInterval": 1},
                                        {"type": "category", "data": option["xAxis"]["data"], "inverse": True})
    option["tooltip"]["axisPointer"] = {"type": "shadow"}
    option["grid"]["right"] = 48  # room for the value labels right of the longest bar
    for series in option["series"]:
        series["label"] = {"show": True, "position": "right"}
    return option


def _union(*keys: Any) -> list[str]:
    out: list[str] = []
    for ks in keys:
        out += [k for k in ks if k not in out]
    return out


def charts(r: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """One option per chart; None where both periods have nothing to draw (the page says so)."""
    u, c, b, f, d = r["users"], r["conversion"], r["behaviour"], r["referral"], r["deals"]
    names = {s["tier"]: s["name"] for s in c["funnel"]}
    out: dict[str, dict[str, Any] | None] = {}
    tiers = _union(u["by_tier"], u["previous"]["by_tier"])
    out["users_tier"] = bars([names.get(t, t) for t in tiers], [u["by_tier"].get(t, 0) for t in tiers],
                             [u["previous"]["by_tier"].get(t, 0) for t in tiers], unit="人") if tiers else None
    chans = _union(u["by_channel"], u["previous"]["by_channel"])
    out["users_channel"] = bars([channel_label(x) for x in chans], [u["by_channel"].get(x, 0) for x in chans],
                                [u["previous"]["by_channel"].get(x, 0) for x in chans], unit="人") if chans else None
    out["funnel"] = ladder(c["funnel"], c["previous"]["funnel"]) \
        if any(s["members"] for s in c["funnel"] + c["previous"]["funnel"]) else None
    keys = (("active", "活跃"), ("checkin_members", "打卡"), ("homework_members", "作业"), ("silent", "沉默"))
    now, before = [b[k] for k, _ in keys], [b["previous"][k] for k, _ in keys]
    out["behaviour"] = bars([n for _, n in keys], now, before, unit="人") if any(now + before) else None
    kb = (("answered", "答上"), ("suggested", "给出候选"), ("missed", "未答"))
    now, before = [b["kb"][k] for k, _ in kb], [b["previous"]["kb"][k] for k, _ in kb]
    out["kb"] = bars([n for _, n in kb], now, before, unit="次") if any(now + before) else None
    ref = (("invites", "邀请入群"), ("joined", "受邀新成员"), ("bought", "受邀成员购买"))
    now, before = [f[k] for k, _ in ref], [f["previous"][k] for k, _ in ref]
    out["referral"] = bars([n for _, n in ref], now, before, unit="人") if any(now + before) else None
    held = _union(d["by_tier"], d["previous"]["by_tier"])
    out["deals"] = bars([names.get(t, t) for t in held], [d["by_tier"].get(t, {}).get("gmv", 0) for t in held],
                        [d["previous"]["by_tier"].get(t, {}).get("gmv", 0) for t in held], unit="元") \
        if held else None
    return out


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", overview)
    r.add_get("/overview/report", report_part)
    r.add_get("/api/report", report_json)
