"""A fresh, migrated database per test: a SQLite file, or PostgreSQL when SIYU_TEST_DATABASE_URL is set.

The current migrations run once into a template (a SQLite file, or a PostgreSQL database);
each test gets a copy (a file copy, or ``CREATE DATABASE … TEMPLATE``), which takes
milliseconds where migrating would take a second.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

PG_ENV = "SIYU_TEST_DATABASE_URL"


def pg_url() -> str:
    """The PostgreSQL server tests run on ("" for SQLite), e.g. ``postgresql://siyu@127.0.0.1:5432/siyu``."""
    return os.environ.get(PG_ENV, "")


def on_postgres() -> bool:
    return bool(pg_url())


def _server(url: str) -> str:
    return url.rpartition("/")[0]


async def _pg_exec(sql: str) -> None:
    import asyncpg  # PostgreSQL only

    base = _server(pg_url()).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` (a SQLAlchemy URL) to the current heads."""
    from bot.storage import migrate as migrations
    from bot.storage.db import Database

    db = Database(url)
    try:
        await migrations.upgrade(db)
    finally:
        await db.dispose()


async def make_template(directory: Path) -> str:
    """A migrated template: the SQLite file's path (inside ``directory``), or the PostgreSQL database's name."""
    import handlers  # noqa: F401 - every feature's tables are in the metadata

    if on_postgres():
        name = await fresh_pg_database("siyu_tmpl")
        await migrate(f"{_server(pg_url()).replace('postgresql://', 'postgresql+asyncpg://')}/{name}")
        return name
    path = directory / "template.db"
    await migrate(f"sqlite+aiosqlite:///{path}")
    return str(path)


async def copy_template(template: str, directory: Path) -> str:
    """A copy of the template for one test: the URL to put in its config."""
    if on_postgres():
        return f"{_server(pg_url())}/{await fresh_pg_database('siyu_t', template)}"
    path = directory / "siyu.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


async def fresh_pg_database(prefix: str, template: str | None = None) -> str:
    """CREATE DATABASE (empty, or from ``template``) on the test server; its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


async def drop(url: str) -> None:
    """Drop a test's PostgreSQL database (its SQLite file goes with the test's tmp_path)."""
    if on_postgres() and url.startswith(_server(pg_url()) + "/"):
        await _pg_exec(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
