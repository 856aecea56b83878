"""Schema migrations (alembic), applied on start and by ``siyu migrate``.

Each feature adds its own revision under ``migrations/versions``; features that
grow in parallel may branch from the same parent, so we upgrade to ``heads``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from bot.storage.db import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Modules that declare tables; imported so SQLModel.metadata is complete.
MODEL_MODULES: list[str] = [
    "bot.storage.models",
    "bot.knowledge.models",
    "bot.tiers.models",
    "bot.compliance.models",
    "bot.sop.models",
    "bot.access.models",
    "bot.handoff.models",
    "bot.campaigns.models",
]

_MIGRATION_LOCK = 7_264_001  # pg_advisory_xact_lock key: one replica migrates at a time


def target_metadata() -> MetaData:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), "heads")


async def upgrade(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade)


def _diff(connection: Connection) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(ctx, target_metadata())


async def schema_drift(db: Database) -> list[Any]:
    """Differences between the migrated schema and the models (empty when in step)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_diff)


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def current_heads(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)
