"""The command stage: runs a typed ``/command`` — roles, place, arguments, confirmation, audit.

It is a router of its own (priority 10, blocking), included before the features:
a slash command never reaches the knowledge base. Privileged commands leave an
audit row, whatever the outcome; destructive ones wait for ``/confirm <code>``,
which works only in the chat where the code was given.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from bot.commands import CommandError, CommandRegistry, CommandSpec, Token, tokenize
from bot.context import Context
from bot.events import MessageEvent
from bot.routing import Router, command_text, is_command_text
from bot.storage.keys import bounded_key
from bot.storage.models import AuditLog, PendingConfirmation

if TYPE_CHECKING:
    from bot.app import BotApp


async def audit(session: Any, app: BotApp, event: MessageEvent, spec_name: str, args: str, outcome: str,
                detail: str = "") -> None:
    session.add(AuditLog(actor=event.sender.id, chat_id=event.chat.id, command=spec_name[:64], args=args[:2000],
                         outcome=outcome, detail=detail[:2000], event_key=bounded_key(event.key, 255),
                         at=app.clock.now()))


def build_router() -> Router:
    """The command stage: runs before the features and blocks them when a command matched."""
    router = Router("commands")

    @router.message(is_command_text, priority=10, block=True, prepare=prepare)
    async def handle(event: MessageEvent, ctx: Context) -> None:
        await execute(ctx, event, command_text(event.text) or "")

    return router


async def prepare(event: MessageEvent, app: BotApp) -> Any:
    """The typed command's own ``prepare`` (CommandSpec.prepare), before the transaction opens: only when
    the author may run it and its arguments parse (else the handler answers as usual, with nothing read)."""
    body = command_text(event.text) or ""
    try:
        tokens = tokenize(body)
    except CommandError:
        return None
    spec, consumed, _top = app.commands.resolve(tokens)
    if spec is None or spec.prepare is None:
        return None
    async with app.db.read() as session:
        roles = await app.dispatcher.roles_of(session, event.sender.id)
    if not spec.allowed(roles) or (spec.where != "any" and spec.where != event.chat.type):
        return None
    try:
        args = spec.parse(body, tokens[consumed:])
    except CommandError:
        return None
    return await spec.prepare(event, app, args)


async def execute(ctx: Context, event: MessageEvent, body: str, *, confirmed: bool = False) -> None:
    app = ctx.app
    registry: CommandRegistry = app.commands
    try:
        tokens = tokenize(body)
    except CommandError as exc:
        await ctx.reply(app.templates.render("core/usage_error.j2", problem=exc.message, usage="", help=""))
        return
    spec, consumed, top = registry.resolve(tokens)
    if spec is None:
        await _unknown(ctx, registry, tokens, top)
        return
    raw_args = body[tokens[consumed - 1].end:].strip() if consumed else ""
    if not spec.allowed(ctx.roles):
        if spec.audited:
            await audit(ctx.session, app, event, spec.name, raw_args, "denied")
        await ctx.reply(app.templates.render("core/denied.j2", spec=spec))  # no data: said where it was typed
        return
    if spec.private and event.chat.is_group and event.chat.id not in app.config.bot.staff_groups:
        # Staff, customer or compliance data: answered 1:1 (usage errors and confirmation codes too),
        # a short neutral notice in the group.
        ctx.private = True
    if spec.where != "any" and spec.where != event.chat.type:
        await ctx.reply(app.templates.render("core/wrong_place.j2", spec=spec))
        return
    try:
        args = spec.parse(body, tokens[consumed:])
    except CommandError as exc:
        await _usage_error(ctx, event, spec, raw_args, exc)
        return
    if spec.confirm and not confirmed:
        await _ask_confirmation(ctx, event, spec, args, body, raw_args)
        return
    ctx.args = args
    ctx.confirmed = confirmed

    async def after_failure() -> None:
        # The handler's transaction is gone: tell the author (and audit) in a fresh one.
        async with app.db.session() as s:
            if spec.audited:
                await audit(s, app, event, spec.name, raw_args, "error", "the command failed; nothing was changed")
            told = Context(app, event, s, ctx.handler, roles=ctx.roles)
            await told.reply(app.templates.render("core/command_failed.j2", spec=spec), key=told.key("failed"))
        told.kick()

    ctx.on_rollback(after_failure)
    try:
        # A handler may refuse arguments only it can judge by raising CommandError: whatever it
        # changed before is rolled back to this savepoint and the user gets the usage.
        async with ctx.session.begin_nested():
            await spec.fn(event, ctx)
    except CommandError as exc:
        await _usage_error(ctx, event, spec, raw_args, exc)
        return
    if spec.audited:
        await audit(ctx.session, app, event, spec.name, raw_args, "ok")


async def _ask_confirmation(ctx: Context, event: MessageEvent, spec: CommandSpec, args: Any, body: str,
                            raw_args: str) -> None:
    """The confirmation code, after the command's preview when it has one (a preview that returns None has
    answered itself — e.g. nothing to do — and no code is given; a CommandError is a usage error)."""
    app = ctx.app
    preview = ""
    if spec.preview is not None:
        ctx.args = args
        try:
            shown = await spec.preview(event, ctx)
        except CommandError as exc:
            await _usage_error(ctx, event, spec, raw_args, exc)
            return
        if shown is None:
            if spec.audited:
                await audit(ctx.session, app, event, spec.name, raw_args, "refused")
            return
        preview = str(shown)
    code = await _new_confirmation(ctx, event, body)
    if spec.audited:
        await audit(ctx.session, app, event, spec.name, raw_args, "awaiting_confirmation")
    await ctx.reply(app.templates.render("core/confirm_prompt.j2", spec=spec, code=code, body=body,
                                         ttl=app.config.bot.confirm_ttl_s, preview=preview))


async def _usage_error(ctx: Context, event: MessageEvent, spec: CommandSpec, raw_args: str, exc: CommandError) -> None:
    if spec.audited:
        await audit(ctx.session, ctx.app, event, spec.name, raw_args, "usage_error", exc.message)
    await ctx.reply(ctx.app.templates.render("core/usage_error.j2", problem=exc.message, usage=spec.usage,
                                             help=spec.help))


async def _unknown(ctx: Context, registry: CommandRegistry, tokens: list[Token], top: str) -> None:
    """A typo: did-you-mean and one line of usage; ``/kb`` alone: the group's help."""
    render = ctx.app.templates.render
    subs = [s for s in registry.subcommands(top) if s.allowed(ctx.roles)] if top else []
    if subs and len(tokens) == 1:
        await ctx.reply(render("core/help_command.j2", top=top, specs=subs, about=registry.group_help.get(top, ""),
                               problem=""))
        return
    if subs:
        sub = tokens[1].text
        await ctx.reply(render("core/unknown_sub.j2", top=top, sub=sub, subs=[s.path[-1] for s in subs],
                               suggestion=registry.suggest(sub, ctx.roles, top=top)))
        return
    suggestion = registry.suggest(top, ctx.roles) if top else None
    group = suggestion is not None and (len(suggestion.path) == 2 or len(registry.subcommands(suggestion.path[0])) > 1)
    await ctx.reply(render("core/unknown_command.j2", name=top, suggestion=suggestion, group=group))


async def _new_confirmation(ctx: Context, event: MessageEvent, body: str) -> str:
    now = ctx.now()
    code = f"{secrets.randbelow(10000):04d}"
    ctx.session.add(PendingConfirmation(
        actor=event.sender.id, chat_id=event.chat.id, code=code, command_text=body, created_at=now,
        expires_at=now + timedelta(seconds=ctx.app.config.bot.confirm_ttl_s)))
    await ctx.session.flush()
    return code


async def confirm(ctx: Context, event: MessageEvent, code: str) -> bool:
    """Run the command waiting under ``code`` for this person in this chat; False if none is valid."""
    now = ctx.now()
    pc = PendingConfirmation.__table__
    row = (await ctx.session.execute(
        select(pc.c.id, pc.c.command_text).where(and_(
            pc.c.actor == event.sender.id, pc.c.chat_id == event.chat.id, pc.c.code == code,
            pc.c.used_at.is_(None), pc.c.expires_at > now))
        .order_by(pc.c.id.desc()).limit(1))).first()
    if row is None:
        return False
    await ctx.session.execute(update(pc).where(pc.c.id == row.id).values(used_at=now))
    await execute(ctx, event, row.command_text, confirmed=True)
    return True


