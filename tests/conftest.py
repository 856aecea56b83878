"""Shared fixtures: every test gets its own database, on SQLite or on PostgreSQL.

The suite runs on PostgreSQL when SIYU_TEST_DATABASE_URL is set (scripts/test does
that on its second pass); each test then gets a database cloned from a migrated
template. Otherwise each test gets a SQLite file copied from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config, load_config
from bot.feature import Setup
from bot.senders.base import Sender
from bot.senders.console import RecordingSender
from tests.fakes.wecom import fake_wecom, wecom_config  # noqa: F401 - fixtures for every test module
from tests.harness import Harness

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL", "")
REPO = Path(__file__).resolve().parent.parent


def on_postgres() -> bool:
    return bool(PG_URL)


def _pg_parts(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base, name


async def _pg_exec(sql: str) -> None:
    import asyncpg

    base, _ = _pg_parts(PG_URL)
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    from bot.storage import migrate
    from bot.storage.db import Database

    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to the current heads, cloned by every test."""
    import handlers  # noqa: F401 - every feature's tables are in the metadata

    if on_postgres():
        name = f"siyu_tmpl_{uuid.uuid4().hex[:8]}"

        async def make() -> None:
            await _pg_exec(f'CREATE DATABASE "{name}"')
            base, _ = _pg_parts(PG_URL)
            await _migrate(f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}")

        asyncio.run(make())
        return name
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return str(path)


async def _fresh_pg_database(prefix: str, template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


async def _drop_pg_database(name: str) -> None:
    await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_url(template_db: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for this test (a user-facing URL for config)."""
    if on_postgres():
        name = await _fresh_pg_database("siyu_t", template_db)
        yield f"{_pg_parts(PG_URL)[0]}/{name}"
        await _drop_pg_database(name)
    else:
        path = tmp_path / "siyu.db"
        shutil.copyfile(template_db, path)
        yield f"sqlite:///{path}"


@pytest.fixture
async def blank_db_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (for migration tests)."""
    if on_postgres():
        name = await _fresh_pg_database("siyu_b")
        yield f"{_pg_parts(PG_URL)[0]}/{name}"
        await _drop_pg_database(name)
    else:
        yield f"sqlite:///{tmp_path / 'blank.db'}"


TEST_ENV = {
    "SIYU_WEBHOOK__SECRET": "test-webhook-secret",
    "SIYU_WECOM__CORP_ID": "wx5823bf96d3bd56c7",
    "SIYU_WECOM__TOKEN": "QDG6eK",
    "SIYU_WECOM__ENCODING_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "SIYU_WECOM__AGENT_ID": "1000002",
    "SIYU_WECOM__SECRET": "test-app-secret",
    "SIYU_WECOM__MAX_CLOCK_SKEW_S": "0",
    "SIYU_AIBOT__TOKEN": "aibotToken123",
    "SIYU_AIBOT__ENCODING_AES_KEY": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
    "SIYU_BOT__ADMINS": '["admin01"]',
    "SIYU_BOT__STAFF_IDS": '["staff01", "staff02"]',
    "SIYU_LOG__LEVEL": "DEBUG",
    "SIYU_MOMENTS__ENABLED": "false",  # the example calendar would post at the fake clock's 10:00; tests enable it
}


@pytest.fixture
def make_config(db_url: str, tmp_path: Path) -> Callable[..., Config]:
    """Build a Config: the example file with test credentials; overrides as SECTION__KEY=value strings."""

    def build(**overrides: str) -> Config:
        env = dict(TEST_ENV)
        env["SIYU_DATABASE__URL"] = db_url
        for k, v in overrides.items():
            env[f"SIYU_{k.upper()}"] = v
        cfg = load_config(REPO / "config.example.toml", env)
        return cfg

    return build


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_bot(config: Config, clock: FakeClock) -> AsyncIterator[Callable[..., BotApp]]:
    """BotApp factory: the test's database, a fake clock, a recording sender, no background workers.

    Apps it made are stopped at teardown (stopping twice is harmless).
    """
    made: list[BotApp] = []

    def build(*, cfg: Config | None = None, sender: Sender | None = None, features: list[Setup] | None = None,
              run_workers: bool = False, **kw: Any) -> BotApp:
        app = BotApp(cfg or config, sender=sender if sender is not None else RecordingSender(), clock=clock,
                     features=features, run_workers=run_workers, **kw)
        made.append(app)
        return app

    yield build
    for app in made:
        await app.stop()


@pytest.fixture
async def bot(make_bot: Callable[..., BotApp]) -> AsyncIterator[BotApp]:
    app = make_bot()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def harness(bot: BotApp) -> Harness:
    return Harness(bot)
