"""The console's pages: sign-in and sign-out, and one page per kind of work.

Each handler reads the signed-in :class:`~bot.access.service.Staff` from the
request, calls one service method and renders a template. A page whose feature
is not installed (or has nothing yet) shows an empty state that says so.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session

from bot.access import ACCESS
from bot.access.service import AccessDenied
from bot.pages import security
from bot.pages.actions import run_command
from bot.pages.security import client_ip, csrf_token, requires
from bot.roles import OPERATOR, REVIEWER
from bot.wecomapi import WECOM_API, WeComError

if TYPE_CHECKING:
    from bot.app import BotApp

NAV = [
    ("overview", "/console/", "概览", (OPERATOR, REVIEWER)),
    ("alerts", "/console/alerts", "合规告警", (REVIEWER,)),
    ("knowledge", "/console/knowledge", "知识库", (OPERATOR,)),
    ("sop", "/console/sop", "SOP 与朋友圈", (OPERATOR,)),
    ("members", "/console/members", "成员", (OPERATOR,)),
    ("handoffs", "/console/handoffs", "转人工", (OPERATOR,)),
]


def bot_of(request: web.Request) -> BotApp:
    from bot.pages.app import BOT  # the key lives with the application that holds it

    return request.app[BOT]  # type: ignore[return-value]


async def page_context(request: web.Request) -> dict[str, Any]:
    staff = request.get(security.STAFF)
    nav = [(k, href, label) for k, href, label, roles in NAV if staff is not None and staff.has_role(*roles)]
    return {"staff": staff, "nav": nav, "csrf": await csrf_token(request), "bot_name": bot_of(request).config.bot.name}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path inside the console (no open redirect)."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


def wecom_login_available(bot: BotApp) -> bool:
    cfg = bot.config
    return bool(cfg.console.wecom_login and cfg.wecom.corp_id and bot.maybe(WECOM_API) is not None)


# ── sign-in ──────────────────────────────────────────────────────────────────────


@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> dict[str, Any]:
    return {"wecom": wecom_login_available(bot_of(request)), "next": safe_next(request.query.get("next")),
            "problem": request.query.get("problem", "")}


@aiohttp_jinja2.template("login_link.html")
async def link_page(request: web.Request) -> dict[str, Any]:
    # Opening the link shows a button; only the POST signs in (a chat app's link preview must not use it up).
    return {"token": request.match_info["token"]}


async def link_sign_in(request: web.Request) -> web.StreamResponse:
    await security.check_csrf(request)
    return await _sign_in(request, via="invite", token=request.match_info["token"])


async def _sign_in(request: web.Request, *, via: str, token: str = "", user_id: str = "") -> web.StreamResponse:
    bot = bot_of(request)
    from bot.pages.app import LOGIN_LIMIT

    if not request.app[LOGIN_LIMIT].allow(client_ip(request)):
        raise web.HTTPTooManyRequests(text="登录尝试太频繁，请一分钟后再试。", content_type="text/plain")
    access = bot.get(ACCESS)
    try:
        async with bot.db.session() as s:
            if via == "invite":
                sid, _ = await access.redeem(s, token, client_ip(request))
            else:
                sid = await access.open_session(s, user_id, via=via, ip=client_ip(request))
    except AccessDenied as exc:
        raise web.HTTPFound("/console/login?" + urlencode({"problem": exc.reason})) from None
    session = await new_session(request)  # a fresh cookie: nothing from before sign-in carries over
    session["sid"] = sid
    session["csrf"] = secrets.token_urlsafe(32)
    raise web.HTTPFound("/console/")


async def wecom_start(request: web.Request) -> web.StreamResponse:
    bot = bot_of(request)
    if not wecom_login_available(bot):
        raise web.HTTPFound("/console/login?" + urlencode({"problem": "没有配置企业微信登录"}))
    session = await get_session(request)
    state = secrets.token_urlsafe(24)
    session["oauth_state"] = state
    base = (bot.config.console.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    query = urlencode({"login_type": "CorpApp", "appid": bot.config.wecom.corp_id,
                       "agentid": bot.config.wecom.agent_id, "redirect_uri": f"{base}/console/login/wecom/callback",
                       "state": state})
    raise web.HTTPFound(f"{bot.config.console.wecom_login_url}?{query}")


async def wecom_callback(request: web.Request) -> web.StreamResponse:
    bot = bot_of(request)
    session = await get_session(request)
    expected = str(session.pop("oauth_state", "") or "")
    state, code = request.query.get("state", ""), request.query.get("code", "")
    import hmac  # constant-time comparison of the state WeCom hands back

    if not expected or not state or not hmac.compare_digest(state.encode(), expected.encode()):
        raise web.HTTPFound("/console/login?" + urlencode({"problem": "登录状态不匹配（state），请重新登录"}))
    if not code or not wecom_login_available(bot):
        raise web.HTTPFound("/console/login?" + urlencode({"problem": "企业微信没有返回登录码"}))
    try:
        answer = await bot.get(WECOM_API).call("auth/getuserinfo", method="GET", params={"code": code})
    except WeComError as exc:
        raise web.HTTPFound("/console/login?" + urlencode({"problem": f"企业微信登录失败（{exc.errcode}）"})) \
            from None
    user_id = str(answer.get("userid") or answer.get("UserId") or "")
    if not user_id:
        raise web.HTTPFound("/console/login?" + urlencode({"problem": "只有企业成员可以登录控制台"}))
    return await _sign_in(request, via="wecom", user_id=user_id)


async def sign_out(request: web.Request) -> web.StreamResponse:
    bot = bot_of(request)
    session = await get_session(request)
    async with bot.db.session() as s:
        await bot.get(ACCESS).sign_out(s, str(session.get("sid", "")))
    session.invalidate()
    raise web.HTTPFound("/console/login")


# ── pages ────────────────────────────────────────────────────────────────────────


@requires(OPERATOR, REVIEWER)
async def confirm(request: web.Request) -> web.StreamResponse:
    """The console's 确认 button: ``/confirm CODE`` for a command that asked for it on the page."""
    form = await request.post()
    code, back = str(form.get("code", "")), safe_next(str(form.get("back", "")))
    outcome = await run_command(bot_of(request), request[security.STAFF], f"confirm {code}")
    return aiohttp_jinja2.render_template("outcome.html", request, {"page": "", "title": "确认", "outcome": outcome,
                                                                     "back": back})


def add_routes(app: web.Application) -> None:
    from bot.pages import alerts, handoffs, knowledge, members, overview, sop  # each family adds its routes

    for family in (overview, alerts, knowledge, members, sop, handoffs):
        family.add_routes(app)
    r = app.router
    r.add_get("/login", login_page)
    r.add_get("/login/link/{token}", link_page)
    r.add_post("/login/link/{token}", link_sign_in)
    r.add_get("/login/wecom", wecom_start)
    r.add_get("/login/wecom/callback", wecom_callback)
    r.add_post("/logout", sign_out)
    r.add_post("/confirm", confirm)
