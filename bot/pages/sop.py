"""SOP and Moments: scripts and their live runs, one run's timeline (past and coming steps) with pause, resume
and stop; the Moments week as a calendar with approve and skip and each post's result.

Every change runs the ``/sop`` or ``/moments`` command it mirrors (bot.pages.actions).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
from aiohttp import web

from bot.commands import CommandError
from bot.pages.actions import run_command
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import OPERATOR, REVIEWER
from bot.sop import MOMENTS, SOP
from bot.sop.engine import OUTCOME_NAMES, RUN_STATES, STATE_NAMES

if TYPE_CHECKING:
    pass




@requires(OPERATOR)
@aiohttp_jinja2.template("sop.html")
async def overview(request: web.Request) -> dict[str, Any]:
    bot = bot_of(request)
    sop = bot.maybe(SOP)
    if sop is None:
        return {"page": "sop", "installed": False}
    chat = request.query.get("chat", "").strip()[:160] or None
    async with bot.db.read() as s:
        live = await sop.live_page(s, chat, 100)
    return {"page": "sop", "installed": True, "scripts": sorted(sop.scripts.values(), key=lambda x: x.id),
            "live": live, "chat": chat or "", "problems": sop.files.problems, "runs": RUN_STATES}


@requires(OPERATOR)
@aiohttp_jinja2.template("sop_run.html")
async def run(request: web.Request) -> dict[str, Any]:
    return await _run(request, None)


async def _run(request: web.Request, outcome: Any) -> dict[str, Any]:
    bot = bot_of(request)
    sop = bot.get(SOP)
    try:
        run_id = int(request.match_info["id"])
        async with bot.db.read() as s:
            row = await sop.one_run(s, run_id)
            detail = await sop.run_detail(s, row)
    except (ValueError, CommandError):
        raise web.HTTPNotFound(text="没有这个运行", content_type="text/plain") from None
    now = bot.clock.now()
    steps = detail["steps"]
    return {"page": "sop", "r": row, "past": [x for x in steps if x.due_at <= now or x.state != "pending"],
            "coming": [x for x in steps if x.due_at > now and x.state == "pending"], "d": detail,
            "states": STATE_NAMES, "runs": RUN_STATES, "outcomes": OUTCOME_NAMES, "outcome": outcome}


@requires(OPERATOR)
async def run_action(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action, run_id = str(form.get("action", "")), request.match_info["id"]
    if action not in ("pause", "resume", "stop") or not run_id.isdigit():
        raise web.HTTPBadRequest(text="未知的操作", content_type="text/plain")
    outcome = await run_command(bot_of(request), request[STAFF], f"sop {action} {run_id}")
    if outcome.confirm_code:  # /sop stop asks to confirm: the page shows the button
        return aiohttp_jinja2.render_template("outcome.html", request, {
            "page": "sop", "title": f"停止运行 #{run_id}", "outcome": outcome, "back": f"/console/sop/runs/{run_id}"})
    return aiohttp_jinja2.render_template("sop_run.html", request, await _run(request, outcome))


@requires(OPERATOR, REVIEWER)
@aiohttp_jinja2.template("moments.html")
async def week(request: web.Request) -> dict[str, Any]:
    return await _week(request, None)


async def _week(request: web.Request, outcome: Any) -> dict[str, Any]:
    bot = bot_of(request)
    moments = bot.maybe(MOMENTS)
    if moments is None or moments.calendar is None:
        return {"page": "sop", "installed": False, "problems": moments.problems if moments else []}
    try:
        start = date.fromisoformat(request.query.get("start", "")) if request.query.get("start") else \
            moments.local_today()
    except ValueError:
        start = moments.local_today()
    async with bot.db.read() as s:
        days = await moments.days_view(s, [start + timedelta(days=i) for i in range(7)], bot.clock.now())
    return {"page": "sop", "installed": True, "days": days, "start": start, "problems": moments.problems,
            "prev": start - timedelta(days=7), "next": start + timedelta(days=7), "outcome": outcome}


@requires(OPERATOR, REVIEWER)
async def day_action(request: web.Request) -> web.StreamResponse:
    """Approve a day (``/moments approve``) or skip a day or one slot (``/moments skip``)."""
    form = await request.post()
    action, day, slot = str(form.get("action", "")), request.match_info["day"], str(form.get("slot", "")).strip()
    try:
        date.fromisoformat(day)
    except ValueError:
        raise web.HTTPBadRequest(text="日期应是 YYYY-MM-DD", content_type="text/plain") from None
    if action == "approve":
        body = f"moments approve {day}"
    elif action == "skip":
        body = f"moments skip {day}" + (f" {slot}" if slot else "")
    else:
        raise web.HTTPBadRequest(text="未知的操作", content_type="text/plain")
    outcome = await run_command(bot_of(request), request[STAFF], body)
    return aiohttp_jinja2.render_template("moments.html", request, await _week(request, outcome))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/sop", overview)
    r.add_get("/sop/runs/{id}", run)
    r.add_post("/sop/runs/{id}", run_action)
    r.add_get("/moments", week)
    r.add_post("/moments/{day}", day_action)
