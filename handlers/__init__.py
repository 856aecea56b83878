"""One router per feature, included explicitly (no discovery)."""

from handlers import admin, knowledge, moderation, tiers

FEATURES = [
    moderation.setup,
    admin.setup,
    knowledge.setup,
    tiers.setup,
]
