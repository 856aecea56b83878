"""Handoffs (转人工): the customers waiting for a person or with one, how long they have waited, who has
them, whether it was escalated; take and close run ``/handoff take N`` and ``/handoff close N``
(bot.pages.actions) — the chat commands' roles, checks, messages to the member and audit."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.handoff import HANDOFF
from bot.handoff.service import REASONS
from bot.pages.actions import run_command
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import OPERATOR


def waited(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} 分钟"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} 小时 {rest} 分钟" if rest else f"{hours} 小时"
    days, hours = divmod(hours, 24)
    return f"{days} 天 {hours} 小时" if hours else f"{days} 天"


@requires(OPERATOR)
@aiohttp_jinja2.template("handoffs.html")
async def waiting(request: web.Request) -> dict[str, Any]:
    return await _waiting(request, None)


async def _waiting(request: web.Request, outcome: Any) -> dict[str, Any]:
    bot = bot_of(request)
    service = bot.maybe(HANDOFF)
    if service is None:
        return {"page": "handoffs", "installed": False}
    async with bot.db.read() as s:
        items, total = await service.list_open(s, expire=False)
    wanted = request.query.get("id", "")
    return {"page": "handoffs", "installed": True, "items": items, "total": total, "reasons": REASONS,
            "waited": waited, "wanted": int(wanted) if wanted.isdigit() else None,
            "me": request[STAFF].user_id, "outcome": outcome}


@requires(OPERATOR)
async def act(request: web.Request) -> web.StreamResponse:
    """Take or close one handoff: the chat command, its answer shown above the list."""
    form = await request.post()
    action, handoff_id = str(form.get("action", "")), request.match_info["id"]
    if action not in ("take", "close"):
        raise web.HTTPBadRequest(text="未知的操作", content_type="text/plain")
    if not handoff_id.isdigit():
        raise web.HTTPBadRequest(text="编号应是数字", content_type="text/plain")
    outcome = await run_command(bot_of(request), request[STAFF], f"handoff {action} {handoff_id}")
    return aiohttp_jinja2.render_template("handoffs.html", request, await _waiting(request, outcome))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/handoffs", waiting)
    r.add_post("/handoffs/{id}", act)
