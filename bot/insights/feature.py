"""The report assembled: the query layer over the tiers, knowledge and campaigns stores, and /stats's templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.campaigns.store import CampaignsStore
from bot.insights import INSIGHTS
from bot.insights.report import Insights
from bot.tiers import LADDER

if TYPE_CHECKING:
    from bot.app import BotApp


def install(app: BotApp) -> None:
    """Needs the tiers feature installed first (the ladder's store and rules)."""
    ladder = app.get(LADDER)
    app.provide(INSIGHTS, Insights(app.db, ladder.store, lambda: ladder.rules,
                                   silent_days=app.config.report.silent_days, channels=CampaignsStore(app.db)))
    app.templates.add_dir(Path(__file__).with_name("templates"))
