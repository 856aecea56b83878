"""Human handoff (转人工): a customer asks for a person, or is angry, and a person comes.

``config`` (the ``[handoff]`` section), ``models`` and ``store`` (the handoff table and
ALL its SQL), ``service`` (open, follow up, list, take, close, escalate — one
implementation for chat and the web console), ``feature`` (assembling it). The chat
side is handlers/handoff.py. Other features ask whether a member is with a person
through bot.handoffs (``HANDOFFS``), never this package.

This package itself holds only the service key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.handoff.service import HandoffService

HANDOFF: ServiceKey[HandoffService] = ServiceKey("handoff")

__all__ = ["HANDOFF"]
