"""Member tiers: the points ledger and the 量型 → 质型 → VIP → 种子用户 ladder.

The feature's home: :mod:`bot.tiers.feature` assembles it, :mod:`bot.tiers.ladder`
moves members (the service handlers call), :mod:`bot.tiers.directory` is the
member directory other features read (``bot.members.MEMBERS``),
:mod:`bot.tiers.customers` is what operators see of customers (notes, profile,
silence, churn), :mod:`bot.tiers.store` holds its SQL, :mod:`bot.tiers.rulesfile` the ``tiers.yaml``
contract and :mod:`bot.tiers.rules` its evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.tiers.customers import Customers
    from bot.tiers.ladder import Ladder

LADDER: ServiceKey[Ladder] = ServiceKey("ladder")
CUSTOMERS: ServiceKey[Customers] = ServiceKey("customers")
