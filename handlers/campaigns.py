"""Campaigns: segment sends (/send, /sends) and channel codes (/channel add, /channel list).

Every handler calls a service of bot.campaigns (``CAMPAIGNS`` for sends, ``CHANNELS`` for channel codes);
the feature is assembled in :func:`bot.campaigns.feature.install`.
"""

from __future__ import annotations

from bot.campaigns import CAMPAIGNS, CHANNELS
from bot.commands import Arg
from bot.context import Context
from bot.events import ContactAdded, MessageEvent
from bot.roles import OPERATOR
from bot.routing import Router

router = Router("campaigns")
router.describe("channel", "渠道活码：新建、查看各渠道添加的客户数（运营）")
for alias, path in (("群发", "send"), ("群发记录", "sends"), ("send status", "sends"), ("渠道", "channel"),
                    ("渠道 新增", "channel add"), ("渠道 列表", "channel list")):
    router.alias(alias, path)

SEND_EXAMPLES = ["/send tier:vip 新品白茶到了，老朋友优先预订～", "/send tag:白茶爱好者 今晚 8 点直播品鉴白牡丹",
                 "/send group:禾屿茶友会 周末茶会报名开始啦"]


async def send_preview(event: MessageEvent, ctx: Context) -> str | None:
    return await ctx.get(CAMPAIGNS).preview(ctx, ctx.args["segment"], ctx.args["text"])


@router.command("send", Arg("segment", "tier:等级|tag:标签|group:群名"), Arg("text", "文案", rest=True),
                roles=[OPERATOR], private=True, confirm=True, preview=send_preview,
                help="按人群群发：先预览人数与经手员工，/confirm 后每位员工一条群发任务（每位客户每天一条）",
                examples=SEND_EXAMPLES)
async def send(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(CAMPAIGNS).send(ctx, event.sender.id, ctx.args["segment"], ctx.args["text"])


@router.command("sends", roles=[OPERATOR], private=True, help="最近的群发：人数，已发送、失败、未发送（员工未确认）")
async def sends(event: MessageEvent, ctx: Context) -> None:
    await ctx.reply(await ctx.get(CAMPAIGNS).status(ctx.session))


@router.command("channel add", Arg("name", "渠道名"), Arg("staff", "员工", rest=True, optional=True, default=""),
                roles=[OPERATOR], private=True,
                help="新建渠道活码（二维码）：通过它添加的客户记下渠道、打上渠道名标签；不写员工则由你接待",
                examples=["/channel add 抖音直播", "/channel add 线下门店 zhangsan lisi"])
async def channel_add(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(CHANNELS).add(ctx, event.sender.id, ctx.args["name"], ctx.args["staff"] or "")


@router.command("channel list", roles=[OPERATOR], private=True, help="列出渠道活码及各渠道添加的客户数")
async def channel_list(event: MessageEvent, ctx: Context) -> None:
    await ctx.reply(await ctx.get(CHANNELS).listing(ctx.session))


@router.on(ContactAdded, priority=31)
async def on_contact(event: ContactAdded, ctx: Context) -> None:
    await ctx.get(CHANNELS).contact_added(ctx.session, event)
