"""Test tools for siyu and its plugins: drive a bot as WeCom would and read what it sent.

``pip install "siyu[test]"`` brings a pytest plugin (:mod:`bot.testing.plugin`, entry point
``siyu``) whose fixtures build a bot on a fresh database per test, with a fake clock and a
sender that records. A plugin's test, with no conftest::

    # pyproject.toml: [tool.pytest.ini_options] asyncio_mode = "auto"
    import pytest
    from bot.feature import Feature

    from echo import router          # your module: router = Router("echo"), its handlers


    @pytest.fixture
    def siyu_features():             # what the `bot` and `harness` fixtures install
        return [Feature("echo", routers=[router])]


    async def test_echo(harness):
        assert "你好" in await harness.say_texts("echo 你好")

``make_bot(features=[...])`` builds one bot with other features; ``harness.join()``,
``leave()``, ``add_contact()`` and ``push(event)`` send other events; ``fake_wecom`` is
a local WeCom API server that records every request and fails on demand
(``fake_wecom.fail("message/send", 45009)``), and ``wecom_config()`` a config that
sends through it. :class:`CallbackSigner` builds signed, encrypted callbacks as WeCom
posts them. The full list of fixtures is in :mod:`bot.testing.plugin`.

Names are imported on first use: loading the pytest plugin does not import the bot.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.testing.callbacks import CallbackSigner, event_xml, text_xml
    from bot.testing.env import TEST_ENV, test_config
    from bot.testing.fake_wecom import FakeWeCom, Request, fake_wecom_in_thread
    from bot.testing.harness import Harness, listener
    from bot.testing.web import serve

_WHERE = {
    "Harness": "harness", "listener": "harness",
    "FakeWeCom": "fake_wecom", "Request": "fake_wecom", "fake_wecom_in_thread": "fake_wecom",
    "CallbackSigner": "callbacks", "text_xml": "callbacks", "event_xml": "callbacks",
    "TEST_ENV": "env", "test_config": "env",
    "serve": "web",
}
__all__ = ["TEST_ENV", "CallbackSigner", "FakeWeCom", "Harness", "Request", "event_xml", "fake_wecom_in_thread",
           "listener", "serve", "test_config", "text_xml"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bot.testing.{module}"), name)
