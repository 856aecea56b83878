"""tiers.yaml: validation with file and line, and evaluation as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.tiers.rules import Stats, evaluate
from bot.tiers.rulesfile import load_rules, parse_rules
from bot.yamldoc import FileProblems

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
RULES = load_rules(REPO / "tiers.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(FileProblems) as e:
        parse_rules(text, "t.yaml")
    return [str(p) for p in e.value.problems]


def test_the_shipped_ladder_is_the_seeds_ladder() -> None:
    assert [t.id for t in RULES.tiers] == ["prospect", "active", "quality", "vip", "seed"]
    assert RULES.tier("quality").requires == {"points": 100, "checkins": 5, "homework": 1}
    assert RULES.tier("vip").privileges == ("专属顾问", "新品优先")
    assert RULES.points["checkin"].keywords == ("打卡",) and RULES.points["checkin"].daily_cap == 1
    assert RULES.downgrade is not None and RULES.downgrade.to == "prospect" and "vip" in RULES.downgrade.keep


def test_validation_names_file_line_and_problem() -> None:
    out = problems(
        "tiers:\n"
        "  - {id: base, name: 基础}\n"
        "  - {id: Bad Id, name: x}\n"
        "  - {id: gold, name: 金, requires: {points: -3, karma: 1}, colour: red}\n"
        "  - {id: base, name: again}\n"
        "points:\n"
        "  message: {points: 1, daily_cap: 0}\n"
        "  dancing: {points: 2}\n"
        "downgrade: {inactive_days: 30, to: nowhere}\n"
        "privileges: {ghost: [x]}\n"
        "extra: 1\n")
    joined = "\n".join(out)
    assert "t.yaml:3: id 应是小写字母开头的英文标识" in joined
    assert "t.yaml:4: points 应是不小于 0 的数字" in joined
    assert "t.yaml:4: 未知的升级条件 karma" in joined
    assert "t.yaml:4: 等级的未知字段 colour" in joined
    assert "t.yaml:5: 等级 id base 重复了" in joined
    assert "t.yaml:7: message.daily_cap 应是正整数" in joined
    assert "t.yaml:8: 未知的积分动作 dancing" in joined
    assert "t.yaml:9: downgrade.to 应是已定义的等级" in joined
    assert "t.yaml:10: privileges 里的 ghost 不是已定义的等级" in joined
    assert "t.yaml:11: 未知的字段 extra" in joined
    assert any("YAML 语法错误" in p for p in problems("tiers: [\n"))
    assert any("起点，不能有 requires" in p for p in problems("tiers:\n  - {id: a, requires: {points: 1}}\n"))


def test_highest_tier_whose_requirements_are_all_met() -> None:
    joined = NOW - timedelta(days=3)
    assert evaluate(RULES, Stats(points=29, joined_at=joined), NOW).tier == "prospect"
    assert evaluate(RULES, Stats(points=30, joined_at=joined), NOW).tier == "active"
    almost = Stats(points=150, checkins=5, homework=0, joined_at=joined, last_active_at=NOW)
    d = evaluate(RULES, almost, NOW)
    assert d.tier == "active" and d.next.id == "quality" and d.missing == {"homework": 1}
    assert evaluate(RULES, Stats(points=150, checkins=5, homework=1, joined_at=joined, last_active_at=NOW),
                    NOW).tier == "quality"
    assert evaluate(RULES, Stats(purchases=1, joined_at=joined, last_active_at=NOW), NOW).tier == "vip"


def test_seed_customers_need_thirty_days_and_two_purchases() -> None:
    s = Stats(purchases=2, joined_at=NOW - timedelta(days=29, hours=23), last_active_at=NOW)
    d = evaluate(RULES, s, NOW)
    assert d.tier == "vip" and d.next.id == "seed" and d.missing == {"days_since_join": 1}
    assert evaluate(RULES, s, NOW + timedelta(hours=2)).tier == "seed"
    assert evaluate(RULES, Stats(purchases=1, joined_at=NOW - timedelta(days=90)), NOW).tier == "vip"


def test_silence_sends_members_back_but_buyers_stay() -> None:
    quiet = Stats(points=500, checkins=9, homework=2, joined_at=NOW - timedelta(days=90),
                  last_active_at=NOW - timedelta(days=30))
    d = evaluate(RULES, quiet, NOW)
    assert (d.tier, d.rule) == ("prospect", "inactive")
    assert evaluate(RULES, quiet, NOW - timedelta(days=1)).tier == "quality"
    buyer = Stats(purchases=1, joined_at=NOW - timedelta(days=90), last_active_at=NOW - timedelta(days=200))
    assert evaluate(RULES, buyer, NOW).tier == "vip"


def test_an_operator_override_wins_until_cleared() -> None:
    d = evaluate(RULES, Stats(points=0, override="quality", joined_at=NOW), NOW)
    assert (d.tier, d.rule) == ("quality", "operator")
