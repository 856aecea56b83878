"""One router per feature, included explicitly (no discovery)."""

from handlers import admin

FEATURES = [
    admin.setup,
]
