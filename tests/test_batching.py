"""The inbox processes a batch of events in one transaction, with every handler's effects exact."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from bot.app import BotApp
from bot.config import Config
from bot.context import Context
from bot.dispatcher import TransientError
from bot.effects import Effects
from bot.events import MessageEvent
from bot.routing import Router, text_matches
from bot.storage.models import HandledEvent, InboxRow, KeyValue, OutboxRow
from bot.testing import Harness


def probe(calls: list[str]) -> Callable[[BotApp], Router]:
    def setup(app: BotApp) -> Router:
        router = Router("probe")

        @router.message(priority=10)
        async def writes(event: MessageEvent, ctx: Context) -> None:
            calls.append(f"writes {event.text}")
            ctx.session.add(KeyValue(key=f"seen:{event.text}", value=event.chat.id, updated_at=ctx.now()))
            await ctx.reply(f"收到：{event.text}")

        @router.message(text_matches("^boom"), priority=20)
        async def explodes(event: MessageEvent, ctx: Context) -> None:
            calls.append(f"explodes {event.text}")
            ctx.session.add(KeyValue(key=f"boom:{event.text}", value=1, updated_at=ctx.now()))
            await ctx.reply("this reply is rolled back")
            raise RuntimeError("handler bug")

        @router.message(text_matches("^flaky"), priority=30)
        async def flaky(event: MessageEvent, ctx: Context) -> None:
            calls.append(f"flaky {event.text}")
            if calls.count(f"flaky {event.text}") == 1:
                await ctx.reply("lost with the first try")
                raise TransientError("busy")
            await ctx.reply(f"second try: {event.text}")

        return router

    return setup


def count_transactions(app: BotApp) -> list[int]:
    """Count the write transactions the app opens from now on."""
    opened = [0]
    session, connection = app.db.session, app.db.connection

    def counted(open_: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*a: object, **kw: object) -> object:
            opened[0] += 1
            return open_(*a, **kw)
        return wrapper

    app.db.session = counted(session)  # type: ignore[method-assign]
    app.db.connection = counted(connection)  # type: ignore[method-assign]
    return opened


async def receipts(app: BotApp, handler: str) -> set[str]:
    async with app.db.read() as s:
        rows = (await s.execute(select(HandledEvent.event_key).where(HandledEvent.handler == handler))).all()
    return {r[0] for r in rows}


async def test_a_failing_handler_in_a_batch_rolls_back_alone_and_the_rest_commits_once(
        make_bot: Callable[..., BotApp], config: Config) -> None:
    calls: list[str] = []
    # a batch commits early after batch_max_s: not within this test, however slow the machine
    cfg = config.model_copy(update={"inbox": config.inbox.model_copy(update={"batch_max_s": 30})})
    app = make_bot(cfg=cfg, features=[probe(calls)])
    await app.start()
    h = Harness(app)
    texts = ["one", "boom two", "three", "flaky four", "five"]
    events = [h.message(t, chat=f"g{i % 2}") for i, t in enumerate(texts)]
    for e in events:
        await app.accept_event(e)
    transactions = count_transactions(app)
    assert await app.inbox_pump.drain_once() == len(texts)
    # the claim, then the batch: handlers, receipts, outbox rows, row states — one transaction per lane (one
    # lane on SQLite, its one writer; on PostgreSQL the two chats are two lanes that run side by side)
    lanes = 1 if app.db.is_sqlite else min(app.config.inbox.workers, 2)
    assert transactions[0] == 1 + lanes
    # every event's first handler ran once and committed; the failing one left nothing behind
    # every event's first handler committed once; the two events whose handler raised ran again with a
    # savepoint per handler (inbox.optimistic), so their first handler was called twice — its effects count once
    assert sorted(c for c in calls if c.startswith("writes")) == \
        sorted([f"writes {t}" for t in texts] + ["writes boom two", "writes flaky four"])
    async with app.db.read() as s:
        keys = set((await s.execute(select(KeyValue.key))).scalars())
        states = set((await s.execute(select(InboxRow.status))).scalars())
    assert keys == {f"seen:{t}" for t in texts}
    assert states == {"done"}
    assert await receipts(app, "probe.explodes") == set()
    assert await receipts(app, "probe.writes") == {e.key for e in events}
    # the transient failure was retried alone, inside the batch
    assert calls.count("flaky flaky four") == 2 and calls.count("writes flaky four") == 2
    sent = sorted(d.text for d in await h.settle())
    assert sent == sorted([f"收到：{t}" for t in texts] + ["second try: flaky four"])
    assert 'siyu_handler_errors_total{handler="probe.explodes"} 1.0' in app.metrics.render().decode()


async def test_a_batch_processed_again_repeats_no_effect(make_bot: Callable[..., BotApp]) -> None:
    calls: list[str] = []
    app = make_bot(features=[probe(calls)])
    await app.start()
    h = Harness(app)
    for t in ("a", "b", "c"):
        await app.accept_event(h.message(t))
    await app.settle()
    # the worker died after the batch committed but before anything noticed: the rows come round again
    async with app.db.session() as s:
        await s.execute(update(InboxRow).values(status="pending", locked_until=None))
    await app.settle()
    assert sorted(calls) == ["writes a", "writes b", "writes c"]
    async with app.db.read() as s:
        n_out = (await s.execute(select(func.count()).select_from(OutboxRow))).scalar_one()
    assert n_out == 3 and len(h.sent) == 3


async def test_a_crash_between_the_batch_commit_and_the_send_loses_nothing(
        make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(features=[probe([])])
    await app.start()
    h = Harness(app)
    for t in ("x", "y"):
        await app.accept_event(h.message(t))
    await app.inbox_pump.drain()  # the batch committed; the process dies before the outbox pump ran
    assert h.sent == []
    async with app.db.read() as s:
        pending = (await s.execute(select(OutboxRow.payload).where(OutboxRow.status == "pending"))).scalars().all()
    assert sorted(p["text"] for p in pending) == ["收到：x", "收到：y"]

    restarted = make_bot(features=[probe([])])  # a new process on the same database
    await restarted.start()
    h2 = Harness(restarted)
    sent = await h2.settle()
    assert sorted(d.text for d in sent) == ["收到：x", "收到：y"]
    assert await h2.settle() == [] and h.sent == []


async def test_each_chat_keeps_its_order_across_batches_and_lanes(make_bot: Callable[..., BotApp],
                                                                  config: Config) -> None:
    seen: list[tuple[str, int]] = []

    def setup(app: BotApp) -> Router:
        r = Router("order")

        @r.message()
        async def record(event: MessageEvent, ctx: Context) -> None:
            ctx.session.add(KeyValue(key=f"o:{event.key}", value=1, updated_at=ctx.now()))
            seen.append((event.chat.id, int(event.text)))

        return r

    cfg = config.model_copy(update={"inbox": config.inbox.model_copy(update={"batch_size": 7, "workers": 4})})
    app = make_bot(cfg=cfg, features=[setup])
    await app.start()
    h = Harness(app)
    for i in range(60):
        await app.accept_event(h.message(str(i), chat=f"c{i % 5}"))
    await app.settle()
    assert len(seen) == 60
    for chat in {c for c, _ in seen}:
        numbers = [n for c, n in seen if c == chat]
        assert numbers == sorted(numbers), chat


async def test_grants_made_in_a_batch_are_seen_by_the_next_events(make_bot: Callable[..., BotApp]) -> None:
    from bot.roles import OPERATOR
    from handlers import feature

    def ops(app: BotApp) -> Router:
        r = Router("ops")

        @r.command("secret", roles=[OPERATOR], help="operators only")
        async def secret(event: MessageEvent, ctx: Context) -> None:
            await ctx.reply("operator ok")

        return r

    app = make_bot(features=[feature("admin"), ops])
    await app.start()
    h = Harness(app)
    secrets: list[str] = []
    for text, sender in (("/secret", "wmBob"), ("/role grant wmBob operator", "admin01"), ("/secret", "wmBob"),
                         ("/role revoke wmBob operator", "admin01"), ("/secret", "wmBob")):
        # one chat: its events are processed in order on both databases (on PostgreSQL different chats are
        # lanes that run side by side, in no order between them — as WeCom delivers them)
        event = h.message(text, sender=sender, chat="g-ops")
        if text == "/secret":
            secrets.append(event.key)
        await app.accept_event(event)
    assert await app.inbox_pump.drain_once() == 5  # one batch: the role table is read once, then kept current
    sent = await h.settle()
    answers = [[d.text for d in sent if d.key.startswith(f"{key}|")] for key in secrets]
    assert [["operator ok"] == a for a in answers] == [False, True, False], answers
    assert all(answers), answers  # the refusals were said too


async def test_lag_is_exposed_and_health_degrades_past_the_limit(make_bot: Callable[..., BotApp],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    app = make_bot(features=[probe([])])
    await app.start()
    h = Harness(app)
    await app.accept_event(h.message("waiting"))
    health = await app.health()
    assert health["status"] == "ok" and health["inbox_lag_s"] == 0

    caplog.set_level(logging.WARNING, logger="siyu.lag")
    app.clock.advance(app.config.inbox.lag_degraded_s + 5)  # type: ignore[attr-defined]
    health = await app.health()
    assert health["status"] == "degraded" and health["inbox_lag_s"] == app.config.inbox.lag_degraded_s + 5
    await app.refresh_gauges()
    metrics = app.metrics.render().decode()
    assert f"siyu_inbox_lag_seconds {app.config.inbox.lag_degraded_s + 5:.1f}" in metrics
    assert [r.getMessage().split(" lag")[0] for r in caplog.records] == ["inbox"]  # once, not per look

    await app.inbox_pump.drain()  # processed; its reply is due and not sent
    app.clock.advance(app.config.outbox.lag_degraded_s + 1)  # type: ignore[attr-defined]
    health = await app.health()
    assert health["status"] == "degraded" and health["inbox_lag_s"] == 0
    assert health["outbox_lag_s"] == app.config.outbox.lag_degraded_s + 1
    await app.settle()
    assert (await app.health())["status"] == "ok"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4  # one line when each started, one when each cleared
    assert [m.split(" lag ")[0] + (" back" if "back" in m else "") for m in messages] == [
        "inbox", "outbox", "inbox back", "outbox back"]


async def test_a_delivery_waiting_for_its_slot_is_not_lag(make_bot: Callable[..., BotApp]) -> None:
    from datetime import timedelta

    app = make_bot(features=[probe([])])
    await app.start()
    async with app.db.session() as s:
        fx = Effects(app, s, source="test")
        await fx.send("app_message", text="later", to=["u1"], key="later",
                      not_before=app.clock.now() + timedelta(hours=1))
    app.clock.advance(app.config.outbox.lag_degraded_s * 2)  # type: ignore[attr-defined]
    assert (await app.health())["outbox_lag_s"] == 0


async def count_statements(app: BotApp, run: Callable[[], Any]) -> collections.Counter[str]:
    """The statements ``run`` issues, by their first word(s)."""
    counts: collections.Counter[str] = collections.Counter()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        counts[" ".join(words[:3] if words[0] == "INSERT" else words[:1])] += 1

    engine = app.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        await run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return counts


@pytest.mark.parametrize("optimistic", [True, False])
async def test_an_optimistic_batch_has_no_savepoint_per_handler(make_bot: Callable[..., BotApp], config: Config,
                                                                 optimistic: bool) -> None:
    calls: list[str] = []

    def two(app: BotApp) -> Router:
        r = Router("two")

        @r.message(priority=10)
        async def first(event: MessageEvent, ctx: Context) -> None:
            calls.append(f"first {event.text}")
            await ctx.reply(f"收到：{event.text}")

        @r.message(priority=20)
        async def second(event: MessageEvent, ctx: Context) -> None:
            calls.append(f"second {event.text}")

        return r

    cfg = config.model_copy(update={"inbox": config.inbox.model_copy(update={"batch_max_s": 30,
                                                                             "optimistic": optimistic})})
    app = make_bot(cfg=cfg, features=[two])
    await app.start()
    h = Harness(app)
    for i in range(6):
        await app.accept_event(h.message(f"n{i}", chat="g1"))
    counts = await count_statements(app, app.inbox_pump.drain_once)
    assert sorted(calls) == sorted(f"{w} n{i}" for i in range(6) for w in ("first", "second"))
    assert len(await receipts(app, "two.first")) == 6 and len(await receipts(app, "two.second")) == 6
    if optimistic:   # a savepoint per event; the receipts read in one statement and written in one
        assert (counts["SAVEPOINT"], counts["INSERT INTO handled_event"]) == (6, 1)
    else:            # a savepoint and a receipt per handler
        assert (counts["SAVEPOINT"], counts["INSERT INTO handled_event"]) == (12, 12)
    # the same events again: their receipts are found, nothing runs twice
    async with app.db.session() as s:
        await s.execute(update(InboxRow).values(status="pending", locked_until=None))
    await app.inbox_pump.drain_once()
    assert len(calls) == 12
    assert len([d for d in await h.settle() if d.text.startswith("收到")]) == 6
