"""The schema comes from migrations, matches the models, and migrating is safe to repeat and to race."""

from __future__ import annotations

import asyncio

from bot.config import normalise_db_url
from bot.storage import migrate
from bot.storage.db import Database


async def test_blank_database_migrates_to_the_models(blank_db_url: str, tmp_path: object) -> None:
    import handlers  # noqa: F401 - every feature's tables

    db = Database(normalise_db_url(blank_db_url, tmp_path))  # type: ignore[arg-type]
    try:
        await asyncio.gather(migrate.upgrade(db), migrate.upgrade(db))  # two replicas starting together
        await migrate.upgrade(db)
        heads = await migrate.current_heads(db)
        assert "0001_foundation" in heads or heads  # every branch head applied
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(migrate.alembic_config())
        assert heads == set(script.get_heads())
        assert await migrate.schema_drift(db) == []
    finally:
        await db.dispose()
