"""The member directory (bot.members.MEMBERS) as the tiers feature provides it: what other features read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.app import BotApp
from bot.events import Chat, GroupDismissed
from bot.members import MEMBERS, GroupInfo, MemberDirectory
from bot.testing import Harness
from handlers import feature

DAY1 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


@pytest.fixture
async def h(make_bot: Callable[..., BotApp]) -> Harness:
    app = make_bot(features=[feature("admin"), feature("tiers")])
    await app.start()
    app.clock.set(DAY1)
    return Harness(app)


def directory(h: Harness) -> MemberDirectory:
    return h.app.get(MEMBERS)


async def test_profile_of_a_member_and_of_a_stranger(h: Harness) -> None:
    await h.say("大家好", sender="wmBob", name="Bob", mention=False)
    async with h.app.db.read() as s:
        bob = await directory(h).profile(s, "wmBob")
        assert await directory(h).profile(s, "wmNobody") is None
    assert bob is not None
    assert (bob.id, bob.name, bob.tier, bob.tier_name, bob.points) == ("wmBob", "Bob", "prospect", "潜客", 1)
    assert bob.groups == ("g1",) and not bob.staff
    assert bob.extra["messages"] == 1


async def test_find_by_id_first_then_by_name(h: Harness) -> None:
    for member_id in ("wmBob", "wmBob2", "wmBob3"):
        await h.say("hi", sender=member_id, name="Bob", mention=False)
    await h.say("hi", sender="wmAnn", name="wmBob", mention=False)  # a name that is someone's id
    async with h.app.db.read() as s:
        by_id = await directory(h).find(s, "wmBob")
        by_name = await directory(h).find(s, "Bob")
        one = await directory(h).find(s, "Bob", limit=1)
        nobody = await directory(h).find(s, "Carl")
    assert [p.id for p in by_id] == ["wmBob"]
    assert len(by_name) == 3 and {p.id for p in by_name} == {"wmBob", "wmBob2", "wmBob3"}
    assert len(one) == 1 and nobody == []


async def test_group_and_groups_named(h: Harness) -> None:
    await h.join("wmBob", "Bob", chat="g1", chat_name="茶友会")
    await h.join("wmAnn", "Ann", chat="g2", chat_name="茶友会")
    await h.admin("/group set quality 50", chat="g1", chat_name="茶友会")
    await h.admin("/group owner @staff07", chat="g1", chat_name="茶友会")
    async with h.app.db.read() as s:
        g1 = await directory(h).group(s, "g1")
        assert await directory(h).group(s, "g-unknown") is None
        named = await directory(h).groups_named(s, "茶友会")
    assert g1 == GroupInfo(chat_id="g1", name="茶友会", owner_id="staff07", member_count=1, tier="quality")
    assert [g.chat_id for g in named] == ["g1", "g2"]
    assert named[1].owner_id == "" and named[1].tier == "" and named[1].active

    await h.push(GroupDismissed(key=h.key(), time=h.app.clock.now(), channel="test",
                                chat=Chat(id="g2", type="group", name="茶友会")))
    async with h.app.db.read() as s:
        g2 = await directory(h).group(s, "g2")
        named = await directory(h).groups_named(s, "茶友会")
    assert g2 is not None and not g2.active and g2.dismissed_at is not None
    assert [g.chat_id for g in named] == ["g1"]


async def test_checkins_in_a_chat_by_day_then_by_checkin(h: Harness) -> None:
    await h.say("打卡 白牡丹", sender="wmBob", name="Bob", mention=False)
    await h.say("打卡", sender="wmAnn", name="", mention=False)  # no name: the id stands in
    await h.say("打卡", sender="wmCai", name="Cai", mention=False, chat="g2")  # another group
    await h.say("打卡 again", sender="wmBob", name="Bob", mention=False)  # over the daily cap: not a check-in
    h.app.clock.advance(timedelta(days=1))
    await h.say("打卡", sender="wmAnn", name="", mention=False)
    await h.say("打卡", sender="wmBob", name="Bob", mention=False)
    day1, day2 = date(2026, 11, 23), date(2026, 11, 24)
    async with h.app.db.read() as s:
        both = await directory(h).checkins(s, "g1", day1, day2)
        second = await directory(h).checkins(s, "g1", day2, day2)
        before = await directory(h).checkins(s, "g1", day1 - timedelta(days=7), day1 - timedelta(days=1))
    assert both == [("wmBob", "2026-11-23", "Bob"), ("wmAnn", "2026-11-23", "wmAnn"),
                    ("wmAnn", "2026-11-24", "wmAnn"), ("wmBob", "2026-11-24", "Bob")]
    assert second == both[2:] and before == []
