"""The credentials and settings every test config starts from (``SIYU_*`` environment values).

The fake WeCom (:mod:`bot.testing.fake_wecom`) accepts exactly these credentials, and
:class:`bot.testing.callbacks.CallbackSigner` signs callbacks with the same token and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Config

CORP_ID = "wx5823bf96d3bd56c7"
SECRET = "test-app-secret"
AGENT_ID = 1000002
TOKEN = "QDG6eK"
ENCODING_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
AIBOT_TOKEN = "aibotToken123"
AIBOT_ENCODING_AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
ROBOT_KEYS = {"wrGroup1": "robot-key-group-1", "compliance": "robot-key-compliance"}

TEST_ENV = {
    "SIYU_WEBHOOK__SECRET": "test-webhook-secret",
    "SIYU_WECOM__CORP_ID": CORP_ID,
    "SIYU_WECOM__TOKEN": TOKEN,
    "SIYU_WECOM__ENCODING_AES_KEY": ENCODING_AES_KEY,
    "SIYU_WECOM__AGENT_ID": str(AGENT_ID),
    "SIYU_WECOM__SECRET": SECRET,
    "SIYU_WECOM__MAX_CLOCK_SKEW_S": "0",
    "SIYU_WEBHOOK__MAX_CLOCK_SKEW_S": "0",  # the fixtures' events carry fixed times; tests that check it set it
    "SIYU_AIBOT__TOKEN": AIBOT_TOKEN,
    "SIYU_AIBOT__ENCODING_AES_KEY": AIBOT_ENCODING_AES_KEY,
    "SIYU_BOT__ADMINS": '["admin01"]',
    "SIYU_BOT__STAFF_IDS": '["staff01", "staff02"]',
    "SIYU_LOG__LEVEL": "DEBUG",
    "SIYU_MOMENTS__ENABLED": "false",  # the example calendar would post at the fake clock's 10:00; tests enable it
}


def test_config(path: str | Path | None, db_url: str, overrides: Mapping[str, str] | None = None) -> Config:
    """A Config from ``path`` (None: the defaults) with :data:`TEST_ENV`, the database and ``overrides``.

    ``overrides`` are ``SECTION__KEY`` → value strings, as in the environment (``{"BOT__NAME": "小助手"}``).
    """
    from bot.config import load_config  # loads every feature's config section; the constants above need none

    env = {**TEST_ENV, "SIYU_DATABASE__URL": db_url}
    env.update({f"SIYU_{k.upper()}": v for k, v in (overrides or {}).items()})
    return load_config(path, env)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test pytest should collect
