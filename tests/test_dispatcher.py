"""Routers, priorities, blocking, receipts (exactly-once effects) and the one error handler."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from bot.app import BotApp
from bot.context import Context
from bot.dispatcher import TransientError
from bot.events import MessageEvent
from bot.routing import Router, from_staff, in_group, text_matches
from bot.storage.models import HandledEvent, InboxRow, KeyValue, OutboxRow
from bot.testing import Harness


def counting_feature(calls: list[str]) -> Callable[[BotApp], Router]:
    def setup(app: BotApp) -> Router:
        router = Router("probe")

        @router.message(priority=0)
        async def observer(event: MessageEvent, ctx: Context) -> None:
            calls.append("observer")

        @router.message(text_matches("^boom"), priority=20)
        async def explodes(event: MessageEvent, ctx: Context) -> None:
            calls.append("explodes")
            await ctx.reply("this reply is rolled back")
            raise RuntimeError("handler bug")

        @router.message(in_group & ~from_staff, priority=30)
        async def answers(event: MessageEvent, ctx: Context) -> None:
            calls.append("answers")
            ctx.session.add(KeyValue(key=f"seen:{event.key}", value=event.text, updated_at=ctx.now()))
            await ctx.reply(f"收到：{event.text}")

        @router.message(priority=60, block=True)
        async def late(event: MessageEvent, ctx: Context) -> None:
            calls.append("late")

        @router.message(priority=70)
        async def after_block(event: MessageEvent, ctx: Context) -> None:
            calls.append("after_block")

        return router

    return setup


async def test_a_failing_handler_rolls_back_alone_and_the_others_run(make_bot: Callable[..., BotApp]) -> None:
    calls: list[str] = []
    app = make_bot(features=[counting_feature(calls)])
    await app.start()
    h = Harness(app)
    sent = await h.say("boom!")
    # the optimistic run of the event stops at the failure; the event runs again with a savepoint per handler
    assert calls == ["observer", "explodes", "observer", "explodes", "answers", "late"]  # block stops "after_block"
    assert [d.text for d in sent] == ["收到：boom!"]  # the failing handler's reply was rolled back
    assert 'siyu_handler_errors_total{handler="probe.explodes"} 1.0' in app.metrics.render().decode()
    async with app.db.read() as s:
        (row,) = (await s.execute(select(InboxRow))).scalars().all()
    assert row.status == "done" and "handler bug" in (row.error or "")


async def test_staff_in_groups_skip_the_customer_handler(make_bot: Callable[..., BotApp]) -> None:
    calls: list[str] = []
    app = make_bot(features=[counting_feature(calls)])
    await app.start()
    await Harness(app).say("hello", sender="staff01", staff=True)
    assert "answers" not in calls and "observer" in calls


async def test_reprocessing_an_event_never_repeats_a_handlers_effects(make_bot: Callable[..., BotApp]) -> None:
    calls: list[str] = []
    app = make_bot(features=[counting_feature(calls)])
    await app.start()
    h = Harness(app)
    event = h.message("hi there", key="evt-replay")
    await h.push(event)
    # the worker died after the handlers committed but before the row was marked done: process it again
    from sqlalchemy import update

    async with app.db.session() as s:
        await s.execute(update(InboxRow).values(status="pending"))
    await app.settle()
    outcome = await app.dispatcher.dispatch(event)  # and a third time, directly
    assert outcome.errors == []
    assert calls.count("answers") == 1 and calls.count("observer") == 1
    async with app.db.read() as s:
        n_out = (await s.execute(select(func.count()).select_from(OutboxRow))).scalar_one()
        receipts = (await s.execute(select(HandledEvent.handler).where(HandledEvent.event_key == "evt-replay"))).all()
    assert n_out == 1 and len(h.sent) == 1
    assert {r.handler for r in receipts} == {"probe.observer", "probe.answers", "probe.late"}


async def test_transient_failures_are_retried_and_the_event_kept(make_bot: Callable[..., BotApp]) -> None:
    attempts: list[int] = []

    def setup(app: BotApp) -> Router:
        r = Router("flaky")

        @r.message()
        async def flaky(event: MessageEvent, ctx: Context) -> None:
            attempts.append(1)
            if len(attempts) < 5:
                raise TransientError("database busy")
            await ctx.reply("finally")

        return r

    app = make_bot(features=[setup])
    await app.start()
    h = Harness(app)
    await app.accept_event(h.message("x"))
    await app.inbox_pump.drain()
    async with app.db.read() as s:
        (row,) = (await s.execute(select(InboxRow))).scalars().all()
    # the optimistic try, then three tries with a savepoint, then left for later
    assert row.status == "pending" and len(attempts) == 4
    await app.settle()
    assert len(attempts) == 4  # not retried in a hot loop: it waits for its backoff
    app.clock.advance(10)  # type: ignore[attr-defined]
    await app.settle()
    assert [d.text for d in h.sent] == ["finally"]


async def test_one_chat_is_handled_in_order(make_bot: Callable[..., BotApp]) -> None:
    seen: list[str] = []

    def setup(app: BotApp) -> Router:
        r = Router("order")

        @r.message()
        async def record(event: MessageEvent, ctx: Context) -> None:
            seen.append(event.text)

        return r

    app = make_bot(features=[setup])
    await app.start()
    h = Harness(app)
    for i in range(30):
        await app.accept_event(h.message(str(i), chat="same"))
    await app.settle()
    assert seen == [str(i) for i in range(30)]


async def test_router_names_and_commands_must_be_unique(make_bot: Callable[..., BotApp]) -> None:
    import pytest

    def dup(app: BotApp) -> list[Router]:
        a, b = Router("x"), Router("x")
        return [a, b]

    with pytest.raises(ValueError, match="included twice"):
        make_bot(features=[dup])

    def dup_cmd(app: BotApp) -> Router:
        r = Router("y")

        @r.command("whoami")
        async def mine(event: MessageEvent, ctx: Context) -> None: ...

        return r

    from handlers import feature

    with pytest.raises(ValueError, match="declared twice"):
        make_bot(features=[feature("admin"), dup_cmd])


async def test_after_commit_hooks_run_only_when_the_handler_committed(make_bot: Callable[..., BotApp]) -> None:
    fired: list[str] = []

    def setup(app: BotApp) -> Router:
        r = Router("hooks")

        @r.message(text_matches("^ok"))
        async def ok(event: MessageEvent, ctx: Context) -> None:
            ctx.after_commit(lambda: fired.append(f"committed {event.text}"))

        @r.message(text_matches("^fail"))
        async def fail(event: MessageEvent, ctx: Context) -> None:
            ctx.after_commit(lambda: fired.append("must not fire"))
            raise RuntimeError("rolled back")

        return r

    app = make_bot(features=[setup])
    await app.start()
    h = Harness(app)
    await h.say("ok 1")
    await h.say("fail 2")
    assert fired == ["committed ok 1"]


async def test_an_observer_may_stop_the_event_once_it_has_decided(make_bot: Callable[..., BotApp]) -> None:
    calls: list[str] = []
    router = Router("stopper")

    @router.message(priority=40)
    async def decides(event: MessageEvent, ctx: Context) -> None:
        calls.append(f"decides:{event.text}")
        if event.text == "mine":
            ctx.stop()

    @router.message(text_matches("^oops"), priority=41)
    async def stops_then_fails(event: MessageEvent, ctx: Context) -> None:
        ctx.stop()
        raise RuntimeError("rolled back: the stop does not count")

    @router.message(priority=50)
    async def later(event: MessageEvent, ctx: Context) -> None:
        calls.append(f"later:{event.text}")

    app = make_bot(features=[lambda app: router])
    await app.start()
    h = Harness(app)
    for text in ("mine", "yours", "oops"):
        await h.say(text)
    assert calls == ["decides:mine", "decides:yours", "later:yours", "decides:oops", "decides:oops", "later:oops"]
