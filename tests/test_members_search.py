"""The member search (the console's 成员 page): the n-gram index kept by triggers finds exactly what a plain
scan of every member's id, name, tags and notes finds — for one- and two-character texts too, after renames,
tag and note changes and deleted members, on the common-text walk as on the candidates."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from bot.app import BotApp
from bot.testing import Harness, serve
from bot.tiers import LADDER
from bot.tiers import store as tiers_store
from bot.tiers.store import MEMBER, NOTES, SEARCH, TAGS
from handlers import feature
from tests.test_pages import sign_in

DAY1 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CHARS = "小王李明华张伟芳老茶岩白"  # names from few characters: every one- and two-character text is common
UPPER, LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
async def h(make_bot: Callable[..., BotApp]) -> Harness:
    app = make_bot(features=[feature("admin"), feature("tiers")])
    await app.start()
    app.clock.set(DAY1)
    await Harness(app).admin("/role grant @op1 operator")
    return Harness(app)


def folded(s: str) -> str:
    return s.translate(str.maketrans(UPPER, LOWER))


async def plain_scan(app: BotApp, q: str) -> list[str]:
    """Every customer whose id starts with ``q`` or whose name, a tag or a note contains it (A–Z as a–z),
    the most recently active first, never active last, then by id: read row by row."""
    async with app.db.read() as s:
        members = (await s.execute(select(MEMBER))).all()
        tags = (await s.execute(select(TAGS.c.member_id, TAGS.c.tag))).all()
        notes = (await s.execute(select(NOTES.c.member_id, NOTES.c.text))).all()
    texts: dict[str, list[str]] = {}
    for member_id, t in [*tags, *notes]:
        texts.setdefault(member_id, []).append(t)
    hits = [m for m in members if not m.staff and (
        m.id.startswith(q) or any(folded(q) in folded(t) for t in [m.name, *texts.get(m.id, [])]))]
    hits.sort(key=lambda m: m.id)
    hits.sort(key=lambda m: (m.last_active_at is None, -(m.last_active_at or DAY1).timestamp()))
    return [m.id for m in hits]


async def search(app: BotApp, q: str, limit: int = 10_000) -> list[str]:
    async with app.db.read() as s:
        return [r.id for r in await app.get(LADDER).search(s, q, limit)]


async def seed(app: BotApp, n: int = 600) -> list[str]:
    """``n`` members with names, tags and notes made of CHARS (and some Latin letters), a few staff, activity
    times with ties and never-active members; the names."""
    rng = random.Random(17)
    names = []
    members, tags, notes = [], [], []
    for i in range(n):
        name = "".join(rng.choice(CHARS) for _ in range(rng.randint(1, 5)))
        name += rng.choice(["", "", "Ann", "ANNA", "bob_1", "50%"])
        names.append(name)
        active = None if rng.random() < 0.3 else DAY1 - timedelta(hours=rng.randint(0, 40))
        members.append({"id": f"wm{rng.choice('AaBb')}{i:04d}", "name": name, "staff": i % 50 == 0,
                        "joined_at": DAY1, "tier": "prospect", "last_active_at": active})
        if rng.random() < 0.2:
            tags.append({"member_id": members[-1]["id"], "tag": rng.choice(["岩茶爱好者", "直播课学员", "VIP客户"]),
                         "source": "operator", "added_at": DAY1})
        if rng.random() < 0.1:
            notes.append({"member_id": members[-1]["id"], "author_id": "op1", "author_name": "",
                          "text": "".join(rng.choice(CHARS) for _ in range(rng.randint(3, 30))), "at": DAY1})
    async with app.db.session() as s:
        await s.execute(MEMBER.insert(), members)
        await s.execute(TAGS.insert(), tags)
        await s.execute(NOTES.insert(), notes)
    return names


def queries(names: list[str]) -> list[str]:
    rng = random.Random(3)
    one = [*CHARS, "a", "A", "%", "_", "1", "客"]
    two = [a + b for a in CHARS[:6] for b in CHARS[:6]] + ["an", "NN", "_1", "0%", "直播", "I客"]
    longer = [n[i:i + k] for n in rng.sample(names, 40) for k in (3, 4) for i in range(max(1, len(n) - k + 1))
              if len(n) >= k]
    return one + two + longer + ["wmA", "wmA00", "wma", "wmB0012", "爱好者", "vip客户", "没有这个人", "小王" * 3]


@pytest.mark.parametrize("walk", [None, 40, 500], ids=["as-configured", "walk-the-active", "walk-to-the-never-active"])
async def test_search_finds_what_a_plain_scan_finds(h: Harness, monkeypatch: pytest.MonkeyPatch,
                                                    walk: int | None) -> None:
    if walk is not None:  # every text counts as common: the walk in activity order, the candidates after it
        monkeypatch.setattr(tiers_store, "SEARCH_DENSE", 3)
        monkeypatch.setattr(tiers_store, "SEARCH_WALK", walk)
    names = await seed(h.app)
    for q in queries(names):
        expected = await plain_scan(h.app, q)
        assert await search(h.app, q) == expected, q
        assert await search(h.app, q, 7) == expected[:7], q
    assert len(await search(h.app, "王")) > 100  # the texts are common ones
    assert await search(h.app, "  ") == []


async def test_renames_tags_notes_and_deleted_members_are_followed(h: Harness) -> None:
    await h.say("大家好", sender="wmWang", name="小王同学", mention=False)
    await h.say("你好", sender="wmLi", name="李明", mention=False)
    assert await search(h.app, "小王") == ["wmWang"] == await plain_scan(h.app, "小王")
    assert await search(h.app, "王") == ["wmWang"]

    await h.say("我改名了", sender="wmWang", name="老张", mention=False)  # WeCom sends the new name
    for q in ("小王", "王", "老张", "张"):
        assert await search(h.app, q) == await plain_scan(h.app, q), q
    assert await search(h.app, "小王") == [] and await search(h.app, "张") == ["wmWang"]

    assert "岩茶爱好者" in (await h.say_texts("/tag add @wmLi 岩茶爱好者", sender="op1", staff=True, group=False))[0]
    await h.say_texts("/note @wmLi 月底生日，喜欢白牡丹", sender="op1", staff=True, group=False)
    assert await search(h.app, "岩茶") == ["wmLi"] and await search(h.app, "白牡丹") == ["wmLi"]
    await h.say_texts("/tag del @wmLi 岩茶爱好者", sender="op1", staff=True, group=False)
    assert await search(h.app, "岩茶") == [] and await search(h.app, "生日") == ["wmLi"]

    async with h.app.db.session() as s:  # a note edited, then the member and their note gone
        await s.execute(update(NOTES).where(NOTES.c.member_id == "wmLi").values(text="只喝红茶"))
    assert await search(h.app, "白牡丹") == [] and await search(h.app, "红茶") == ["wmLi"]
    async with h.app.db.session() as s:
        await s.execute(delete(MEMBER).where(MEMBER.c.id == "wmLi"))
    assert await search(h.app, "李") == [] == await plain_scan(h.app, "李")
    assert await search(h.app, "红茶") == []  # the note outlives the member: no one to show
    async with h.app.db.session() as s:
        await s.execute(delete(NOTES).where(NOTES.c.member_id == "wmLi"))
        left = (await s.execute(select(SEARCH.c.source).where(SEARCH.c.member_id == "wmLi"))).scalars().all()
    assert left == []  # nothing of a deleted member's name or notes is left in the index


async def test_the_index_holds_each_position_of_each_text(h: Harness) -> None:
    await h.say("hi", sender="wmAnn", name="Ann王", mention=False)
    async with h.app.db.read() as s:
        rows = (await s.execute(select(SEARCH.c.gram, SEARCH.c.source).where(SEARCH.c.member_id == "wmAnn")
                                .order_by(SEARCH.c.gram))).all()
    assert sorted(rows) == sorted((tiers_store.gram_code(g), "n") for g in ("ann", "nn王", "n王", "王"))


async def test_members_are_ordered_by_activity_and_staff_left_out(h: Harness) -> None:
    await h.say("早", sender="wmOld", name="王芳", mention=False)
    h.app.clock.set(DAY1 + timedelta(hours=1))
    await h.say("早", sender="wmNew", name="王伟", mention=False)
    await h.say("早", sender="staff09", name="王经理", staff=True, mention=False)
    assert await search(h.app, "王") == ["wmNew", "wmOld"] == await plain_scan(h.app, "王")


async def test_the_console_page_finds_members_by_part_of_a_name_a_tag_or_an_id(harness: Harness) -> None:
    h = harness  # every feature: the console's sign-in too
    await h.admin("/role grant @op1 operator")
    await h.say("大家好", sender="wmXiaoWang01", name="小王", mention=False)
    await h.say_texts("/tag add @wmXiaoWang01 直播课学员", sender="op1", staff=True, group=False)
    async with serve(h.app) as client:
        await sign_in(client, h.app, "op1")
        for q in ("王", "小王", "直播", "wmXiao"):
            page = await (await client.get("/console/members", params={"q": q})).text()
            assert "/console/members/wmXiaoWang01" in page, q
        page = await (await client.get("/console/members", params={"q": "Wang01"})).text()
        assert "没有找到「Wang01」" in page  # an id is found by its beginning


async def test_migrating_indexes_the_members_already_there(h: Harness) -> None:
    """The migration's backfill: names, tags and notes written while there was no index are indexed by it."""
    migration: Any = import_module("bot.storage.migrations.versions.0405_member_search")
    await h.say("hi", sender="wmZhao", name="赵小云", mention=False)
    await h.say_texts("/tag add @wmZhao 岩茶爱好者", sender="op1", staff=True, group=False)
    await h.say_texts("/note @wmZhao 月底生日", sender="op1", staff=True, group=False)
    async with h.app.db.session() as s:
        await s.execute(delete(SEARCH))
    assert await search(h.app, "小云") == []
    async with h.app.db.session() as s:
        for statement in migration.backfill(h.app.db.dialect):
            await s.execute(text(statement))
    for q in ("小云", "云", "岩茶", "生日"):
        assert await search(h.app, q) == ["wmZhao"], q
