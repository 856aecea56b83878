"""The pytest plugin (entry point ``pytest11``: ``siyu``): fixtures that build a bot per test.

Installed with siyu, it is active in every pytest run of the environment; ``-p no:siyu``
turns it off. The fixtures:

``make_bot(features=…, cfg=…, sender=…)``  a BotApp factory: the test's database, the ``clock``,
                                          a RecordingSender, no background workers; stopped at teardown
``bot`` / ``harness``                     a started BotApp with the ``siyu_features``, and a Harness on it
``config`` / ``make_config(**overrides)`` the test Config (``SECTION__KEY="value"`` overrides)
``clock``                                 the FakeClock the bot and the fake WeCom share
``db_url`` / ``template_db``              a fresh migrated database per test (PostgreSQL when
                                          SIYU_TEST_DATABASE_URL is set, else SQLite)
``fake_wecom`` / ``wecom_config(...)``    a fake WeCom API server, and a Config that sends through it
``siyu_config_file``                      the config file tests start from: the ini option ``siyu_config``
                                          (path relative to the ini file), else none (the defaults)
``siyu_features``                         what ``bot``, ``harness`` and ``make_bot()`` install; override it
                                          in a conftest or test module with your features

Fixtures import the bot when they run, not when pytest loads the plugin: a pytest run
that uses none of them does not pay for importing siyu.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import pytest
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the siyu pytest plugin needs pytest and pytest-asyncio ({exc}): pip install 'siyu[test]' "
                      "(or turn the plugin off with -p no:siyu)") from exc

from bot.testing.env import ROBOT_KEYS, test_config

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.clock import FakeClock
    from bot.config import Config
    from bot.feature import Feature, Setup
    from bot.senders.base import Sender
    from bot.testing.fake_wecom import FakeWeCom
    from bot.testing.harness import Harness


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("siyu_config", "the siyu config file the test configs start from (relative to the ini file)",
                  type="paths", default=[])


@pytest.fixture(scope="session")
def siyu_config_file(pytestconfig: pytest.Config) -> Path | None:
    """The config file tests start from (ini option ``siyu_config``); None: the built-in defaults."""
    paths = pytestconfig.getini("siyu_config")
    return Path(paths[0]) if paths else None


@pytest.fixture
def siyu_features(siyu_config_file: Path | None) -> list[Feature | Setup] | None:
    """What ``bot``/``harness``/``make_bot()`` install. None: siyu's built-in features, which read the data files
    the config file names (so only with ``siyu_config``); without a config file: none, only the core commands."""
    return None if siyu_config_file is not None else []


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to the current heads, copied by every test."""
    from bot.testing.database import make_template  # when used, not at plugin load

    return asyncio.run(make_template(tmp_path_factory.mktemp("template")))


@pytest_asyncio.fixture
async def db_url(template_db: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for this test (a user-facing URL for config)."""
    from bot.testing.database import copy_template, drop  # when used, not at plugin load

    url = await copy_template(template_db, tmp_path)
    yield url
    await drop(url)


@pytest.fixture
def make_config(db_url: str, siyu_config_file: Path | None) -> Callable[..., Config]:
    """Build a Config: the config file with the test credentials; overrides as SECTION__KEY=value strings."""

    def build(**overrides: str) -> Config:
        return test_config(siyu_config_file, db_url, overrides)

    return build


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def clock() -> FakeClock:
    from bot.clock import FakeClock  # when used, not at plugin load

    return FakeClock()


@pytest_asyncio.fixture
async def make_bot(config: Config, clock: FakeClock,
                   siyu_features: list[Feature | Setup] | None) -> AsyncIterator[Callable[..., BotApp]]:
    """BotApp factory: the test's database, a fake clock, a recording sender, no background workers.

    ``features`` defaults to ``siyu_features``. Apps it made are stopped at teardown (stopping twice is harmless).
    """
    from bot.app import BotApp  # when used, not at plugin load
    from bot.senders.console import RecordingSender

    made: list[BotApp] = []

    def build(*, cfg: Config | None = None, sender: Sender | None = None,
              features: list[Feature | Setup] | None = None, run_workers: bool = False, **kw: Any) -> BotApp:
        app = BotApp(cfg or config, sender=sender if sender is not None else RecordingSender(), clock=clock,
                     features=siyu_features if features is None else features, run_workers=run_workers, **kw)
        made.append(app)
        return app

    yield build
    for app in made:
        await app.stop()


@pytest_asyncio.fixture
async def bot(make_bot: Callable[..., BotApp]) -> AsyncIterator[BotApp]:
    app = make_bot()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest_asyncio.fixture
async def harness(bot: BotApp) -> Harness:
    from bot.testing.harness import Harness  # when used, not at plugin load

    return Harness(bot)


@pytest_asyncio.fixture
async def fake_wecom(clock: FakeClock) -> AsyncIterator[FakeWeCom]:
    """The fake on a free loopback port; its notion of time is the test's FakeClock."""
    from bot.testing.fake_wecom import FakeWeCom  # when used, not at plugin load

    fake = FakeWeCom(robot_keys=set(ROBOT_KEYS.values()), now=lambda: clock.now().timestamp())
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def wecom_config(make_config: Callable[..., Config], fake_wecom: FakeWeCom) -> Callable[..., Config]:
    """A config that sends through the WeCom API at the fake (overrides as in make_config)."""

    def build(**overrides: str) -> Config:
        values = {"BOT__SENDER": "wecom", "WECOM__API_BASE": fake_wecom.url, "WECOM__REQUEST_TIMEOUT_S": "2",
                  "GROUP_ROBOT__KEYS": json.dumps(ROBOT_KEYS), **overrides}
        return make_config(**values)

    return build
