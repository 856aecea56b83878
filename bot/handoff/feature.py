"""The handoff feature assembled: its service (also the bot.handoffs state), the escalation task, templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.handoff import HANDOFF
from bot.handoff.service import ESCALATE_TASK, HandoffService
from bot.handoffs import HANDOFFS
from bot.memberfacts import member_facts

if TYPE_CHECKING:
    from bot.app import BotApp

TEMPLATES = Path(__file__).with_name("templates")


def install(app: BotApp) -> None:
    app.templates.add_dir(TEMPLATES)
    service = HandoffService(app, app.config.handoff)
    app.provide(HANDOFF, service)
    app.provide(HANDOFFS, service)
    member_facts(app).add("转人工", service.member_facts)  # on the operators' profile (/member)
    app.timers.register(ESCALATE_TASK, service.escalate)
