"""The reviewers' alert queue: filters, one alert with its marked span, context and history, actions, CSV.

Acknowledge, resolve and false-positive run the ``/alerts`` command they mirror
(bot.pages.actions); a bulk acknowledge runs ``/alerts ack`` once per alert.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
from aiohttp import web

from bot.compliance import MODERATION
from bot.compliance.service import AlertFilter
from bot.pages.actions import run_command
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import REVIEWER

if TYPE_CHECKING:
    pass

STATUSES = {"open": "待处理", "acked": "已确认", "resolved": "已处理", "false_positive": "误报", "all": "全部"}
LEVELS = {"reject": "拦截级", "review": "复核级"}
EXPORT_LIMIT = 50_000



def _day(value: str, tz: Any, *, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD filter as the start of that day (``end``: of the next day) in the bot's zone."""
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None
    if not 2000 <= day.year <= 2100:
        return None
    return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=tz)


def filter_of(request: web.Request) -> tuple[AlertFilter, dict[str, str]]:
    q = {k: request.query.get(k, "").strip()[:128] for k in ("status", "category", "level", "staff", "chat",
                                                               "since", "until")}
    q["status"] = q["status"] if q["status"] in STATUSES else "open"
    q["level"] = q["level"] if q["level"] in LEVELS else ""
    tz = bot_of(request).config.bot.tz
    return AlertFilter(status=q["status"], category=q["category"], level=q["level"], staff=q["staff"],
                       chat=q["chat"], since=_day(q["since"], tz), until=_day(q["until"], tz, end=True)), q


@requires(REVIEWER)
@aiohttp_jinja2.template("alerts.html")
async def queue(request: web.Request) -> dict[str, Any]:
    bot = bot_of(request)
    svc = bot.maybe(MODERATION)
    if svc is None:
        return {"page": "alerts", "installed": False}
    where, q = filter_of(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    async with bot.db.read() as s:
        found = await svc.find_alerts(s, where, page)
    query = "&".join(f"{k}={v}" for k, v in q.items() if v)
    return {"page": "alerts", "installed": True, "q": q, "found": found, "statuses": STATUSES, "levels": LEVELS,
            "query": query}


@requires(REVIEWER)
@aiohttp_jinja2.template("alert.html")
async def one(request: web.Request) -> dict[str, Any]:
    return await _one(request, None)


async def _one(request: web.Request, outcome: Any) -> dict[str, Any]:
    bot = bot_of(request)
    try:
        alert_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="没有这条预警", content_type="text/plain") from None
    async with bot.db.read() as s:
        row = await bot.get(MODERATION).alert(s, alert_id)
    if row is None:
        raise web.HTTPNotFound(text=f"没有编号为 {alert_id} 的预警", content_type="text/plain")
    text, start, end = row.text or "", max(0, row.span_start), max(0, row.span_end)
    parts = (text[:start], text[start:end], text[end:]) if 0 <= start < end <= len(text) else (text, "", "")
    return {"page": "alerts", "a": row, "parts": parts, "statuses": STATUSES, "levels": LEVELS, "outcome": outcome}


@requires(REVIEWER)
async def act(request: web.Request) -> web.StreamResponse:
    """ack / resolve / fp on one alert: the ``/alerts`` command, its reply shown on the alert's page."""
    form = await request.post()
    action, note = str(form.get("action", "")), " ".join(str(form.get("note", "")).split())[:500]
    if action not in ("ack", "resolve", "fp"):
        raise web.HTTPBadRequest(text="未知的操作", content_type="text/plain")
    alert_id = request.match_info["id"]
    if not alert_id.isdigit():
        raise web.HTTPBadRequest(text="预警编号应是数字", content_type="text/plain")
    body = f"alerts {action} {alert_id}" + (f" {note}" if note else "")
    outcome = await run_command(bot_of(request), request[STAFF], body)
    return aiohttp_jinja2.render_template("alert.html", request, await _one(request, outcome))


@requires(REVIEWER)
async def bulk_ack(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ids = [v for v in form.getall("id", []) if str(v).isdigit()][:200]
    bot, staff = bot_of(request), request[STAFF]
    outcomes = [await run_command(bot, staff, f"alerts ack {i}") for i in ids]
    done = sum(1 for o in outcomes if not o.failed and not o.text.startswith("❌"))
    return aiohttp_jinja2.render_template("bulk_done.html", request, {
        "page": "alerts", "asked": len(ids), "done": done, "outcomes": outcomes})


@requires(REVIEWER)
async def export(request: web.Request) -> web.StreamResponse:
    """The alerts of an audit period as CSV (UTF-8 with BOM so spreadsheet programs read the Chinese)."""
    bot = bot_of(request)
    where, _ = filter_of(request)
    async with bot.db.read() as s:
        found = await bot.get(MODERATION).find_alerts(s, where, 1, size=EXPORT_LIMIT)
    tz = bot.config.bot.tz
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["编号", "时间", "状态", "级别", "分类", "命中词", "原文命中", "员工", "员工ID", "会话", "会话ID",
                "消息", "重复次数", "确认人", "处理人", "备注"])
    for a in found["rows"]:
        w.writerow([a.id, a.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), STATUSES.get(a.status, a.status),
                    LEVELS.get(a.level, a.level), a.category, a.term, a.matched, a.sender_name, a.sender_id,
                    a.chat_name, a.chat_id, a.text, a.repeats, a.acked_by or "", a.resolved_by or "", a.note or ""])
    name = f"alerts-{datetime.now(tz).strftime('%Y%m%d-%H%M')}.csv"
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv",
                        charset="utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/alerts", queue)
    r.add_get("/alerts.csv", export)
    r.add_post("/alerts/ack", bulk_ack)
    r.add_get("/alerts/{id}", one)
    r.add_post("/alerts/{id}", act)
