"""One router per feature, included explicitly (no discovery)."""

from handlers import admin, knowledge, tiers

FEATURES = [
    admin.setup,
    knowledge.setup,
    tiers.setup,
]
