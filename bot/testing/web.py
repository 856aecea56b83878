"""An HTTP client on a real loopback server around a BotApp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.test_utils import TestClient, TestServer

from bot.app import BotApp
from bot.web import create_web_app


@asynccontextmanager
async def serve(app: BotApp) -> AsyncIterator[TestClient]:
    if not app.started:
        await app.start()  # stopped by the make_bot fixture at teardown
    client = TestClient(TestServer(create_web_app(app, manage_lifecycle=False)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
