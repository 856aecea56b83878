"""Assembling console access: the service under ACCESS and the ``access`` template folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.access import ACCESS
from bot.access.service import ConsoleAccess

if TYPE_CHECKING:
    from bot.app import BotApp


def install(app: BotApp) -> None:
    app.provide(ACCESS, ConsoleAccess(app.config.console, app.roles, app.clock))
    app.templates.add_dir(Path(__file__).with_name("templates"))
