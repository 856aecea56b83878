"""What only this repository's suite needs; the generic fixtures come from the siyu pytest plugin.

The bot, harness, database, config, clock and fake WeCom fixtures are those of
``bot.testing.plugin`` (registered by the ``pytest11`` entry point, so they are not
redefined here); pyproject's ``siyu_config`` makes them start from config.example.toml.
The suite runs on PostgreSQL when SIYU_TEST_DATABASE_URL is set (scripts/test does that
on its second pass).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from bot.testing.database import drop, fresh_pg_database, on_postgres, pg_url

REPO = Path(__file__).resolve().parent.parent

# The fuzz suite (tests/test_fuzz.py): a bounded run in the test command, many more examples on demand
# (HYPOTHESIS_PROFILE=fuzz; docs/testing.md). No deadline: the machine may be busy.
settings.register_profile("ci", max_examples=40, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
async def blank_db_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (for migration tests)."""
    if on_postgres():
        url = f"{pg_url().rpartition('/')[0]}/{await fresh_pg_database('siyu_b')}"
        yield url
        await drop(url)
    else:
        yield f"sqlite:///{tmp_path / 'blank.db'}"
