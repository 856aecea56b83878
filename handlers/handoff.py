"""Human handoff (转人工) in chat: customers asking for a person, staff's /handoff commands.

A customer's message — 1:1, or in a group even without an @-mention — that asks
for a person or sounds angry opens a handoff (priority 40: after the commands,
before the knowledge base). While the member's handoff is live, their messages
are kept with it and the event stops here, so the bot does not answer them.
Staff messages never open one. The rules live in
:class:`bot.handoff.service.HandoffService`, which the web console calls too.
"""

from __future__ import annotations

from bot.commands import Arg, CommandError
from bot.context import Context
from bot.events import MessageEvent
from bot.handoff import HANDOFF
from bot.handoff.service import HandoffError
from bot.roles import OPERATOR
from bot.routing import Predicate, Router, command_text, from_customer

is_plain_text = Predicate(lambda e: isinstance(e, MessageEvent) and bool(e.text.strip())
                          and command_text(e.text) is None, "is_plain_text")

router = Router("handoff")
router.describe("handoff", "转人工：查看等待的客户、接手、结束（运营）")
for alias, path in (("转人工 列表", "handoff list"), ("转人工 接手", "handoff take"),
                    ("转人工 结束", "handoff close"), ("转人工 关闭", "handoff close")):
    router.alias(alias, path)

ID = Arg("id", "编号", type="int", min=1)


@router.message(from_customer & is_plain_text, priority=40)
async def hand_over(event: MessageEvent, ctx: Context) -> None:
    if await ctx.get(HANDOFF).on_message(ctx, event):
        ctx.stop()  # the member is with a person: the knowledge base stays out of it


@router.command("handoff list", roles=[OPERATOR], private=True, help="查看正在等待人工或处理中的客户和等待时间",
                examples=["/handoff list", "/转人工 列表"])
async def handoff_list(event: MessageEvent, ctx: Context) -> None:
    items, total = await ctx.get(HANDOFF).list_open(ctx.session)
    await ctx.reply(ctx.render("handoff/list.j2", items=items, total=total))


@router.command("handoff take", ID, roles=[OPERATOR], private=True,
                help="接手一位客户（客户会收到有人接手的消息）", examples=["/handoff take 12", "/转人工 接手 12"])
async def handoff_take(event: MessageEvent, ctx: Context) -> None:
    try:
        h, before = await ctx.get(HANDOFF).take(ctx, ctx.args["id"], event.sender.id, event.sender.name)
    except HandoffError as exc:
        raise CommandError(exc.text) from None
    await ctx.reply(ctx.render("handoff/taken.j2", h=h, before=before if before != event.sender.id else ""))


@router.command("handoff close", ID, roles=[OPERATOR], private=True,
                help="结束人工服务，把客户交还机器人（客户会收到通知）",
                examples=["/handoff close 12", "/转人工 结束 12"])
async def handoff_close(event: MessageEvent, ctx: Context) -> None:
    try:
        h = await ctx.get(HANDOFF).close(ctx, ctx.args["id"], event.sender.id)
    except HandoffError as exc:
        raise CommandError(exc.text) from None
    await ctx.reply(ctx.render("handoff/closed.j2", h=h))
