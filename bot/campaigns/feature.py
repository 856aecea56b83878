"""The campaigns feature assembled: segment sends (and their result polling), channel codes, templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.campaigns import CAMPAIGNS, CHANNELS
from bot.campaigns.channels import Channels
from bot.campaigns.service import SegmentSends
from bot.campaigns.store import CampaignsStore
from bot.masssend import ResultsPump
from bot.members import CHANNEL_NAMES

if TYPE_CHECKING:
    from bot.app import BotApp

TEMPLATES = Path(__file__).with_name("templates")


def install(app: BotApp) -> None:
    app.templates.add_dir(TEMPLATES)
    store = CampaignsStore(app.db)
    sends = SegmentSends(app, app.config.campaigns, store)
    channels = Channels(app, app.config.campaigns, store)
    app.provide(CAMPAIGNS, sends)
    app.provide(CHANNELS, channels)
    app.provide(CHANNEL_NAMES, channels)
    app.pumps.append(ResultsPump("campaign-results", sends.poll_results))
