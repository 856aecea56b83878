"""The knowledge feature assembled: its service, the reloader, the start-up load, the nightly prune, templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.knowledge import KNOWLEDGE, store
from bot.knowledge.answers import TEMPLATES, answer_check
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.matcher import MatchSettings
from bot.knowledge.service import KnowledgeService
from bot.openquestions import open_questions
from bot.textcheck import TEXT_CHECK

if TYPE_CHECKING:
    from bot.app import BotApp


def install(app: BotApp) -> None:
    cfg = app.config.knowledge
    app.templates.add_dir(TEMPLATES)
    base = KnowledgeBase(app.config.resolve(cfg.dir), settings=MatchSettings.from_config(cfg),
                         check=answer_check(app.templates, lambda: app.maybe(TEXT_CHECK)), db_check=app.templates.check)
    service = KnowledgeService(app, base, cfg)
    app.provide(KNOWLEDGE, service)
    app.pumps.append(service.reloader)
    open_questions(app).add("knowledge", store.offered_at)  # 「您是不是想问」: a number picks from it
    app.on_startup.append(service.load_on_start)
    app.scheduler.add_cron("knowledge-prune", service.prune, hour=4, minute=41)
