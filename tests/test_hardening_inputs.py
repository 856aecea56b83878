"""What members and operators type cannot overflow, collide or forge: long keys are hashed (never cut), numbers,
amounts, points and dates have bounds (and a ledger written before there were bounds can be repaired), names
lose their control, ANSI and bidi characters before any reply sees them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Config
from bot.effects import Effects
from bot.members import MEMBERS
from bot.storage.models import AuditLog
from bot.testing import Harness
from bot.tiers import LADDER
from bot.tiers.models import Member, PointsEntry, Purchase
from tests.test_tiers_commands import grant_op, member, run_cli

INT64_MAX = 9223372036854775807


async def ledger(app: BotApp) -> list[tuple[str, int]]:
    async with app.db.read() as s:
        return [tuple(r) for r in (await s.execute(select(PointsEntry.action, PointsEntry.points)
                                                   .order_by(PointsEntry.id))).all()]


async def last_outcome(app: BotApp) -> str:
    async with app.db.read() as s:
        return (await s.execute(select(AuditLog.outcome).order_by(AuditLog.id.desc()).limit(1))).scalar_one()


# ── #6: keys that share a long prefix ──


def test_effects_keys_sharing_a_long_prefix_stay_apart(bot: BotApp) -> None:
    a = Effects(bot, None, "x", scope="e" * 200 + "-one")
    b = Effects(bot, None, "x", scope="e" * 200 + "-two")
    assert a.key() != b.key() and len(a.key("z")) <= 200
    assert Effects(bot, None, "short").key("1") == "short|1"  # keys that fit are unchanged


async def test_events_whose_keys_share_a_long_prefix_both_have_their_effects(harness: Harness) -> None:
    """Two events whose keys differ only in their last character (250 characters, so nothing hashes them at
    the inbox): both get their reply (ctx.key() was cut at 200) and both grants reach the ledger (its
    source_event was cut at 255)."""
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    prefix = "wecom:msg:" + "k" * 239
    replies = [await harness.say_texts("/help", key=prefix + tail, sender="wmBob", name="Bob") for tail in "12"]
    assert all(len(r) == 1 and "/me" in r[0] for r in replies), replies
    for tail, points in (("3", 7), ("4", 11)):
        (text,) = await harness.say_texts(f"/points add @wmBob {points} 活动", key=prefix + tail,
                                          sender="op01", name="小运", staff=True)
        assert f"加 {points} 分" in text
    assert [p for a, p in await ledger(harness.app) if a == "grant"] == [7, 11]
    assert (await member(harness.app, "wmBob")).points == 1 + 7 + 11


# ── #7: points and amounts have bounds; an overflowed ledger is repaired ──


@pytest.mark.parametrize(("command", "problem"), [
    (f"/points add @wmBob {INT64_MAX} 测试", "积分 太大了"),
    (f"/points add @wmBob -{INT64_MAX} 测试", "积分 太大了"),
    ("/points add @wmBob 1000001 测试", "积分 不能大于 1,000,000"),
    ("/points add @wmBob -1000001 测试", "积分 不能小于 -1,000,000"),
    ("/purchase @wmBob 10000000.01", "金额（元） 不能大于 10,000,000"),
    ("/purchase @wmBob 19.999", "最多 2 位小数"),
    ("/purchase @wmBob nan", "应是普通写法的数字"),
    ("/purchase @wmBob inf", "应是普通写法的数字"),
    ("/purchase @wmBob -inf", "应是普通写法的数字"),
    ("/purchase @wmBob 1e308", "应是普通写法的数字"),
    ("/purchase @wmBob " + "9" * 5000, "太大了"),
    ("/points add @wmBob " + "9" * 5000 + " 测试", "太大了"),
])
async def test_out_of_bounds_numbers_get_the_usage_and_change_nothing(harness: Harness, command: str,
                                                                      problem: str) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    before = await ledger(harness.app)
    (text,) = await harness.say_texts(command, sender="op01", name="小运", staff=True)
    assert problem in text and "用法：/" in text, text
    assert len(text) < 600  # a 5,000-digit argument is not echoed back
    assert await ledger(harness.app) == before
    assert await last_outcome(harness.app) == "usage_error"


async def test_the_exact_repro_is_refused_and_me_keeps_working(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    for sign in ("", "-", "", "-"):
        (text,) = await harness.say_texts(f"/points add @wmBob {sign}{INT64_MAX} 测试", sender="op01",
                                          name="小运", staff=True)
        assert "用法：/points add" in text
    (card,) = await harness.say_texts("/me", sender="wmBob", name="Bob")
    assert "积分：1" in card


async def test_the_largest_grant_is_recorded_and_shown(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    texts = await harness.say_texts("/points add @wmBob 1000000 年度大奖", sender="op01", name="小运", staff=True)
    assert any("加 1000000 分" in t for t in texts)
    text = "\n".join(await harness.say_texts("/tier show @wmBob", sender="op01", name="小运", staff=True))
    assert "积分 1000001" in text and "+1000000" in text  # the card formats entries beyond the template budget


async def test_a_member_total_is_capped(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    async with harness.app.db.session() as s:
        await s.execute(Member.__table__.update().where(Member.__table__.c.id == "wmBob")
                        .values(points=999_999_999, spend_cents=1_999_999_000))
    (text,) = await harness.say_texts("/points add @wmBob 2 活动", sender="op01", name="小运", staff=True)
    assert "积分总额不能超过 ±1,000,000,000" in text and "用法：/points add" in text
    (text,) = await harness.say_texts("/purchase @wmBob 100", sender="op01", name="小运", staff=True)
    assert "超出上限" in text
    async with harness.app.db.read() as s:
        assert (await s.execute(select(func.count()).select_from(Purchase))).scalar_one() == 0
    texts = await harness.say_texts("/points add @wmBob -5 更正", sender="op01", name="小运", staff=True)
    assert any("扣 5 分" in t for t in texts)  # towards zero is always allowed
    assert (await member(harness.app, "wmBob")).points == 999_999_994
    await harness.say("又一条", sender="wmBob", name="Bob", mention=False)  # automatic points still fit
    assert (await member(harness.app, "wmBob")).points == 999_999_995


async def _overflow_the_ledger(app: BotApp) -> None:
    """What an operator could do before there were bounds: the same two writes the ladder made for
    ``/points add @wmBob 9223372036854775807`` (and back)."""
    ladder = app.get(LADDER)
    at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    big = INT64_MAX if app.db.is_sqlite else 2**31 - 1  # the largest the column holds (PostgreSQL: integer)
    async with app.db.session() as s:
        for n, points in enumerate((big, big, -big)):
            await ladder.store.add_entry(s, member_id="wmBob", action="grant", points=points, amount_cents=0,
                                         reason="旧版本", source_event=f"grant:old-{n}", chat_id="", day="2026-11-23",
                                         at=at)
        await s.execute(Member.__table__.update().where(Member.__table__.c.id == "wmBob")
                        .values(points=big))


async def test_an_overflowed_ledger_is_repaired_in_chat(harness: Harness) -> None:
    harness.app.clock.set(datetime(2026, 11, 23, 2, tzinfo=UTC))  # type: ignore[attr-defined]
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await grant_op(harness)
    await _overflow_the_ledger(harness.app)
    (card,) = await harness.say_texts("/me", sender="wmBob", name="Bob")
    assert "Bob 的会员卡" in card
    text = "\n".join(await harness.say_texts("/tier show @wmBob", sender="op01", name="小运", staff=True))
    assert "wmBob" in text
    (prompt,) = await harness.say_texts("/tier recompute", sender="op01", name="小运", staff=True)
    code = prompt.split("/confirm ")[1][:4]
    (done,) = await harness.say_texts(f"/confirm {code}", sender="op01", name="小运", staff=True)
    assert "已按流水更正" in done and "有 3 条积分流水超出上限" in done
    assert (await member(harness.app, "wmBob")).points == 1
    (card,) = await harness.say_texts("/me", sender="wmBob", name="Bob")
    assert "积分：1" in card
    (ok,) = await harness.say_texts("/points add @wmBob 5 活动", sender="op01", name="小运", staff=True)
    assert "加 5 分" in ok


async def test_an_overflowed_ledger_is_repaired_from_the_command_line(harness: Harness, config: Config) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await _overflow_the_ledger(harness.app)
    r = run_cli(config, "tiers", "recompute")
    assert r.returncode == 0, r.stderr
    assert "1 member(s) corrected" in r.stdout and "3 ledger entries beyond the bounds" in r.stdout
    assert (await member(harness.app, "wmBob")).points == 1


def test_tiers_yaml_points_are_bounded(tmp_path: object) -> None:
    from bot.tiers.rulesfile import POINTS_SPECS

    with pytest.raises(ValueError, match="0 到 1,000,000"):
        POINTS_SPECS["message"].model_validate({"points": 10**19})


# ── #11: numbers and dates that cannot be computed with ──


@pytest.mark.parametrize("command", [
    "/sop preview newcomer-7d 9999-12-31 23:59",
    "/sop preview newcomer-7d 本群 9999-12-31 23:59",
    "/sop preview newcomer-7d 0001-01-01",
    "/sop preview live-weekly 2101-01-01 00:00",
])
async def test_sop_preview_refuses_out_of_range_times_with_the_usage(harness: Harness, command: str) -> None:
    (text,) = await harness.admin(command, chat="g1")
    assert "年份应在 2000–2100 之间" in text and "用法：/sop preview" in text, text


@pytest.mark.parametrize("command", ["/moments week 9999-12-31", "/moments approve 0001-01-01",
                                     "/sop pause " + "9" * 5000, "/alerts show 99999999999999999999"])
async def test_dates_and_ids_out_of_range_get_the_usage(harness: Harness, command: str) -> None:
    texts = await harness.admin(command, group=False)
    assert len(texts) == 1 and ("年份应在" in texts[0] or "太大了" in texts[0]) and "用法：/" in texts[0], texts


# ── #13: names ──


EVIL = "\u202eBob\x1b[31m红\x1b[0m\u2066\x07"


async def test_a_member_named_with_bidi_and_ansi_gets_replies_without_them(harness: Harness) -> None:
    await harness.say("你好", sender="wmBob", name=EVIL, mention=False)
    (card,) = await harness.say_texts("/me", sender="wmBob", name=EVIL)
    assert "Bob红 的会员卡" in card
    assert not any(ch in card for ch in "\u202e\x1b\u2066\x07")
    assert (await member(harness.app, "wmBob")).name == "Bob红"  # stored clean too
    joined = await harness.join("wmEve", "Eve\u202egnp.exe", chat="g1", chat_name="茶友\x1b[2J群")
    assert joined and all("\u202e" not in d.text and "\x1b" not in d.text for d in joined)


async def test_names_already_in_the_database_come_out_of_the_directory_clean(harness: Harness) -> None:
    await harness.say("你好", sender="wmBob", name="Bob", mention=False)
    async with harness.app.db.session() as s:
        await s.execute(Member.__table__.update().where(Member.__table__.c.id == "wmBob").values(name=EVIL))
        profile = await harness.app.get(MEMBERS).profile(s, "wmBob")
    assert profile is not None and profile.name == "Bob红"
