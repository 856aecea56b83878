"""The streak bonus (``streak:`` in tiers.yaml): check-ins on N consecutive local days earn the bonus once a
streak, on its N-th day; a gap starts a new streak."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.testing import Harness
from bot.tiers import LADDER
from bot.tiers.models import Member, PointsEntry
from bot.tiers.rulesfile import parse_rules
from bot.yamldoc import FileProblems

RULES = """\
tiers:
  - {id: base, name: 基础}
  - {id: star, name: 星, requires: {points: 1000}}
points:
  checkin: {points: 5, daily_cap: 1, keywords: [打卡]}
streak: {days: 3, points: 30}
"""


async def checkin_days(h: Harness, days: int, *, who: str = "wmBob") -> list[list[str]]:
    """Check in once a day for ``days`` days (a day apart); the replies of each."""
    replies = []
    for _ in range(days):
        replies.append(await h.say_texts("打卡 白牡丹 清甜", sender=who, name="Bob", mention=False))
        h.app.clock.advance(timedelta(days=1))
    return replies


async def bonuses(app: BotApp, member_id: str = "wmBob") -> list[tuple[str, int]]:
    async with app.db.read() as s:
        return [(e.day, e.points) for e in (await s.execute(select(PointsEntry).where(
            PointsEntry.member_id == member_id, PointsEntry.action == "streak").order_by(PointsEntry.id))).scalars()]


async def started(make_bot: Callable[..., BotApp], make_config: Callable[..., Any], tmp_path: Path,
                  rules: str = RULES) -> Harness:
    path = tmp_path / "tiers.yaml"
    path.write_text(rules, encoding="utf-8")
    app = make_bot(cfg=make_config(TIERS__RULES=str(path)))
    await app.start()
    return Harness(app)


async def test_a_streak_earns_its_bonus_once_and_a_gap_starts_a_new_one(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Any], tmp_path: Path) -> None:
    h = await started(make_bot, make_config, tmp_path)
    try:
        replies = await checkin_days(h, 3)
        assert "连续打卡 3 天，额外 +30 积分" in replies[2][0]
        assert not any("连续打卡" in r[0] for r in replies[:2])
        first_bonus_day = h.app.get(LADDER).local_day(h.app.clock.now() - timedelta(days=1))
        # a second check-in the same day, and the streak going on: no second bonus for this streak
        await h.say("打卡 又一泡", sender="wmBob", name="Bob", mention=False)
        later = await checkin_days(h, 3)
        assert not any("连续打卡" in r[0] for r in later)
        assert await bonuses(h.app) == [(first_bonus_day, 30)]
        # a day without a check-in, then three in a row: a new streak, a new bonus
        h.app.clock.advance(timedelta(days=1))
        again = await checkin_days(h, 3)
        assert "额外 +30 积分" in again[2][0]
        assert [p for _, p in await bonuses(h.app)] == [30, 30]
        async with h.app.db.read() as s:
            m = (await s.execute(select(Member).where(Member.id == "wmBob"))).scalar_one()
            assert (m.checkins, m.points) == (9, 9 * 5 + 2 * 30)  # nine check-ins, two bonuses
            # the bonus is a ledger entry like any other: a full recompute agrees with the totals
            assert await h.app.get(LADDER).recompute(s, None, h.app.clock.now(), apply=False) == []
        (rules,) = await h.admin("/tier rules", group=False)
        assert "连续打卡 3 天 +30（每段连续一次）" in rules
    finally:
        await h.app.stop()


async def test_without_a_streak_rule_there_is_no_bonus(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Any], tmp_path: Path) -> None:
    h = await started(make_bot, make_config, tmp_path, RULES.replace("streak: {days: 3, points: 30}\n", ""))
    try:
        replies = await checkin_days(h, 4)
        assert not any("连续打卡" in r[0] for r in replies)
        assert await bonuses(h.app) == []
    finally:
        await h.app.stop()


@pytest.mark.parametrize(("streak", "problem"), [
    ("streak: {days: 1, points: 30}", "tiers.yaml:6: streak.days 应是 2 到 366 之间的整数"),
    ("streak: {days: 7, points: -1}", "tiers.yaml:6: streak.points 应是 0 到 1,000,000 之间的整数"),
    ("streak: {days: 7, points: 3, bonus: 1}", "tiers.yaml:6: streak 的未知字段 bonus"),
    ("streak: 7", "tiers.yaml:6: streak 应是 {days: 天数, points: 积分} 映射"),
])
def test_a_bad_streak_rule_is_refused_at_its_line(streak: str, problem: str) -> None:
    with pytest.raises(FileProblems) as exc:
        parse_rules(RULES.replace("streak: {days: 3, points: 30}", streak), "tiers.yaml")
    assert problem in str(exc.value)


def test_a_streak_needs_a_checkin_rule() -> None:
    text = RULES.replace("  checkin: {points: 5, daily_cap: 1, keywords: [打卡]}\n", "  message: {points: 1}\n")
    with pytest.raises(FileProblems) as exc:
        parse_rules(text, "tiers.yaml")
    assert "streak 奖励连续打卡，需要 points 里有 checkin 规则" in str(exc.value)
