"""Campaigns: segment sends (群发 to a tier, a tag or a group's customers) and channel codes (渠道活码).

``config`` (the ``[campaigns]`` section), ``models`` and ``store`` (the send, task, recipient and
channel tables and ALL their SQL), ``service`` (planning and queueing a send, polling its results),
``channels`` (creating channel codes, counting who came through them), ``feature`` (assembling it).
The chat side is handlers/campaigns.py. Members are read through bot.members; the tiers feature tags
a customer added through a channel by asking :data:`bot.members.CHANNEL_NAMES`, which this feature
provides.

This package itself holds only the service keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.campaigns.channels import Channels
    from bot.campaigns.service import SegmentSends

CAMPAIGNS: ServiceKey[SegmentSends] = ServiceKey("campaigns")
CHANNELS: ServiceKey[Channels] = ServiceKey("channels")

__all__ = ["CAMPAIGNS", "CHANNELS"]
