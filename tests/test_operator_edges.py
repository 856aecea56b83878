"""Operators' rough edges: Chinese aliases, /alerts list, and help texts without repeated markers."""

from __future__ import annotations

import re

from bot.app import BotApp
from bot.testing import Harness

ALIASES = {  # alias → the command it names (docs/admin.md lists them)
    "帮助": "help", "我是谁": "whoami", "确认": "confirm", "状态": "status", "角色": "role",
    "知识库": "kb", "问": "ask", "提问": "ask", "未答": "kb misses",
    "告警": "alerts", "预警": "alerts", "alerts list": "alerts open", "敏感词": "word",
    "我的": "me", "积分": "me", "我的积分": "me", "排行": "rank", "排行榜": "rank", "作业": "homework",
    "等级": "tier", "等级规则": "tier rules", "加积分": "points add", "购买": "purchase", "标签": "tag",
    "群分层": "group", "备注": "note", "档案": "member", "客户档案": "member", "沉默客户": "members silent",
    "脚本": "sop", "朋友圈": "moments",
    "统计": "stats", "数据": "stats", "转人工 列表": "handoff list", "转人工 接手": "handoff take",
    "转人工 结束": "handoff close", "转人工 关闭": "handoff close",
    "群发": "send", "群发记录": "sends", "send status": "sends", "渠道": "channel", "渠道 新增": "channel add",
    "渠道 列表": "channel list", "满意度": "nps",
}


async def test_every_alias_names_its_command(bot: BotApp) -> None:
    assert {" ".join(a): " ".join(p) for a, p in bot.commands.aliases.items()} == ALIASES


async def test_chinese_aliases_run_their_commands(harness: Harness) -> None:
    await harness.say("大家好", sender="wmBob", name="Bob", mention=False)
    assert await harness.say_texts("/我的", sender="wmBob", name="Bob") == \
        await harness.say_texts("/me", sender="wmBob", name="Bob")
    (ranked,) = await harness.say_texts("/排行", sender="wmBob", name="Bob")
    assert ranked == (await harness.say_texts("/rank", sender="wmBob", name="Bob"))[0]
    (rules,) = await harness.say_texts("/等级规则", sender="wmBob", name="Bob")
    assert rules == (await harness.say_texts("/tier rules", sender="wmBob", name="Bob"))[0]
    kb = "\n".join(await harness.admin("/知识库", group=False))
    assert "/kb add" in kb and "/kb misses" in kb  # the group's help, as /kb alone
    (misses,) = await harness.admin("/未答", group=False)
    assert misses == (await harness.admin("/kb misses", group=False))[0]
    (asked,) = await harness.say_texts("/问", sender="wmBob", name="Bob")
    assert asked == (await harness.say_texts("/ask", sender="wmBob", name="Bob"))[0]


async def test_alerts_list_is_alerts_open(harness: Harness) -> None:
    listed = await harness.admin("/alerts list", group=False)
    assert listed == await harness.admin("/alerts open", group=False)
    assert listed == await harness.admin("/告警 list", group=False)
    assert "用法" not in listed[0] and "是不是想" not in listed[0]


async def test_help_texts_carry_each_marker_once(harness: Harness, bot: BotApp) -> None:
    pages = [(await harness.admin("/help", group=False))[0]]
    for top in bot.commands.top_level():
        pages += await harness.admin(f"/help {top}", group=False)
    for spec in bot.commands.specs.values():
        assert "需确认" not in spec.help, spec.name  # the marker comes from confirm=True, once
        assert "私信" not in spec.help, spec.name
    for page in pages:
        for line in page.splitlines():
            for marker in ("需确认", "私信回复", "（运营）", "（管理员）", "（合规审核）"):
                assert line.count(marker) <= 1, line
            assert not re.search(r"（([^（）]+)）（\1）", line), line
    harness.app.clock.advance(3600)  # type: ignore[attr-defined]  # past the per-member rate limit of app messages
    kb = "\n".join(await harness.admin("/help kb", group=False))  # a long help comes in several messages
    assert "/kb del <id>［需确认］［群里输入时私信回复］" in kb
