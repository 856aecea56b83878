"""The inbox: committed before the answer, deduplicated, claimed once by one of several replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Config
from bot.context import Context
from bot.events import MessageEvent
from bot.inbox import Incoming
from bot.routing import Router
from bot.storage.models import HandledEvent, InboxRow, OutboxRow
from bot.testing import Harness


def incoming(i: int, chat: str = "g1") -> Incoming:
    payload = {"type": "message", "chat": {"id": chat, "type": "group"}, "sender": {"id": "wmA", "staff": False},
               "text": f"m{i}", "mentions_bot": False, "channel": "webhook"}
    return Incoming(dedup_key=f"k{i}", channel="webhook", kind="message", payload=payload, chat_key=f"chat:{chat}")


async def count(app: BotApp, model: type, *where: object) -> int:
    async with app.db.read() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_group_commit_answers_each_caller_new_or_duplicate(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    await app.start()
    items = [incoming(i % 50) for i in range(200)]  # every key four times, concurrently
    results = await asyncio.gather(*(app.accept(it) for it in items))
    assert sum(results) == 50
    assert await count(app, InboxRow) == 50
    for key in {it.dedup_key for it in items}:
        assert [r for it, r in zip(items, results, strict=True) if it.dedup_key == key].count(True) == 1


def echo_feature(app: BotApp) -> Router:
    r = Router("echo")

    @r.message()
    async def echo(event: MessageEvent, ctx: Context) -> None:
        await asyncio.sleep(0)  # let the other replica interleave
        await ctx.reply(event.text)

    return r


async def test_two_replicas_process_every_event_once(make_bot: Callable[..., BotApp]) -> None:
    a, b = make_bot(features=[echo_feature]), make_bot(features=[echo_feature])
    await a.start()
    await b.start()
    for i in range(150):
        await a.accept(incoming(i, chat=f"g{i % 7}"))
    await asyncio.gather(a.inbox_pump.drain(), b.inbox_pump.drain(), b.inbox_pump.drain())
    assert await count(a, InboxRow, InboxRow.status == "done") == 150
    assert await count(a, OutboxRow) == 150
    assert await count(a, HandledEvent) == 150


async def test_two_replicas_keep_each_chats_order(make_bot: Callable[..., BotApp],
                                                  make_config: Callable[..., Config]) -> None:
    """A chat whose rows one replica is processing is not claimed by the other until they are done."""
    handled: list[tuple[str, int]] = []

    def ordered_feature(app: BotApp) -> Router:
        r = Router("ordered")

        @r.message()
        async def note(event: MessageEvent, ctx: Context) -> None:
            await asyncio.sleep(0)  # let the other replica interleave
            handled.append((event.chat.id, int(event.text[1:])))

        return r

    cfg = make_config(INBOX__BATCH_SIZE="8")  # small claims: the replicas take turns within a chat
    a, b = make_bot(cfg=cfg, features=[ordered_feature]), make_bot(cfg=cfg, features=[ordered_feature])
    await a.start()
    await b.start()
    for i in range(200):
        await a.accept(incoming(i, chat=f"g{i % 3}"))
    await asyncio.gather(a.inbox_pump.drain(), b.inbox_pump.drain())
    assert await count(a, InboxRow, InboxRow.status == "done") == 200
    for chat in ("g0", "g1", "g2"):
        numbers = [n for c, n in handled if c == chat]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(range(int(chat[1]), 200, 3)), chat


async def test_a_row_whose_worker_died_is_processed_after_its_lease(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[echo_feature])
    await app.start()
    await app.accept(incoming(1))
    assert len(await app.inbox_pump.claim(10)) == 1  # this worker "dies" here
    h = Harness(app)
    assert await h.settle() == []
    app.clock.advance(timedelta(seconds=app.config.inbox.lease_s + 1))  # type: ignore[attr-defined]
    assert [d.text for d in await h.settle()] == ["m1"]
    async with app.db.read() as s:
        (done,) = (await s.execute(select(InboxRow))).scalars().all()
    assert done.status == "done" and done.attempts == 2


async def test_shutdown_gives_back_claimed_rows(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[echo_feature])
    await app.start()
    await app.accept(incoming(1))
    await app.inbox_pump.claim(10)
    assert await app.inbox_pump.release() == 1
    other = make_bot(features=[echo_feature])
    await other.start()
    assert [d.text for d in await Harness(other).settle()] == ["m1"]  # no lease wait


async def test_undecodable_rows_fail_without_blocking_the_rest(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[echo_feature])
    await app.start()
    await app.accept(Incoming(dedup_key="bad", channel="webhook", kind="message", payload={"type": "message"}))
    await app.accept(incoming(2))
    sent = await Harness(app).settle()
    assert [d.text for d in sent] == ["m2"]
    async with app.db.read() as s:
        bad = (await s.execute(select(InboxRow).where(InboxRow.dedup_key == "bad"))).scalar_one()
    assert bad.status == "failed" and "text: a string is required" in (bad.error or "")


async def test_housekeeping_prunes_only_old_finished_rows(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[echo_feature])
    await app.start()
    await app.accept(incoming(1))
    await app.settle()
    app.clock.advance(timedelta(days=app.config.inbox.retention_days + 1))  # type: ignore[attr-defined]
    await app.accept(incoming(2))
    await app.housekeeping()
    async with app.db.read() as s:
        keys = set((await s.execute(select(InboxRow.dedup_key))).scalars())
    assert keys == {"k2"}  # the old processed row is gone, the pending one stays
