"""What stands in front of every console page: the session cookie, sign-in, roles, CSRF, headers, rate limits.

- The cookie (aiohttp-session, encrypted, HttpOnly, SameSite=Lax, Secure when
  ``console.public_url`` is https) holds a session id and the CSRF token; the
  session row in the database decides whether it is still valid (expiry,
  sign-out, a role taken away in chat all end it at once).
- Every page needs a signed-in session: without one a page redirects to the
  sign-in page (302) and a JSON endpoint answers 401.
- Every state-changing request (POST) carries the session's CSRF token, as the
  ``csrf`` form field or the ``X-CSRF-Token`` header (htmx sends it); compared in
  constant time.
- Every response carries a Content-Security-Policy without inline scripts,
  ``frame-ancestors 'none'``, nosniff and a same-origin referrer policy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from sqlalchemy import select

from bot.access import ACCESS
from bot.access.service import Staff
from bot.storage.models import KeyValue

if TYPE_CHECKING:
    from bot.app import BotApp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "siyu_console"
STAFF = web.RequestKey("staff", Staff)
KEY_NAME = "console:cookie_key"
PUBLIC = ("/console/login", "/console/static/")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class LazyCookieStorage(AbstractStorage):
    """aiohttp-session's encrypted cookie, with the key loaded on first use: from ``console.secret``, else made
    once and kept in the database so every replica and every restart reads the same cookies."""

    def __init__(self, bot: BotApp) -> None:
        cfg = bot.config.console
        super().__init__(cookie_name=COOKIE, max_age=int(cfg.session_hours * 3600), httponly=True,
                         samesite="Lax", secure=cfg.public_url.startswith("https://"), path="/console")
        self.bot = bot
        self._inner: EncryptedCookieStorage | None = None

    async def _storage(self) -> EncryptedCookieStorage:
        if self._inner is None:
            key = await cookie_key(self.bot)
            self._inner = EncryptedCookieStorage(key, cookie_name=self.cookie_name, **self.cookie_params)
        return self._inner

    async def load_session(self, request: web.Request) -> Session:
        return await (await self._storage()).load_session(request)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        await (await self._storage()).save_session(request, response, session)


async def cookie_key(bot: BotApp) -> bytes:
    secret = bot.config.console.secret.get_secret_value()
    if secret:
        return hashlib.sha256(secret.encode()).digest()
    async with bot.db.session() as s:
        row = (await s.execute(select(KeyValue.value).where(KeyValue.key == KEY_NAME))).scalar_one_or_none()
        if row is None:
            made = base64.b64encode(secrets.token_bytes(32)).decode()
            from bot.storage.db import insert_ignoring_conflicts  # the first replica to start writes it

            table = KeyValue.__table__
            await s.execute(insert_ignoring_conflicts(bot.db.dialect, table, ["key"]).values(
                key=KEY_NAME, value=made, updated_at=bot.clock.now()))
            row = (await s.execute(select(KeyValue.value).where(KeyValue.key == KEY_NAME))).scalar_one()
    return base64.b64decode(row)


class RateLimit:
    """At most ``per_minute`` attempts per client address in any minute (per replica)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, who: str) -> bool:
        now = self.clock()
        q = self.seen[who]
        while q and q[0] <= now - 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        if len(self.seen) > 10_000:  # forget idle addresses
            for k in [k for k, v in self.seen.items() if not v or v[-1] <= now - 60][:5_000]:
                del self.seen[k]
        return True


def client_ip(request: web.Request) -> str:
    return request.remote or ""


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/console/api/") or "application/json" in request.headers.get("Accept", "")


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/console/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def make_auth_middleware(bot: BotApp) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC):
            return await handler(request)
        session = await get_session(request)
        staff: Staff | None = None
        sid = session.get("sid")
        if sid:
            async with bot.db.session() as s:
                staff = await bot.get(ACCESS).who(s, str(sid))
            if staff is None:
                session.invalidate()
        if staff is None:
            if wants_json(request):
                return web.json_response({"error": "请先登录控制台"}, status=401)
            raise web.HTTPFound(f"/console/login?next={request.rel_url.path}")
        request[STAFF] = staff
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request)
        return await handler(request)

    return auth_middleware


async def check_csrf(request: web.Request) -> None:
    session = await get_session(request)
    expected = str(session.get("csrf") or "")
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = str((await request.post()).get("csrf", ""))
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        if wants_json(request):
            raise web.HTTPForbidden(text='{"error": "表单已过期，请刷新页面后重试"}', content_type="application/json")
        raise web.HTTPForbidden(text="表单已过期或来源不对（CSRF），请刷新页面后重试。", content_type="text/plain")


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """A page or action only these roles (or an admin) may use; others get 403."""

    def deco(fn: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            staff: Staff = request[STAFF]
            if not staff.has_role(*roles):
                if wants_json(request):
                    return web.json_response({"error": "没有权限"}, status=403)
                raise web.HTTPForbidden(text="没有权限：这个页面需要" + "或".join(ROLE_NAMES.get(r, r) for r in roles)
                                        + "角色。", content_type="text/plain")
            return await fn(request)

        guarded.__name__ = fn.__name__
        guarded.__doc__ = fn.__doc__
        guarded.required_roles = frozenset(roles)  # type: ignore[attr-defined]
        return guarded

    return deco


ROLE_NAMES = {"admin": "管理员", "operator": "运营", "reviewer": "合规审核"}
