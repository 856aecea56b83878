"""One router per feature, included explicitly (no discovery)."""

from handlers import admin, knowledge, moments, sop, tiers

FEATURES = [
    admin.setup,
    knowledge.setup,
    tiers.setup,
    sop.setup,
    moments.setup,
]
