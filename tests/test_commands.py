"""Slash commands: parsing with quotes, generated usage and help, roles, confirmation, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.commands import Arg, CommandError, tokenize
from bot.context import Context
from bot.events import MessageEvent
from bot.roles import ADMIN, OPERATOR
from bot.routing import Router
from bot.storage.models import AuditLog, KeyValue
from bot.testing import Harness
from handlers import feature


def test_tokenize_understands_quotes_and_full_width_space() -> None:
    toks = tokenize('add "怎么 退款" “买错了　能退吗” 「七天」 \'x y\' plain')
    assert [t.text for t in toks] == ["add", "怎么 退款", "买错了　能退吗", "七天", "x y", "plain"]
    assert [t.text for t in tokenize("a\u3000b\nc")] == ["a", "b", "c"]
    with pytest.raises(CommandError, match="没有闭合"):
        tokenize('add "unclosed')


def test_arg_conversion_messages_are_chinese_and_precise() -> None:
    with pytest.raises(CommandError, match="应是整数"):
        Arg("n", "数量", type="int").convert("abc")
    with pytest.raises(CommandError, match="不能小于"):
        Arg("n", "数量", type="int", min=1).convert("0")
    with pytest.raises(CommandError, match="只能是"):
        Arg("m", type="choice", choices=("on", "off")).convert("maybe")
    assert Arg("who", type="mention").convert("@张三") == "张三"
    assert str(Arg("d", type="date").convert("2026-11-23")) == "2026-11-23"
    assert str(Arg("t", type="time").convert("9:30")) == "09:30:00"


def notes_feature(app: BotApp) -> Router:
    r = Router("notes")
    r.describe("note", "笔记（测试用）")

    @r.command("note add", Arg("title", "标题"), Arg("body", "内容", rest=True), roles=[OPERATOR],
               help="记一条笔记")
    async def add(event: MessageEvent, ctx: Context) -> None:
        ctx.session.add(KeyValue(key=f"note:{ctx.args['title']}", value=ctx.args["body"], updated_at=ctx.now()))
        await ctx.reply(f"已记下 {ctx.args['title']}")

    @r.command("note wipe", roles=[ADMIN], confirm=True, help="清空笔记")
    async def wipe(event: MessageEvent, ctx: Context) -> None:
        assert ctx.confirmed
        ctx.session.add(KeyValue(key="wiped", value=True, updated_at=ctx.now()))
        await ctx.reply("已清空")

    @r.command("note crash", roles=[OPERATOR], help="总是失败")
    async def crash(event: MessageEvent, ctx: Context) -> None:
        ctx.session.add(KeyValue(key="half-done", value=True, updated_at=ctx.now()))
        raise RuntimeError("boom")

    @r.command("note here", where="single", help="只能私聊")
    async def here(event: MessageEvent, ctx: Context) -> None:
        await ctx.reply("ok")

    return r


@pytest.fixture
async def h(make_bot: Callable[..., BotApp]) -> Harness:
    app = make_bot(features=[feature("admin"), notes_feature])
    await app.start()
    return Harness(app)


async def kv(app: BotApp, key: str) -> object:
    async with app.db.read() as s:
        row = (await s.execute(select(KeyValue).where(KeyValue.key == key))).scalar_one_or_none()
    return None if row is None else row.value


async def audit_rows(app: BotApp) -> list[tuple[str, str]]:
    async with app.db.read() as s:
        return [(a.command, a.outcome) for a in (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()]


async def test_rest_argument_keeps_newlines(h: Harness) -> None:
    (text,) = await h.admin("/note add 退款 第一行\n第二行\n  第三行")
    assert "已记下 退款" in text
    assert await kv(h.app, "note:退款") == "第一行\n第二行\n  第三行"
    await h.admin('/note add "两个 词" "整段 引号"')
    assert await kv(h.app, "note:两个 词") == "整段 引号"


async def test_bad_arguments_get_usage_and_change_nothing(h: Harness) -> None:
    (text,) = await h.admin("/note add 只有标题")
    assert "缺少参数 <内容…>" in text and "用法：/note add <标题> <内容…>" in text
    (text,) = await h.admin('/note add "没闭合')
    assert "没有闭合" in text
    assert await kv(h.app, "note:只有标题") is None
    assert ("note add", "usage_error") in await audit_rows(h.app)


async def test_unknown_command_and_unknown_subcommand(h: Harness) -> None:
    (text,) = await h.say_texts("/nosuch thing")
    assert "没有 /nosuch 这个命令" in text and "/help" in text
    (text,) = await h.admin("/note frobnicate")
    assert "没有子命令 frobnicate" in text and "add、crash、here、wipe" in text and "记一条笔记" not in text
    (text,) = await h.say_texts("／whoami")  # full-width slash
    assert "Alice" in text


async def test_roles_are_checked_and_denials_audited(h: Harness) -> None:
    (text,) = await h.say_texts("/note add a b")
    assert "需要运营权限" in text
    assert await kv(h.app, "note:a") is None
    (text,) = await h.admin("/role grant @wmAlice operator")
    (text,) = await h.say_texts("/note add a b")
    assert "已记下 a" in text
    assert await audit_rows(h.app) == [("note add", "denied"), ("role grant", "ok"), ("note add", "ok")]


async def test_help_is_generated_from_declarations(h: Harness) -> None:
    (text,) = await h.say_texts("/help")
    assert "/role" not in text  # admin only
    (text,) = await h.say_texts("/help note")  # a member sees only what a member may run
    assert "/note here" in text and "/note add" not in text and "/note wipe" not in text
    (text,) = await h.admin("/help")
    assert "/note … — 笔记（测试用）" in text
    (text,) = await h.admin("/help note")
    assert "/note add <标题> <内容…>" in text and "记一条笔记" in text and "［需确认］" in text


async def test_confirmation_runs_once_and_expires(h: Harness) -> None:
    (prompt,) = await h.admin("/note wipe")
    assert "/confirm" in prompt and await kv(h.app, "wiped") is None
    code = prompt.split("/confirm ")[1][:4]
    (text,) = await h.say_texts(f"/confirm {code}")  # somebody else cannot confirm it
    assert "无效或已过期" in text and await kv(h.app, "wiped") is None
    (text,) = await h.admin(f"/confirm {code}")
    assert text == "已清空" and await kv(h.app, "wiped") is True
    (text,) = await h.admin(f"/confirm {code}")  # a code works once
    assert "无效或已过期" in text
    (prompt,) = await h.admin("/note wipe")
    code = prompt.split("/confirm ")[1][:4]
    h.app.clock.advance(h.app.config.bot.confirm_ttl_s + 1)  # type: ignore[attr-defined]
    (text,) = await h.admin(f"/confirm {code}")
    assert "无效或已过期" in text
    assert [o for c, o in await audit_rows(h.app) if c == "note wipe"] == [
        "awaiting_confirmation", "ok", "awaiting_confirmation"]


async def test_a_failing_command_changes_nothing_tells_its_author_and_is_audited(h: Harness) -> None:
    sent = await h.say("/note crash", sender="admin01", name="管理员", staff=True, chat="g9")
    assert [(d.kind, d.chat_id) for d in sent] == [("reply", "g9")]
    assert "/note crash 没有执行成功，什么都没有改变" in sent[0].text
    assert await kv(h.app, "half-done") is None
    assert ("note crash", "error") in await audit_rows(h.app)


async def test_a_confirmation_code_works_only_in_the_chat_it_was_given_in(h: Harness) -> None:
    (prompt,) = await h.admin("/note wipe", chat="g1")
    code = prompt.split("/confirm ")[1][:4]
    (text,) = await h.admin(f"/confirm {code}", group=False)  # the same person, 1:1
    assert "无效或已过期" in text and await kv(h.app, "wiped") is None
    (text,) = await h.admin(f"/confirm {code}", chat="g2")
    assert "无效或已过期" in text and await kv(h.app, "wiped") is None
    (text,) = await h.admin(f"/confirm {code}", chat="g1")
    assert text == "已清空" and await kv(h.app, "wiped") is True


async def test_where_a_command_may_run(h: Harness) -> None:
    (text,) = await h.say_texts("/note here")
    assert "只能在私聊中使用" in text
    (text,) = await h.say_texts("/note here", group=False)
    assert text == "ok"


async def test_commands_after_a_mention_of_the_bot(h: Harness) -> None:
    (text,) = await h.say_texts("@小域 /whoami")
    assert "Alice" in text


async def test_role_grant_list_revoke_round_trip(h: Harness) -> None:
    (text,) = await h.admin("/role grant @wmAlice reviewer")
    assert "已授予 wmAlice 合规审核角色" in text
    (text,) = await h.admin("/role grant @wmAlice reviewer")
    assert "无需重复授予" in text
    (text,) = await h.admin("/role list")
    assert "admin01：管理员（配置文件）" in text and "wmAlice：合规审核（由 admin01 授予）" in text
    (text,) = await h.admin("/role list operator")
    assert "wmAlice" not in text
    (text,) = await h.say_texts("/role list")  # members may not look
    assert "需要管理员权限" in text
    (text,) = await h.admin("/role grant @wmAlice boss")
    assert "只能是" in text and "用法：/role grant" in text
    (text,) = await h.admin("/role revoke @wmAlice reviewer")
    assert "已撤销 wmAlice 的合规审核角色" in text
    (text,) = await h.admin("/role revoke @wmAlice reviewer")
    assert "没有合规审核角色" in text
    async with h.app.db.read() as s:
        assert await h.app.roles.of(s, "wmAlice") == frozenset()
    assert [a for a in await audit_rows(h.app) if a[0].startswith("role")] == [
        ("role grant", "ok"), ("role grant", "ok"), ("role list", "ok"), ("role list", "ok"),
        ("role list", "denied"), ("role grant", "usage_error"), ("role revoke", "ok"), ("role revoke", "ok")]


async def test_a_typo_gets_did_you_mean_and_one_line_of_usage(h: Harness) -> None:
    (text,) = await h.admin("/note ad 标题 内容")
    assert text.startswith("❓ /note 没有子命令 ad。是不是想用：")
    assert "/note add <标题> <内容…> — 记一条笔记" in text and "清空笔记" not in text  # one line, not the help
    (text,) = await h.admin("/hlep")
    assert "没有 /hlep 这个命令。是不是想用：" in text and "/help [命令]" in text
    (text,) = await h.admin("/nots add x y")
    assert "是不是想用：" in text and "/note …" in text
    (text,) = await h.say_texts("/note ad x y")  # members are not offered commands they may not run
    assert "/note add" not in text


async def test_chinese_aliases(h: Harness) -> None:
    (text,) = await h.say_texts("/帮助")
    assert "可用命令" in text
    (text,) = await h.say_texts("/我是谁")
    assert "Alice" in text


async def test_a_private_answer_typed_in_a_group_goes_to_the_author_alone(h: Harness) -> None:
    sent = await h.say("/status", sender="admin01", name="管理员", staff=True, chat="g1")
    assert sorted((d.kind, d.chat_id) for d in sent) == [("app_message", ""), ("reply", "g1")]
    private = next(d for d in sent if d.kind == "app_message")
    notice = next(d for d in sent if d.kind == "reply")
    assert "发件箱" in private.text and private.destination["to"] == ["admin01"]
    assert notice.text == "已私信回复你～"
    sent = await h.say("/status", sender="admin01", name="管理员", staff=True, group=False)
    assert [d.kind for d in sent] == ["reply"] and "发件箱" in sent[0].text


async def test_a_staff_group_may_see_private_answers(make_bot: Callable[..., BotApp],
                                                     make_config: Callable[..., Any]) -> None:
    app = make_bot(cfg=make_config(BOT__STAFF_GROUPS='["ops"]'), features=[feature("admin")])
    await app.start()
    sent = await Harness(app).say("/status", sender="admin01", staff=True, chat="ops")
    assert [(d.kind, d.chat_id) for d in sent] == [("reply", "ops")] and "发件箱" in sent[0].text
