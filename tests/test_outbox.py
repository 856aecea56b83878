"""The outbox: idempotency keys, per-destination rate limits, retries with backoff, dead rows, replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from bot.app import BotApp
from bot.outbox import split_text
from bot.senders.base import Delivery, SendError, SendResult
from bot.senders.console import RecordingSender
from bot.storage.models import OutboxRow


class ScriptedSender(RecordingSender):
    """Fails according to a script of errors (None = succeed), then succeeds."""

    def __init__(self, script: list[SendError | None] | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.attempts: list[int] = []

    async def send(self, delivery: Delivery) -> SendResult:
        self.attempts.append(delivery.id)
        if self.script:
            err = self.script.pop(0)
            if err is not None:
                raise err
        return await super().send(delivery)


async def enqueue(app: BotApp, n: int, **kw: object) -> None:
    async with app.db.session() as s:
        for i in range(n):
            await app.outbox.enqueue(s, key=f"{kw.get('kind', 'x')}-{i}-{kw.get('tag', '')}",
                                     **{k: v for k, v in kw.items() if k != "tag"})  # type: ignore[arg-type]


async def rows(app: BotApp) -> list[OutboxRow]:
    async with app.db.read() as s:
        return list((await s.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def test_group_robot_is_limited_to_20_per_minute(make_bot: Callable[..., BotApp],
                                                       make_config: Callable[..., object]) -> None:
    app = make_bot(cfg=make_config(GROUP_ROBOT__KEYS='{"g1": "robot-key-1", "g2": "robot-key-1"}'))
    await app.start()
    await enqueue(app, 15, kind="group_robot", text="hi", chat={"id": "g1", "type": "group"})
    await enqueue(app, 10, kind="group_robot", text="hi", chat={"id": "g2", "type": "group"}, tag="b")
    await app.outbox_pump.drain()
    sent = app.sender.deliveries  # type: ignore[attr-defined]
    assert len(sent) == 20  # both chats share one robot key, so one budget
    waiting = [r for r in await rows(app) if r.status == "pending"]
    assert len(waiting) == 5
    assert all(r.next_attempt_at > app.clock.now() + timedelta(seconds=59) for r in waiting)
    app.clock.advance(30)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    assert len(sent) == 20
    app.clock.advance(31)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    assert len(sent) == 25
    assert len({d.key for d in sent}) == 25


async def test_app_messages_are_limited_per_member(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    await app.start()
    await enqueue(app, 35, kind="app_message", text="提醒", to=["zhangsan"])
    await enqueue(app, 5, kind="app_message", text="提醒", to=["lisi"], tag="l")
    await app.outbox_pump.drain()
    by_user: dict[str, int] = {}
    for d in app.sender.deliveries:  # type: ignore[attr-defined]
        by_user[d.to[0]] = by_user.get(d.to[0], 0) + 1
    assert by_user == {"zhangsan": 30, "lisi": 5}


async def test_retryable_errors_back_off_then_succeed_once(make_bot: Callable[..., BotApp]) -> None:
    sender = ScriptedSender([SendError("system busy", retryable=True, errcode=-1),
                             SendError("frequency", retryable=True, errcode=45009)])
    app = make_bot(sender=sender)
    await app.start()
    await enqueue(app, 1, kind="app_message", text="hi", to=["u1"])
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "pending" and row.attempts == 1 and "errcode -1" in (row.last_error or "")
    await app.outbox_pump.drain()  # not due yet: nothing happens
    assert len(sender.attempts) == 1
    app.clock.advance(3)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    app.clock.advance(10)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    assert len(sender.deliveries) == 1 and len(sender.attempts) == 3


async def test_rows_die_with_the_reason(make_bot: Callable[..., BotApp]) -> None:
    sender = ScriptedSender([SendError("all recipients invalid", retryable=False, errcode=81013)]
                            + [SendError("timeout", retryable=True)] * 10)
    app = make_bot(sender=sender)
    await app.start()
    await enqueue(app, 1, kind="app_message", text="hi", to=["ghost"])
    await enqueue(app, 1, kind="app_message", text="hi", to=["u2"], tag="t")
    for _ in range(8):
        await app.outbox_pump.drain()
        app.clock.advance(400)  # type: ignore[attr-defined]
    permanent, flaky = await rows(app)
    assert permanent.status == "dead" and permanent.attempts == 1 and "81013" in (permanent.last_error or "")
    assert flaky.status == "dead" and flaky.attempts == app.config.outbox.max_attempts
    assert "gave up after 5 attempts" in (flaky.last_error or "")
    assert sender.deliveries == []


async def test_keys_make_enqueue_idempotent_and_long_texts_split(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    await app.start()
    async with app.db.session() as s:
        assert await app.outbox.enqueue(s, key="k1", kind="app_message", text="a", to=["u"]) == 1
        assert await app.outbox.enqueue(s, key="k1", kind="app_message", text="a", to=["u"]) == 0
        long = "\n".join(f"第{i}行：" + "长" * 100 for i in range(30))
        assert await app.outbox.enqueue(s, key="k2", kind="group_robot", text=long, chat={"id": "g"}) > 1
        assert await app.outbox.enqueue(s, key="k3", kind="app_message", text="x", to=["a", "b", "c"]) == 3
    all_rows = await rows(app)
    parts = [r for r in all_rows if r.key.startswith("k2")]
    assert all(len(r.payload["text"].encode()) <= 2048 for r in parts)
    assert "\n".join(r.payload["text"] for r in parts) == long
    assert sorted(r.key for r in all_rows if r.key.startswith("k3")) == ["k3@a", "k3@b", "k3@c"]


def test_split_text_cuts_a_long_line_on_character_boundaries() -> None:
    text = "中" * 3000
    parts = split_text(text, 2048)
    assert "".join(parts) == text and all(len(p.encode()) <= 2048 for p in parts)


async def test_expired_rows_are_not_sent(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    await app.start()
    async with app.db.session() as s:
        await app.outbox.enqueue(s, key="w", kind="welcome", text="欢迎", destination={"welcome_code": "c"},
                                 expires_at=app.clock.now() + timedelta(seconds=20))
    app.clock.advance(21)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "dead" and "expired" in (row.last_error or "")


async def test_a_row_claimed_by_a_dead_replica_is_sent_after_its_lease(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    await app.start()
    await enqueue(app, 1, kind="app_message", text="hi", to=["u"])
    claimed = await app.outbox_pump.claim(10)  # claimed, then the replica "dies" before sending
    assert len(claimed) == 1
    await app.outbox_pump.drain()
    assert app.sender.deliveries == []  # type: ignore[attr-defined]
    app.clock.advance(app.config.outbox.lease_s + 1)  # type: ignore[attr-defined]
    await app.outbox_pump.drain()
    assert len(app.sender.deliveries) == 1  # type: ignore[attr-defined]


async def test_two_replicas_never_send_a_row_twice(make_bot: Callable[..., BotApp]) -> None:
    a, b = make_bot(), make_bot()
    await a.start()
    await b.start()
    async with a.db.session() as s:
        for i in range(120):
            await a.outbox.enqueue(s, key=f"m{i}", kind="mass_send", text=f"群发{i}",
                                   destination={"sender": "staff01", "external_userids": ["wmX"]})
    await asyncio.gather(a.outbox_pump.drain(), b.outbox_pump.drain(), a.outbox_pump.drain())
    keys = [d.key for d in a.sender.deliveries + b.sender.deliveries]  # type: ignore[attr-defined]
    assert len(keys) == 120 and len(set(keys)) == 120
    assert {r.status for r in await rows(a)} == {"sent"}
