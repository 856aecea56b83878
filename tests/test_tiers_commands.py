"""The tiers commands as members and operators use them: cards, ranks, grants, purchases, tags, roles."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Config
from bot.events import TagAdded
from bot.storage.models import AuditLog
from bot.testing import Harness, listener
from bot.tiers.models import Member, MemberTag, PointsEntry, Purchase, TierChange

REPO = Path(__file__).resolve().parent.parent


async def member(app: BotApp, member_id: str) -> Member:
    async with app.db.read() as s:
        return (await s.execute(select(Member).where(Member.id == member_id))).scalar_one()


async def count(app: BotApp, model: type) -> int:
    async with app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def grant_op(h: Harness, who: str = "op01") -> None:
    (text,) = await h.admin(f"/role grant @{who} operator")
    assert "operator" in text or "运营" in text


async def test_me_shows_tier_points_and_what_the_next_tier_needs(harness: Harness) -> None:
    for i in range(3):
        await harness.say(f"今天的茶真香 {i}", sender="wmBob", name="Bob", mention=False)
    await harness.say("打卡", sender="wmBob", name="Bob", mention=False)
    (card,) = await harness.say_texts("/me", sender="wmBob", name="Bob")
    assert "Bob 的会员卡" in card and "等级：潜客" in card
    assert "积分：9" in card  # 4 message points + 5 for the check-in
    assert "下一级「活跃成员」还差：积分 21" in card
    assert "参与群内抽奖" in card  # what the next tier unlocks


async def test_rank_lists_the_group_top_members_in_order(harness: Harness) -> None:
    for who, n in (("wmAnn", 3), ("wmBen", 5), ("wmCai", 1)):
        for i in range(n):
            await harness.say(f"聊天 {i}", sender=who, name=who[2:], mention=False)
    await harness.say("别的群", sender="wmDan", name="Dan", chat="g2", mention=False)
    (text,) = await harness.say_texts("/rank", sender="wmCai", name="Cai")
    lines = [ln for ln in text.splitlines() if ln[:2] in ("1.", "2.", "3.", "4.")]
    assert [ln.split(" — ")[0] for ln in lines] == ["1. Ben", "2. Ann", "3. Cai"]
    assert "← 你" in lines[2] and "Dan" not in text
    (wrong,) = await harness.say_texts("/rank", sender="wmCai", name="Cai", group=False)
    assert "/rank" in wrong  # groups only: the member is told where it works


async def test_operator_commands_need_the_operator_role(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    (denied,) = await harness.say_texts("/points add @wmBob 50 想要积分", sender="wmEve", name="Eve")
    assert "权限" in denied
    assert (await member(harness.app, "wmBob")).points == 1
    await grant_op(harness)
    sent = await harness.say("/points add @wmBob 50 分享了冲泡心得", sender="op01", name="小运", staff=True)
    (ok,) = [d.text for d in sent if d.kind == "app_message"]  # typed in the group: answered 1:1
    assert [d.text for d in sent if d.kind == "reply"] == ["已私信回复你～"]
    assert "已为 Bob 加 50 分" in ok and "活跃成员" in ok
    assert any(d.kind == "group_robot" and "恭喜 Bob 升级" in d.text for d in sent)  # announced in Bob's group
    m = await member(harness.app, "wmBob")
    assert (m.points, m.tier) == (51, "active")
    async with harness.app.db.read() as s:
        (entry,) = (await s.execute(select(PointsEntry).where(PointsEntry.action == "grant"))).scalars().all()
        audits = (await s.execute(select(AuditLog.command, AuditLog.actor, AuditLog.outcome).where(
            AuditLog.command.like("points%")))).all()
    assert entry.points == 50 and "分享了冲泡心得" in entry.reason and "小运" in entry.reason
    assert ("points add", "op01", "ok") in audits
    assert [a for a in audits if a.actor == "wmEve" and a.outcome != "ok"]  # refusals are audited too


async def test_bad_arguments_print_the_usage_and_change_nothing(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    for bad in ("/points add @wmBob lots 原因", "/points add @wmBob", "/purchase @wmBob -5", "/tier set @wmBob"):
        (text,) = await harness.admin(bad)
        assert "用法" in text, bad
    (zero,) = await harness.admin("/points add @wmBob 0 没事")
    assert "0" in zero
    (nobody,) = await harness.admin("/points add @wmNobody 5 谁")
    assert "找不到成员 wmNobody" in nobody
    (unknown,) = await harness.admin("/tier set @wmBob platinum 想升级")
    assert "platinum" in unknown
    assert await count(harness.app, TierChange) == 0
    assert (await member(harness.app, "wmBob")).points == 1


async def test_purchases_count_once_and_move_buyers_to_vip(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    (text,) = [d.text for d in await harness.say("/purchase @Bob 268 正山小种礼盒", sender="admin01", staff=True)
               if d.kind == "app_message"]
    assert "¥268.00（正山小种礼盒）" in text and "+50 积分" in text and "VIP" in text
    m = await member(harness.app, "wmBob")
    assert (m.purchases, m.spend_cents, m.tier) == (1, 26800, "vip")
    async with harness.app.db.read() as s:
        (p,) = (await s.execute(select(Purchase))).scalars().all()
    assert (p.member_id, p.amount_cents, p.sku, p.recorded_by) == ("wmBob", 26800, "正山小种礼盒", "admin01")


async def test_tier_set_asks_for_confirmation_then_pins_and_audits(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    (prompt,) = await harness.admin("/tier set @wmBob quality 线下活动表现突出")
    assert "/confirm" in prompt
    assert (await member(harness.app, "wmBob")).tier == "prospect"
    code = prompt.split("/confirm ")[1][:4]
    texts = await harness.admin(f"/confirm {code}")
    assert any("已把 Bob 固定为「质量成员」" in t for t in texts)
    m = await member(harness.app, "wmBob")
    assert (m.tier, m.tier_override) == ("quality", "quality")
    async with harness.app.db.read() as s:
        (change,) = (await s.execute(select(TierChange))).scalars().all()
    assert (change.rule, change.operator, change.reason) == ("operator", "admin01", "线下活动表现突出")
    (show,) = await harness.admin("/tier show @wmBob")
    assert "运营固定为 quality" in show and "线下活动表现突出" in show
    (prompt,) = await harness.admin("/tier set @wmBob auto 恢复规则评定")
    await harness.admin(f"/confirm {prompt.split('/confirm ')[1][:4]}")
    m = await member(harness.app, "wmBob")
    assert (m.tier, m.tier_override) == ("prospect", None)


async def test_rules_and_stats_read_the_live_ladder(harness: Harness) -> None:
    (rules,) = await harness.say_texts("/tier rules", sender="wmBob", name="Bob")
    assert "1. 潜客（prospect）：起点" in rules and "VIP（vip）：购买次数 ≥ 1" in rules
    assert "连续 30 天不发言回到「潜客」" in rules
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    await harness.admin("/purchase @wmBob 99")
    (stats,) = await harness.admin("/tier stats")
    assert "VIP：1 人" in stats and "潜客：0 人" in stats and "升级 1 次" in stats


async def test_recompute_command_confirms_then_reports(harness: Harness) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    (prompt,) = await harness.admin("/tier recompute")
    texts = await harness.admin(f"/confirm {prompt.split('/confirm ')[1][:4]}")
    assert any("所有成员的积分与等级都和流水一致" in t for t in texts)


async def test_tags_are_added_once_emit_tag_added_and_list(make_bot: Callable[..., BotApp]) -> None:
    heard: list[TagAdded] = []
    app = make_bot()
    app.dispatcher.include(listener(TagAdded, heard))
    await app.start()
    h = Harness(app)
    await h.say("hi", sender="wmBob", name="Bob", mention=False)
    (added,) = await h.admin("/tag add @Bob 红茶爱好者")
    assert "已给 Bob 打上标签「红茶爱好者」" in added
    (again,) = await h.admin("/tag add @Bob 红茶爱好者")
    assert "已经有标签" in again
    assert [(e.member.id, e.tag, e.chat.id if e.chat else None) for e in heard] == [("wmBob", "红茶爱好者", "g1")]
    (bad,) = await h.admin("/tag add @Bob tier:vip")
    assert "不能用" in bad
    (mine,) = await h.admin("/tag list @wmBob")
    assert "红茶爱好者" in mine
    (everyone,) = await h.admin("/tag list")
    assert "红茶爱好者：1 人" in everyone
    (gone,) = await h.admin("/tag del @wmBob 红茶爱好者")
    assert "已去掉" in gone
    async with app.db.read() as s:
        tags = (await s.execute(select(MemberTag.tag).where(MemberTag.member_id == "wmBob"))).scalars().all()
    assert tags == []


def run_cli(config: Config, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "SIYU_DATABASE__URL": config.database.url, "SIYU_BOT__ADMINS": '["admin01"]'}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, env=env, input=stdin, text=True,
                          capture_output=True, timeout=120)


async def test_import_purchases_checks_every_line_first_and_imports_once(harness: Harness, config: Config,
                                                                         tmp_path: Path) -> None:
    await harness.say("hi", sender="wmBob", name="Bob", mention=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,member,amount,sku\no-1,wmBob,268,礼盒\no-2,wmBob,abc,\no-1,wmAnn,5,\n", encoding="utf-8")
    r = run_cli(config, "tiers", "import-purchases", str(bad))
    assert r.returncode == 1
    assert "line 3: amount must be a number" in r.stderr
    assert "line 4: order id o-1 already appears on line 2" in r.stderr
    assert await count(harness.app, Purchase) == 0
    good = tmp_path / "orders.csv"
    good.write_text("id,member,amount,sku,time,name\no-1,wmBob,268,礼盒,2026-11-20 10:00,\n"
                    "o-2,wmNew,39.9,,,新客\n", encoding="utf-8")
    r = run_cli(config, "tiers", "import-purchases", str(good), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == {"imported": 2, "already_imported": 0, "tier_changes": 2}
    r = run_cli(config, "tiers", "import-purchases", str(good), "--json")
    assert json.loads(r.stdout.splitlines()[-1]) == {"imported": 0, "already_imported": 2, "tier_changes": 0}
    bob, new = await member(harness.app, "wmBob"), await member(harness.app, "wmNew")
    assert (bob.purchases, bob.spend_cents, bob.tier) == (1, 26800, "vip")
    assert (new.name, new.spend_cents, new.tier) == ("新客", 3990, "vip")


async def test_recompute_and_check_from_the_command_line(harness: Harness, config: Config, tmp_path: Path) -> None:
    await harness.say("打卡", sender="wmBob", name="Bob", mention=False)
    async with harness.app.db.session() as s:
        await s.execute(Member.__table__.update().where(Member.__table__.c.id == "wmBob").values(points=999))
    r = run_cli(config, "tiers", "recompute", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    first, summary = (json.loads(line) for line in r.stdout.splitlines()[-2:])
    assert first["member"] == "wmBob" and first["fields"]["points"] == [999, 6]
    assert summary == {"summary": {"differences": 1, "applied": False}}
    assert (await member(harness.app, "wmBob")).points == 999
    r = run_cli(config, "tiers", "recompute")
    assert r.returncode == 0 and "1 member(s) corrected" in r.stdout
    assert (await member(harness.app, "wmBob")).points == 6
    broken = tmp_path / "tiers.yaml"
    broken.write_text("tiers:\n  - {id: prospect, name: 潜客}\n  - {id: Bad Id, name: x}\n", encoding="utf-8")
    r = run_cli(config, "tiers", "check", str(broken))
    assert r.returncode == 1 and f"{broken}:3:" in r.stdout
    r = run_cli(config, "tiers", "check", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
