"""A harness whose deliveries go through the WeCom API at the fake (the campaigns tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.app import BotApp
from bot.senders.base import Delivery, SendResult
from bot.senders.console import RecordingSender
from bot.testing import Harness


class ThroughWeCom(RecordingSender):
    """Records every delivery (for the harness) and sends it through the WeCom API at the fake."""

    def __init__(self, wecom: Any) -> None:
        super().__init__()
        self.wecom = wecom

    async def send(self, delivery: Delivery) -> SendResult:
        self.deliveries.append(delivery)
        return await self.wecom.send(delivery)

    async def close(self) -> None:
        await self.wecom.close()


@pytest.fixture
def make_wecom_harness(make_bot: Callable[..., BotApp], wecom_config: Callable[..., Any], clock: Any
                       ) -> Callable[..., Any]:
    """``await make_wecom_harness(**overrides)``: the built-in features, sending through the fake WeCom, with
    the API service features call."""
    from bot.senders.wecom import WeComSender
    from bot.wecomapi import WECOM_API

    async def build(**overrides: str) -> Harness:
        cfg = wecom_config(**{"CAMPAIGNS__POLL_AFTER_S": "600", "CAMPAIGNS__POLL_INTERVAL_S": "600", **overrides})
        wecom = WeComSender(cfg, clock=clock)
        app = make_bot(cfg=cfg, sender=ThroughWeCom(wecom))
        await app.start()
        app.provide(WECOM_API, wecom)
        return Harness(app)

    return build


@pytest.fixture
async def wecom_harness(make_wecom_harness: Callable[..., Any]) -> Harness:
    return await make_wecom_harness()
