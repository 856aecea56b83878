"""The web console in chat: an admin issues a one-time sign-in link, or signs someone out everywhere."""

from __future__ import annotations

from bot.access import ACCESS
from bot.access.service import AccessDenied
from bot.commands import Arg
from bot.context import Context
from bot.events import MessageEvent
from bot.roles import ADMIN
from bot.routing import Router

router = Router("access")
router.describe("console", "网页控制台：生成一次性登录链接、强制下线（管理员）")


@router.command("console invite", Arg("user", "成员", type="mention"), roles=[ADMIN], where="single",
                help="为有角色的同事生成一次性控制台登录链接（只在私聊里发）", examples=["/console invite @zhangsan"])
async def console_invite(event: MessageEvent, ctx: Context) -> None:
    access = ctx.get(ACCESS)
    try:
        token = await access.invite(ctx.session, ctx.args["user"], by=event.sender.id)
    except AccessDenied as exc:
        await ctx.reply(ctx.render("access/refused.j2", reason=exc.reason))
        return
    base = f"http://{ctx.config.server.host}:{ctx.config.server.port}"
    await ctx.reply(ctx.render("access/invite.j2", user=ctx.args["user"], link=access.link(token, base),
                               minutes=ctx.config.console.invite_minutes))


@router.command("console signout", Arg("user", "成员", type="mention"), roles=[ADMIN], private=True,
                help="让某人在所有浏览器上退出控制台", examples=["/console signout @zhangsan"])
async def console_signout(event: MessageEvent, ctx: Context) -> None:
    n = await ctx.get(ACCESS).sign_out_everywhere(ctx.session, ctx.args["user"])
    await ctx.reply(ctx.render("access/signed_out.j2", user=ctx.args["user"], count=n))
