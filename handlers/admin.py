"""Admin and framework commands: /help, /whoami, /role, /confirm, /status."""

from __future__ import annotations

import re

from bot.command_stage import confirm
from bot.commands import Arg, CommandRegistry
from bot.context import Context
from bot.events import MessageEvent
from bot.roles import ADMIN, OPERATOR, REVIEWER
from bot.routing import Router

ROLE_NAMES = {ADMIN: "管理员", OPERATOR: "运营", REVIEWER: "合规审核"}

router = Router("admin")
router.describe("role", "角色管理：授予、撤销、查看运营和合规审核员（管理员）")
for alias, path in (("帮助", "help"), ("我是谁", "whoami"), ("确认", "confirm"), ("状态", "status"),
                    ("角色", "role")):
    router.alias(alias, path)


@router.command("help", Arg("command", "命令", optional=True), help="查看可用命令；/help kb 查看某个命令的详细用法")
async def help_(event: MessageEvent, ctx: Context) -> None:
    registry: CommandRegistry = ctx.app.commands
    wanted = (ctx.args["command"] or "").lstrip("/／").lower()
    if wanted:
        specs = [s for s in registry.subcommands(wanted) if s.allowed(ctx.roles)]
        if not specs:
            await ctx.reply(ctx.render("core/unknown_command.j2", name=wanted))
            return
        await ctx.reply(ctx.render("core/help_command.j2", top=wanted, specs=specs,
                                   about=registry.group_help.get(wanted, ""), problem=""))
        return
    lines = []
    for top in registry.top_level():
        subs = [s for s in registry.subcommands(top) if s.allowed(ctx.roles)]
        if not subs:
            continue
        if len(subs) == 1 and len(subs[0].path) == 1:  # its help up to the first （ or ；: /help 命令 says the rest
            lines.append({"usage": subs[0].usage, "help": re.split("[（；]", subs[0].help, maxsplit=1)[0]})
        else:
            about = registry.group_help.get(top) or "、".join(s.path[-1] for s in subs)
            lines.append({"usage": f"/{top} …", "help": about})
    roles = [ROLE_NAMES[r] for r in sorted(ctx.roles) if r in ROLE_NAMES]
    await ctx.reply(ctx.render("core/help.j2", lines=lines, roles=roles, example="kb"))


@router.command("whoami", help="查看我的 ID 与权限")
async def whoami(event: MessageEvent, ctx: Context) -> None:
    roles = [ROLE_NAMES[r] for r in sorted(ctx.roles) if r in ROLE_NAMES] or ["成员"]
    await ctx.reply(ctx.render("admin/whoami.j2", user=event.sender, roles=roles, chat=event.chat))


@router.command("role grant", Arg("user", "成员", type="mention"),
                Arg("role", type="choice", choices=(OPERATOR, REVIEWER)),
                roles=[ADMIN], private=True, help="授予运营（operator）或合规审核（reviewer）角色",
                examples=["/role grant @zhangsan operator"])
async def role_grant(event: MessageEvent, ctx: Context) -> None:
    new = await ctx.app.roles.grant(ctx.session, ctx.args["user"], ctx.args["role"], event.sender.id)
    await ctx.reply(ctx.render("admin/role_changed.j2", action="grant", changed=new, user=ctx.args["user"],
                               role=ROLE_NAMES[ctx.args["role"]]))


@router.command("role revoke", Arg("user", "成员", type="mention"),
                Arg("role", type="choice", choices=(OPERATOR, REVIEWER)),
                roles=[ADMIN], private=True, help="撤销运营或合规审核角色")
async def role_revoke(event: MessageEvent, ctx: Context) -> None:
    gone = await ctx.app.roles.revoke(ctx.session, ctx.args["user"], ctx.args["role"])
    await ctx.reply(ctx.render("admin/role_changed.j2", action="revoke", changed=gone, user=ctx.args["user"],
                               role=ROLE_NAMES[ctx.args["role"]]))


@router.command("role list", Arg("role", type="choice", choices=(ADMIN, OPERATOR, REVIEWER), optional=True),
                roles=[ADMIN], private=True, help="列出拥有角色的成员（管理员来自配置文件）")
async def role_list(event: MessageEvent, ctx: Context) -> None:
    holders = await ctx.app.roles.holders(ctx.session, ctx.args["role"])
    await ctx.reply(ctx.render("admin/role_list.j2", holders=holders, names=ROLE_NAMES))


@router.command("confirm", Arg("code", "确认码"), help="确认执行一条需要确认的命令")
async def confirm_(event: MessageEvent, ctx: Context) -> None:
    if not await confirm(ctx, event, ctx.args["code"]):
        await ctx.reply(ctx.render("core/confirm_invalid.j2", code=ctx.args["code"]))


@router.command("status", roles=[OPERATOR, REVIEWER], private=True,
                help="查看机器人运行状态：收件箱、发件箱、定时任务")
async def status(event: MessageEvent, ctx: Context) -> None:
    await ctx.app.refresh_gauges()
    outbox = await ctx.app.outbox.counts()
    jobs = ctx.app.scheduler.jobs()
    await ctx.reply(ctx.render("admin/status.j2", replica=ctx.app.replica, db=ctx.app.db.dialect,
                               sender=type(ctx.app.sender).__name__, outbox=outbox, jobs=jobs))

