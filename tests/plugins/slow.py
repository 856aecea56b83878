"""A plugin for process tests: a handler that takes its time (SIYU_TEST_SLOW seconds) before replying."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bot.app import BotApp
from bot.context import Context
from bot.events import MessageEvent
from bot.routing import Router, text_matches


def setup(app: BotApp) -> Router:
    router = Router("slowpoke")

    @router.message(text_matches("^slow"), priority=5, block=True)  # answered here, not by the knowledge base
    async def slow(event: MessageEvent, ctx: Context) -> None:
        marker = os.environ.get("SIYU_TEST_MARKER_DIR")
        if marker:
            (Path(marker) / f"started-{os.getpid()}").write_text(event.key)
        await asyncio.sleep(float(os.environ.get("SIYU_TEST_SLOW", "0")))
        await ctx.reply(f"慢慢回复：{event.text}")

    return router
