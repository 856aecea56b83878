"""The knowledge tables as migrated (0101_knowledge) match the models."""

from __future__ import annotations

from pathlib import Path

from bot.config import normalise_db_url
from bot.storage import migrate
from bot.storage.db import Database


async def test_knowledge_tables_match_their_migration(db_url: str) -> None:
    db = Database(normalise_db_url(db_url, Path.cwd()))
    try:
        drift = [d for d in await migrate.schema_drift(db) if "kb_" in repr(d)]
        assert drift == []
        assert "0101_knowledge" in await migrate.current_heads(db)
    finally:
        await db.dispose()
