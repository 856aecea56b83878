"""One router per feature, included explicitly (no discovery)."""

from handlers import admin, knowledge

FEATURES = [
    admin.setup,
    knowledge.setup,
]
