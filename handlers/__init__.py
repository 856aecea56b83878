"""One router per feature, included explicitly (no discovery)."""

from handlers import admin, knowledge, moderation, moments, sop, tiers

FEATURES = [
    moderation.setup,
    admin.setup,
    knowledge.setup,
    tiers.setup,
    sop.setup,
    moments.setup,
]
