"""The knowledge tables as migrated (0101_knowledge, 0102_kb_outcomes) match the models."""

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
        assert "0102_kb_outcomes" in await migrate.current_heads(db)  # the knowledge branch, on 0101_knowledge
    finally:
        await db.dispose()
