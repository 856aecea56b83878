"""Compliance: the bot side of moderation — watching messages, alerts and their routing, the archive import.

The text engine (normalise, match, detectors, lexicon files) is the ``moderation``
package; this feature feeds it messages and acts on its hits. The service is
``bot.compliance.service.Moderation`` under :data:`MODERATION`; where an alert is
routed is ``bot.compliance.alerts.AlertRouting.route``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.compliance.service import Moderation

MODERATION: ServiceKey[Moderation] = ServiceKey("moderation")
