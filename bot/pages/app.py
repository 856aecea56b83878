"""The web console: an aiohttp application mounted by bot.web under ``/console`` (``console.enabled``).

Server-rendered with jinja2 (aiohttp-jinja2, autoescaped HTML), htmx for partial
updates and Apache ECharts for charts, both vendored and served from
``/console/static``. Every page and action goes through bot.pages.security.
Pages call the same service methods as the chat commands: one implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web

from bot.pages import security, views
from bot.pages.overview import ReportCache
from bot.pages.security import LazyCookieStorage, RateLimit

if TYPE_CHECKING:
    from bot.app import BotApp

HERE = Path(__file__).parent
BOT = web.AppKey("bot", object)
LOGIN_LIMIT = web.AppKey("login_limit", RateLimit)
REPORTS = web.AppKey("reports", ReportCache)


def create_console_app(bot: BotApp) -> web.Application:
    app = web.Application()
    app[BOT] = bot
    app[LOGIN_LIMIT] = RateLimit(bot.config.console.login_attempts_per_minute)
    app[REPORTS] = ReportCache(bot.config.console.report_cache_s)
    # Outermost first: headers on every answer, then the cookie, then who is signed in, then the pages'
    # template context (which reads the session).
    app.middlewares.append(security.headers_middleware)
    aiohttp_session.setup(app, LazyCookieStorage(bot))
    app.middlewares.append(security.make_auth_middleware(bot))
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                               context_processors=[views.page_context], trim_blocks=True, lstrip_blocks=True)
    env.filters["localtime"] = lambda dt, fmt="%m-%d %H:%M": dt.astimezone(bot.config.bot.tz).strftime(fmt) \
        if dt else ""
    app.router.add_static("/static/", HERE / "static", name="static", append_version=False)
    views.add_routes(app)
    return app
