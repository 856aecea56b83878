"""Members: search, a member's profile (tier, points, ledger, tier history, tags, channel, groups, notes, alerts
about their messages, and what other features add to ``/member``: SOP runs, handoffs …), granting points with a
reason and adding a note — the ``/points add`` and ``/note`` commands they mirror."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.compliance import MODERATION
from bot.compliance.service import AlertFilter
from bot.pages.actions import run_command
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import OPERATOR
from bot.tiers import CUSTOMERS, LADDER


@requires(OPERATOR)
@aiohttp_jinja2.template("members.html")
async def search(request: web.Request) -> dict[str, Any]:
    bot = bot_of(request)
    ladder = bot.maybe(LADDER)
    if ladder is None:
        return {"page": "members", "installed": False}
    q = request.query.get("q", "").strip()[:64]
    async with bot.db.read() as s:
        found = await ladder.search(s, q) if q else []
    return {"page": "members", "installed": True, "q": q, "found": found, "names": ladder.rules.names}


@requires(OPERATOR)
@aiohttp_jinja2.template("member.html")
async def profile(request: web.Request) -> dict[str, Any]:
    return await _profile(request, None)


async def _profile(request: web.Request, outcome: Any) -> dict[str, Any]:
    bot = bot_of(request)
    ladder = bot.get(LADDER)
    member_id = request.match_info["id"]
    async with bot.db.read() as s:
        if await ladder.store.member(s, member_id) is None:
            raise web.HTTPNotFound(text=f"没有成员 {member_id}", content_type="text/plain")
        card = await ladder.card(s, member_id, bot.clock.now())
        history = await ladder.history(s, member_id)
        customers = bot.get(CUSTOMERS)
        notes, note_count = await customers.notes(s, member_id)
        record = await customers.record(s, card["m"])  # as /member: channel, churn, what other features know
        compliance = bot.maybe(MODERATION)
        alerts = (await compliance.find_alerts(s, AlertFilter(status="all", staff=member_id), 1, size=20,
                                               categories=False))["rows"] if compliance is not None else []
    return {"page": "members", "c": card, "h": history, "alerts": alerts, "names": ladder.rules.names,
            "notes": notes, "note_count": note_count, "outcome": outcome, **record}


@requires(OPERATOR)
async def grant(request: web.Request) -> web.StreamResponse:
    """Points with a reason: ``/points add @member N reason``, its reply shown on the profile."""
    form = await request.post()
    points, reason = str(form.get("points", "")).strip(), " ".join(str(form.get("reason", "")).split())[:200]
    member_id = request.match_info["id"]
    outcome = await run_command(bot_of(request), request[STAFF], f"points add @{member_id} {points} {reason}")
    return aiohttp_jinja2.render_template("member.html", request, await _profile(request, outcome))


@requires(OPERATOR)
async def note(request: web.Request) -> web.StreamResponse:
    """A note on the customer: ``/note @member text``, its reply shown on the profile."""
    form = await request.post()
    text = " ".join(str(form.get("text", "")).split())
    member_id = request.match_info["id"]
    outcome = await run_command(bot_of(request), request[STAFF], f"note @{member_id} {text}")
    return aiohttp_jinja2.render_template("member.html", request, await _profile(request, outcome))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/members", search)
    r.add_get("/members/{id}", profile)
    r.add_post("/members/{id}/points", grant)
    r.add_post("/members/{id}/note", note)
