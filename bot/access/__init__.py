"""Who may open the web console: one-time sign-in links, WeCom sign-in, and console sessions.

The people are the bot's own: admins from config, operators and reviewers granted
with ``/role`` — the same person has the same rights in chat and on the page.
``models`` (tables), ``store`` (their SQL), ``service`` (:class:`ConsoleAccess`),
``config`` (the ``[console]`` section), ``cli`` (``siyu console invite``); the
chat side is handlers/access.py and the pages are bot.pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.access.service import ConsoleAccess

ACCESS: ServiceKey[ConsoleAccess] = ServiceKey("console_access")
