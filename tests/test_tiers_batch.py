"""The ladder inside the inbox's batches: one transaction for many events, each event exact on its own."""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select

from bot.app import BotApp
from bot.config import Config
from bot.context import Context
from bot.events import MessageEvent
from bot.routing import Router, text_matches
from bot.testing import Harness
from bot.tiers import LADDER
from bot.tiers.models import GroupMembership, Member, PointsEntry
from handlers import feature


def fails_after_the_ladder(app: BotApp) -> Router:
    """A handler after the ladder's (priority 30) that raises on 「boom …」: its event's savepoint rolls back."""
    router = Router("after")

    @router.message(text_matches("boom"), priority=40)
    async def explodes(event: MessageEvent, ctx: Context) -> None:
        raise RuntimeError("handler bug")

    return router


def batch_app(make_bot: Callable[..., BotApp], config: Config) -> BotApp:
    cfg = config.model_copy(update={"inbox": config.inbox.model_copy(update={"batch_max_s": 30})})
    return make_bot(cfg=cfg, features=[feature("admin"), feature("tiers"), fails_after_the_ladder])


def statements(app: BotApp) -> list[str]:
    """The statements the app runs from now on."""
    ran: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        ran.append(" ".join(statement.split()))

    event.listen(app.db.engine.sync_engine, "before_cursor_execute", before)
    return ran


async def test_a_batch_of_group_messages_counts_each_once_within_the_caps(make_bot: Callable[..., BotApp],
                                                                          config: Config) -> None:
    app = batch_app(make_bot, config)
    await app.start()
    h = Harness(app)
    app.clock.set(datetime(2026, 11, 23, 2, tzinfo=UTC))  # type: ignore[attr-defined]
    texts = {"wmAnn": ["早", "打卡 白茶", "boom 一", "聊聊", "打卡 又来", "好", "boom 二", "嗯", "喝茶"],
             "wmBen": ["你好", "boom 三", "交作业 笔记"], "wmCai": ["打卡"]}
    events = [h.message(t, sender=who, name=who[2:], chat="g1", mention=False)
              for who, said in texts.items() for t in said]
    events.append(h.message("隔壁群", sender="wmAnn", name="Ann", chat="g2", mention=False))
    for e in events:
        await app.accept_event(e)
    assert await app.inbox_pump.drain_once() == len(events)
    async with app.db.read() as s:
        per_action = collections.Counter((m, a) for m, a in (await s.execute(
            select(PointsEntry.member_id, PointsEntry.action))).all())
        groups = set((await s.execute(select(GroupMembership.chat_id, GroupMembership.member_id))).all())
        ann = (await s.execute(select(Member).where(Member.id == "wmAnn"))).scalar_one()
    # the daily caps of the shipped rules: 5 message entries, 1 check-in; the failing events counted once
    assert per_action == {("wmAnn", "message"): 5, ("wmAnn", "checkin"): 1, ("wmBen", "message"): 3,
                          ("wmBen", "homework"): 1, ("wmCai", "message"): 1, ("wmCai", "checkin"): 1}
    assert (ann.messages, ann.checkins, ann.points) == (5, 1, 5 + 5)
    assert groups == {("g1", "wmAnn"), ("g1", "wmBen"), ("g1", "wmCai"), ("g2", "wmAnn")}
    async with app.db.session() as s:
        assert await app.get(LADDER).recompute(s, None, app.clock.now(), apply=False) == []


async def test_a_known_members_message_reads_their_row_membership_and_caps_in_one_statement(
        make_bot: Callable[..., BotApp], config: Config) -> None:
    app = batch_app(make_bot, config)
    await app.start()
    h = Harness(app)
    await h.say("你好", sender="wmAnn", name="Ann", mention=False)
    ran = statements(app)
    for i in range(3):
        await app.accept_event(h.message(f"第{i}句", sender="wmAnn", name="Ann", mention=False))
    assert await app.inbox_pump.drain_once() == 3
    selects = [q for q in ran if q.startswith("SELECT")]
    refreshes = [q for q in ran if q.startswith("UPDATE member SET") and "last_active_at" in q.split("WHERE")[0]]
    assert len(refreshes) == 3 and all("group_membership" in q for q in refreshes)
    assert not [q for q in selects if "group_membership" in q or "FROM member " in q + " "]
    if app.db.is_sqlite:  # the day's count comes with the refresh (PostgreSQL reads it after the lock)
        assert all("points_entry" in q for q in refreshes)
        assert not [q for q in selects if "points_entry" in q]
    async with app.db.read() as s:
        entries = (await s.execute(select(func.count()).select_from(PointsEntry))).scalar_one()
        ann = (await s.execute(select(Member).where(Member.id == "wmAnn"))).scalar_one()
    assert entries == 4 and (ann.messages, ann.points) == (4, 4)
