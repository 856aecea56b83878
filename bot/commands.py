"""Slash commands: ``/cmd sub args`` declared with typed arguments.

A command declares its arguments, the roles that may run it, where it may run
(group / single / any), whether it needs a confirmation, and one line of help;
usage and ``/help`` are generated from that. Parsing understands quotes
("…", '…', “…”, 「…」) and a trailing ``rest`` argument that keeps the raw text,
newlines included (for multi-line answers). Bad arguments get the usage and
change nothing. Privileged commands leave an audit row, whatever the outcome.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from bot.dispatcher import ADMIN, Context, HandlerFn, Router, command_text, is_command_text
from bot.events import MessageEvent
from bot.storage.models import AuditLog, PendingConfirmation

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.commands")

QUOTES = {'"': '"', "'": "'", "“": "”", "「": "」", "‘": "’", "『": "』"}
WHITESPACE = " \t\r\n\u3000"


class CommandError(Exception):
    """A problem with how a command was typed; the user gets ``message`` and the usage."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int
    quoted: bool = False


def tokenize(s: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(s)
    while i < n:
        if s[i] in WHITESPACE:
            i += 1
            continue
        start = i
        if s[i] in QUOTES:
            close = QUOTES[s[i]]
            j = s.find(close, i + 1)
            if j < 0:
                raise CommandError(f"引号 {s[i]} 没有闭合")
            tokens.append(Token(s[i + 1 : j], start, j + 1, quoted=True))
            i = j + 1
            continue
        while i < n and s[i] not in WHITESPACE:
            i += 1
        tokens.append(Token(s[start:i], start, i))
    return tokens


@dataclass(frozen=True, slots=True)
class Arg:
    """One declared argument. ``label`` is what users see in the usage (Chinese first)."""

    name: str
    label: str = ""
    type: str = "str"  # str | int | float | mention | choice | date | time
    optional: bool = False
    rest: bool = False  # takes the remaining raw text, newlines included
    choices: tuple[str, ...] = ()
    default: Any = None
    min: float | None = None
    max: float | None = None

    @property
    def shown(self) -> str:
        if self.type == "choice" and self.choices:
            inner = "|".join(self.choices)
        else:
            inner = self.label or self.name
            if self.type == "mention":
                inner = "@" + inner
        if self.rest:
            inner += "…"
        return f"[{inner}]" if self.optional else f"<{inner}>"

    def convert(self, raw: str) -> Any:
        what = self.label or self.name
        if self.type == "int":
            if not re.fullmatch(r"[+-]?\d+", raw):
                raise CommandError(f"{what} 应是整数，收到 {raw!r}")
            value: Any = int(raw)
        elif self.type == "float":
            try:
                value = float(raw)
            except ValueError:
                raise CommandError(f"{what} 应是数字，收到 {raw!r}") from None
        elif self.type == "mention":
            value = raw[1:] if raw.startswith(("@", "＠")) else raw
            if not value:
                raise CommandError(f"{what} 应是 @成员 或成员 ID")
        elif self.type == "choice":
            if raw.lower() not in self.choices:
                raise CommandError(f"{what} 只能是 {' / '.join(self.choices)}，收到 {raw!r}")
            value = raw.lower()
        elif self.type == "date":
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                raise CommandError(f"{what} 应是日期 YYYY-MM-DD，收到 {raw!r}") from None
        elif self.type == "time":
            m = re.fullmatch(r"(\d{1,2})[:：](\d{2})", raw)
            if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                raise CommandError(f"{what} 应是时间 HH:MM，收到 {raw!r}")
            value = time(int(m.group(1)), int(m.group(2)))
        else:
            value = raw
        if self.type in ("int", "float"):
            if self.min is not None and value < self.min:
                raise CommandError(f"{what} 不能小于 {self.min:g}")
            if self.max is not None and value > self.max:
                raise CommandError(f"{what} 不能大于 {self.max:g}")
        return value


class Args(dict[str, Any]):
    """Parsed arguments by name; missing optional ones hold their default."""


@dataclass(slots=True)
class CommandSpec:
    path: tuple[str, ...]
    fn: HandlerFn
    args: list[Arg]
    router: str
    help: str = ""
    roles: frozenset[str] = frozenset()
    where: str = "any"  # any | group | single
    confirm: bool = False
    audit: bool | None = None
    examples: list[str] = field(default_factory=list)

    @classmethod
    def declare(cls, path: str, fn: HandlerFn, args: list[Any], *, router: str, help: str = "",
                roles: Iterable[str] = (), where: str = "any", confirm: bool = False,
                audit: bool | None = None, examples: Sequence[str] = ()) -> CommandSpec:
        parts = tuple(p.lower() for p in path.split())
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"command path {path!r} must be 'cmd' or 'cmd sub'")
        if where not in ("any", "group", "single"):
            raise ValueError("where must be any, group or single")
        for a in args:
            if not isinstance(a, Arg):
                raise TypeError(f"{path}: arguments are declared with Arg(...), got {a!r}")
        if any(a.rest for a in args[:-1]):
            raise ValueError(f"{path}: only the last argument may take the rest of the text")
        return cls(path=parts, fn=fn, args=list(args), router=router, help=help, roles=frozenset(roles),
                   where=where, confirm=confirm, audit=audit, examples=list(examples))

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def usage(self) -> str:
        return " ".join(["/" + self.name, *(a.shown for a in self.args)])

    @property
    def audited(self) -> bool:
        return bool(self.roles) if self.audit is None else self.audit

    def allowed(self, roles: frozenset[str]) -> bool:
        return not self.roles or ADMIN in roles or bool(self.roles & roles)

    def parse(self, body: str, tokens: list[Token]) -> Args:
        out = Args()
        i = 0
        for arg in self.args:
            if arg.rest:
                if i < len(tokens):
                    raw = body[tokens[i].start:].strip()
                    if len(tokens) - i == 1 and tokens[i].quoted:
                        raw = tokens[i].text
                    out[arg.name] = arg.convert(raw)
                    i = len(tokens)
                elif arg.optional:
                    out[arg.name] = arg.default
                else:
                    raise CommandError(f"缺少参数 {arg.shown}")
                continue
            if i < len(tokens):
                out[arg.name] = arg.convert(tokens[i].text)
                i += 1
            elif arg.optional:
                out[arg.name] = arg.default
            else:
                raise CommandError(f"缺少参数 {arg.shown}")
        if i < len(tokens):
            extra = " ".join(t.text for t in tokens[i:])
            raise CommandError(f"多余的参数：{extra}")
        return out


class CommandRegistry:
    def __init__(self, routers: Iterable[Router]) -> None:
        self.specs: dict[tuple[str, ...], CommandSpec] = {}
        self.group_help: dict[str, str] = {}
        for r in routers:
            self.group_help.update(r.command_help)
            for spec in r.commands:
                if spec.path in self.specs:
                    raise ValueError(f"command /{spec.name} declared twice ({self.specs[spec.path].router}, "
                                     f"{spec.router})")
                self.specs[spec.path] = spec
        for path in self.specs:
            if len(path) == 2 and (path[0],) in self.specs and self.specs[(path[0],)].args:
                raise ValueError(f"/{path[0]} takes arguments and also has subcommands")

    def top_level(self) -> list[str]:
        return sorted({p[0] for p in self.specs})

    def subcommands(self, top: str) -> list[CommandSpec]:
        return [s for p, s in sorted(self.specs.items()) if p[0] == top]

    def resolve(self, tokens: list[Token]) -> tuple[CommandSpec | None, int, str]:
        """(spec, tokens consumed, top-level name) for the typed command."""
        if not tokens:
            return None, 0, ""
        top = tokens[0].text.lower()
        if len(tokens) > 1 and (top, tokens[1].text.lower()) in self.specs:
            return self.specs[(top, tokens[1].text.lower())], 2, top
        return self.specs.get((top,)), 1, top

    def visible(self, roles: frozenset[str]) -> list[CommandSpec]:
        return [s for _, s in sorted(self.specs.items()) if s.allowed(roles)]


def strip_bot_mention(text: str, bot_names: Iterable[str]) -> str:
    """The text without a leading "@<bot name>" (ASCII or full-width @)."""
    t = text.lstrip()
    for name in bot_names:
        for prefix in (f"@{name}", f"＠{name}"):
            if name and t.startswith(prefix):
                return t[len(prefix):].lstrip()
    return t


async def audit(session: Any, app: BotApp, event: MessageEvent, spec_name: str, args: str, outcome: str,
                detail: str = "") -> None:
    session.add(AuditLog(actor=event.sender.id, chat_id=event.chat.id, command=spec_name[:64], args=args[:2000],
                         outcome=outcome, detail=detail[:2000], event_key=event.key[:255], at=app.clock.now()))


def build_router() -> Router:
    """The command stage: runs before the features and blocks them when a command matched."""
    router = Router("commands")

    @router.message(is_command_text, priority=10, block=True)
    async def handle(event: MessageEvent, ctx: Context) -> None:
        await execute(ctx, event, command_text(event.text) or "")

    return router


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
        subs = registry.subcommands(top) if top else []
        visible = [s for s in subs if s.allowed(ctx.roles)]
        if visible:
            await ctx.reply(app.templates.render("core/help_command.j2", top=top, specs=visible,
                                                 about=registry.group_help.get(top, ""),
                                                 problem=_unknown_sub(tokens)))
        else:
            await ctx.reply(app.templates.render("core/unknown_command.j2", name=top))
        return
    raw_args = body[tokens[consumed - 1].end:].strip() if consumed else ""
    if not spec.allowed(ctx.roles):
        if spec.audited:
            await audit(ctx.session, app, event, spec.name, raw_args, "denied")
        await ctx.reply(app.templates.render("core/denied.j2", spec=spec))
        return
    if spec.where != "any" and spec.where != event.chat.type:
        await ctx.reply(app.templates.render("core/wrong_place.j2", spec=spec))
        return
    try:
        args = spec.parse(body, tokens[consumed:])
    except CommandError as exc:
        await _usage_error(ctx, event, spec, raw_args, exc)
        return
    if spec.confirm and not confirmed:
        code = await _new_confirmation(ctx, event, body)
        if spec.audited:
            await audit(ctx.session, app, event, spec.name, raw_args, "awaiting_confirmation")
        await ctx.reply(app.templates.render("core/confirm_prompt.j2", spec=spec, code=code, body=body,
                                             ttl=app.config.bot.confirm_ttl_s))
        return
    ctx.args = args
    ctx.confirmed = confirmed
    if spec.audited:
        async def audit_failure() -> None:
            async with app.db.session() as s:
                await audit(s, app, event, spec.name, raw_args, "error", "the command failed; nothing was changed")

        ctx.on_rollback(audit_failure)
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


async def _usage_error(ctx: Context, event: MessageEvent, spec: CommandSpec, raw_args: str, exc: CommandError) -> None:
    if spec.audited:
        await audit(ctx.session, ctx.app, event, spec.name, raw_args, "usage_error", exc.message)
    await ctx.reply(ctx.app.templates.render("core/usage_error.j2", problem=exc.message, usage=spec.usage,
                                             help=spec.help))


def _unknown_sub(tokens: list[Token]) -> str:
    if len(tokens) > 1:
        return f"没有子命令 {tokens[1].text}"
    return ""


async def _new_confirmation(ctx: Context, event: MessageEvent, body: str) -> str:
    now = ctx.now()
    code = f"{secrets.randbelow(10000):04d}"
    ctx.session.add(PendingConfirmation(
        actor=event.sender.id, chat_id=event.chat.id, code=code, command_text=body, created_at=now,
        expires_at=now + timedelta(seconds=ctx.app.config.bot.confirm_ttl_s)))
    await ctx.session.flush()
    return code


async def confirm(ctx: Context, event: MessageEvent, code: str) -> bool:
    """Run the command waiting under ``code`` for this person; False if none is valid."""
    now = ctx.now()
    pc = PendingConfirmation.__table__
    row = (await ctx.session.execute(
        select(pc.c.id, pc.c.command_text).where(and_(
            pc.c.actor == event.sender.id, pc.c.code == code, pc.c.used_at.is_(None), pc.c.expires_at > now))
        .order_by(pc.c.id.desc()).limit(1))).first()
    if row is None:
        return False
    await ctx.session.execute(update(pc).where(pc.c.id == row.id).values(used_at=now))
    await execute(ctx, event, row.command_text, confirmed=True)
    return True


def parse_when(value: str, tz: Any) -> datetime:
    """Parse "2026-11-23 10:00" (or ISO) as local time in ``tz``; for command and CLI arguments."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("T", " "))
    except ValueError:
        raise CommandError(f"时间格式应为 YYYY-MM-DD HH:MM，收到 {value!r}") from None
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt
