"""One source of truth: every shipped text quotes the ladder (tiers.yaml) through ``ladder``, so an edit of the
rules changes every answer, step and Moments text; ``kb check`` and ``sop check`` warn about a written figure or
tier name that contradicts it; a question about checking in is not a check-in."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.cli import main
from bot.ladderfacts import NO_LADDER, contradictions
from bot.templates import Templates
from bot.testing import Harness
from bot.tiers.facts import read_facts
from bot.tiers.models import Member

REPO = Path(__file__).resolve().parent.parent
SHIPPED_TEXTS = [*sorted((REPO / "knowledge_base").glob("*.yaml")), *sorted((REPO / "sop_templates").rglob("*.yaml")),
                 *sorted((REPO / "sop_templates").rglob("*.j2"))]
# The shipped tiers.yaml with other figures and names: every text must follow it.
EDITS = [("checkin:  {points: 5,", "checkin:  {points: 7,"), ("homework: {points: 20,", "homework: {points: 25,"),
         ("referral: {points: 30}", "referral: {points: 45}"), ("purchase: {points: 50}", "purchase: {points: 80}"),
         ("name: VIP,", "name: 金卡,"), ("name: 活跃成员,", "name: 常来茶友,"),
         ("requires: {points: 30}}", "requires: {points: 40}}"),
         ("streak: {days: 7, points: 30}", "streak: {days: 5, points: 40}")]
NO_STREAK = [("streak: {days: 7, points: 30}", "")]


def edited_rules(directory: Path, edits: list[tuple[str, str]] = EDITS) -> Path:
    text = (REPO / "tiers.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = directory / "tiers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
async def edited(make_bot: Callable[..., BotApp], make_config: Callable[..., Any],
                 tmp_path: Path) -> AsyncIterator[tuple[Harness, Path]]:
    rules = edited_rules(tmp_path)
    app = make_bot(cfg=make_config(TIERS__RULES=str(rules)))
    await app.start()
    try:
        yield Harness(app), rules
    finally:
        await app.stop()


async def dm(h: Harness, text: str) -> str:
    (answer,) = await h.say_texts(text, group=False, sender="wmBob", name="Bob")
    return answer


async def member(h: Harness, member_id: str) -> Member:
    async with h.app.db.read() as s:
        return (await s.execute(select(Member).where(Member.id == member_id))).scalar_one()


# ── the knowledge base follows the ladder ──


async def test_shipped_answers_render_the_ladder_in_service(harness: Harness) -> None:
    levels = await dm(harness, "会员等级有哪些")
    for name in ("潜客", "活跃成员", "质量成员", "VIP", "种子用户"):
        assert f"· {name}：" in levels
    assert "积分满 100、打卡 5 次、交作业 1 次" in levels and "茶客" not in levels and "茶师" not in levels
    earn = await dm(harness, "积分怎么获得")
    assert "购买：每次 +50" in earn and "打卡（在群里发「打卡 …」）：每次 +5" in earn and "1 元 = 1 积分" not in earn
    assert "您 +30 积分" in await dm(harness, "邀请好友有奖励吗")
    checkin = await dm(harness, "打卡规则是什么")
    assert "每次打卡 +5 积分（每天计 1 次），连续 7 天再额外 +30" in checkin


async def test_an_edit_of_the_rules_changes_every_answer(edited: tuple[Harness, Path]) -> None:
    h, rules = edited
    levels = await dm(h, "会员等级有哪些")
    assert "· 金卡：购买 1 次" in levels and "· 常来茶友：积分满 40" in levels and "VIP" not in levels
    earn = await dm(h, "积分怎么获得")
    assert "购买：每次 +80" in earn and "每次 +7" in earn and "每次 +25" in earn and "+50" not in earn
    assert "连续 5 天再额外 +40" in await dm(h, "打卡规则是什么")
    assert "您 +45 积分" in await dm(h, "邀请好友有奖励吗")
    assert "升到「金卡」（购买 1 次）" in await dm(h, "怎么进VIP群")
    # and a reload while the bot runs changes them at once
    rules.write_text(rules.read_text(encoding="utf-8").replace("purchase: {points: 80}", "purchase: {points: 90}"),
                     encoding="utf-8")
    os.utime(rules, ns=(1, 1))
    h.app.clock.advance(10)
    await h.app.settle()
    assert "购买：每次 +90" in await dm(h, "攒积分有哪些方法")


# ── SOP and Moments texts follow the ladder ──


def sample_member() -> dict[str, Any]:
    return {"name": "小明", "tier": "", "tier_name": "", "points": 0, "checkins": 0, "homework": 0, "spend": 0}


@pytest.mark.parametrize("rules", ["shipped", "edited"])
def test_shipped_sop_and_moments_texts_render_the_ladder(rules: str, tmp_path: Path) -> None:
    path = REPO / "tiers.yaml" if rules == "shipped" else edited_rules(tmp_path)
    facts = read_facts(path)
    templates = Templates(ZoneInfo("Asia/Shanghai"), [REPO / "sop_templates" / "templates"])
    templates.provide_ladder(lambda: facts)
    values = {"member": sample_member(), "group": {"name": "打卡群"}}
    checkin, vip, streak = facts.actions["checkin"], facts.tier("vip"), facts.streak
    assert vip is not None and streak is not None
    promise = f"连续 {streak.days} 天再额外 +{streak.points}"
    day3 = templates.render_file("newcomer/day3_checkin.j2", **values)
    assert f"每次 +{checkin.points} 积分，{promise}" in day3
    opening = templates.render_file("checkin/opening.j2", **values)
    assert f"每次打卡 +{checkin.points} 积分，{promise}" in opening
    day7 = templates.render_file("newcomer/day7_review.j2", **values)
    active = facts.tier("active")
    assert active is not None and f"积分满 {active.requires['points']} 就能升到「{active.name}」" in day7
    day5 = templates.render_file("newcomer/day5_homework.j2", **values)
    assert f"提交即得 {facts.points['homework']} 积分" in day5 and "再加 50" not in day5
    referral = templates.render_file("lifecycle/referral.j2", **values)
    assert f"您 +{facts.points['referral']} 积分" in referral and "+200" not in referral
    moments = (REPO / "sop_templates" / "moments.yaml").read_text(encoding="utf-8")
    (vip_slot,) = [m.group(1) for m in re.finditer(r"text: \|\n\s+(给.*)", moments)]
    assert templates.render_string(vip_slot).startswith(f"给{vip.name}茶友的悄悄话")


def test_no_shipped_text_writes_a_figure_or_tier_name_the_ladder_contradicts(tmp_path: Path) -> None:
    for path in (REPO / "tiers.yaml", edited_rules(tmp_path)):
        facts = read_facts(path)
        found = [(p.name, n, w) for p in SHIPPED_TEXTS for n, w in contradictions(p.read_text(encoding="utf-8"), facts)]
        assert found == []
    # the old shop ladder's names in texts (members may still ask with them: questions keep them)
    old = re.compile("茶客及以上|茶师（VIP）|VIP 茶师|茶师专属权益|茶师 85 折|再加 50 积分|再 \\+200")
    assert [p.name for p in SHIPPED_TEXTS if old.search(p.read_text("utf-8"))] == []


def test_without_the_tiers_feature_ladder_renders_empty() -> None:
    templates = Templates(ZoneInfo("Asia/Shanghai"))
    assert templates.ladder() is NO_LADDER
    text = templates.render_string('[{{ ladder.points.purchase }}|{{ ladder.tier("vip").name }}|'
                                   '{{ ladder.first.name }}]{% for t in ladder.tiers %}x{% endfor %}')
    assert text == "[||]"


# ── kb check and sop check warn about contradictions ──

BAD_KB = """\
- id: levels
  questions: [会员等级有哪些]
  answer: |
    {{ member.name }}，您现在是「茶客」。
    每次打卡 +10 积分，连续 5 天再额外 +30。
    每次打卡 +{{ ladder.points.checkin }} 积分，您现在是「{{ member.tier_name }}」，升到「VIP」有专属顾问。
    100 积分 = 1 元，口令是「芝麻开门」，在群里发「打卡 白牡丹」。
    朋友扫码进群，您 +20 积分；下单满 99 元包邮。
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_kb_check_warns_at_each_contradicting_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.yaml").write_text(BAD_KB, encoding="utf-8")
    code, out = run(capsys, "kb", "check", str(kb), "--tiers", str(REPO / "tiers.yaml"))
    assert code == 0  # warnings do not fail the check
    warnings = [ln for ln in out.splitlines() if ln.startswith("⚠")]
    assert [w.split(": ", 1)[0] for w in warnings] == ["⚠ kb/faq.yaml:4", "⚠ kb/faq.yaml:5", "⚠ kb/faq.yaml:5",
                                                       "⚠ kb/faq.yaml:8"]
    assert "「茶客」不是 tiers.yaml 里的等级" in warnings[0] and "潜客、活跃成员" in warnings[0]
    assert "写的是 10 积分，tiers.yaml 里打卡是 5 积分" in warnings[1] and "ladder.points.checkin" in warnings[1]
    assert "与 tiers.yaml 的连续打卡奖励不符（连续 7 天 +30）" in warnings[2]
    assert "写的是 20 积分，tiers.yaml 里邀请新成员是 30 积分" in warnings[3]
    assert "4 warning(s)" in out
    code, out = run(capsys, "kb", "check", str(kb), "--tiers", str(REPO / "tiers.yaml"), "--json")
    result = json.loads(out)
    assert result["ok"] is True and [(w["file"], w["line"]) for w in result["warnings"]] == [
        ("kb/faq.yaml", 4), ("kb/faq.yaml", 5), ("kb/faq.yaml", 5), ("kb/faq.yaml", 8)]
    # the figures that agree with another ladder are not warned about
    other = edited_rules(tmp_path, [("checkin:  {points: 5,", "checkin:  {points: 10,"),
                                    ("referral: {points: 30}", "referral: {points: 20}")])
    code, out = run(capsys, "kb", "check", str(kb), "--tiers", str(other), "--json")
    assert [w["line"] for w in json.loads(out)["warnings"]] == [4, 5]
    # a ladder without a streak rule: any streak promise is one no rule keeps
    (tmp_path / "plain").mkdir()
    code, out = run(capsys, "kb", "check", str(kb), "--tiers", str(edited_rules(tmp_path / "plain", NO_STREAK)),
                    "--json")
    assert any("没有 streak 规则" in w["warning"] for w in json.loads(out)["warnings"])


def test_sop_check_warns_about_steps_and_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripts = tmp_path / "sop"
    (scripts / "templates").mkdir(parents=True)
    (scripts / "templates" / "hello.j2").write_text("{{ member.name }}，恭喜升到「茶师」！\n", encoding="utf-8")
    (scripts / "welcome.yaml").write_text(
        "id: welcome\nname: 欢迎\ntrigger: member_joined\nsteps:\n  - id: hi\n    at: \"+0m\"\n    via: reply\n"
        "    text: 欢迎！每次购买 +5 积分，交作业 +{{ ladder.points.homework }} 积分。\n"
        "  - id: later\n    at: \"+1d\"\n    via: reply\n    template: hello.j2\n", encoding="utf-8")
    code, out = run(capsys, "sop", "check", str(scripts), "--tiers", str(REPO / "tiers.yaml"), "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] is True
    assert [(w["file"], w["line"]) for w in result["warnings"]] == [("sop/templates/hello.j2", 1),
                                                                     ("sop/welcome.yaml", 8)]
    assert "tiers.yaml 里购买是 50 积分" in result["warnings"][1]["warning"]


def test_the_shipped_directories_check_without_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "kb", "check", str(REPO / "knowledge_base"), "--json")
    assert code == 0 and json.loads(out)["warnings"] == []
    code, out = run(capsys, "sop", "check", str(REPO / "sop_templates"), "--json")
    assert code == 0 and json.loads(out)["warnings"] == []


# ── what texts tell members to do is what the rules count ──


async def test_a_question_about_checking_in_is_not_a_check_in(harness: Harness) -> None:
    for question in ("打卡有积分吗", "打卡有积分吗？", "怎么打卡？", "打卡规则是什么", "交作业有什么要求？"):
        await harness.say(question, sender="wmBob", name="Bob", mention=False)
    m = await member(harness, "wmBob")
    assert (m.checkins, m.homework) == (0, 0)
    (answer,) = await harness.say_texts("打卡有积分吗", sender="wmCai", name="Cai", mention=False, chat="g2")
    assert "每次打卡 +5 积分" in answer  # the knowledge base answers it in the group
    await harness.say("打卡 白牡丹 清甜，像晒过太阳的被子", sender="wmBob", name="Bob", mention=False)
    await harness.say("交作业 白牡丹 干茶银白，汤色杏黄", sender="wmBob", name="Bob", mention=False)
    m = await member(harness, "wmBob")
    assert (m.checkins, m.homework) == (1, 1)


async def test_the_homework_the_texts_describe_earns_homework_points(harness: Harness) -> None:
    answer = await dm(harness, "作业怎么交")
    (said,) = re.findall(r"在群里发「(\S+) \+ 茶名」", answer)
    sent = await harness.say_texts(f"{said} 正山小种 有桂圆香", sender="wmDan", name="Dan", mention=False)
    assert any("+20 积分" in t for t in sent)
    assert (await member(harness, "wmDan")).homework == 1


async def test_opened_tea_asks_for_the_return_policy(harness: Harness) -> None:
    answer = await dm(harness, "茶叶拆开了还能退吗")
    assert "已拆封的茶叶属于食品" in answer and "茶针" not in answer
    assert "茶针" in await dm(harness, "茶饼太硬怎么拆开")
