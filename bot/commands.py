"""Slash commands: ``/cmd sub args`` declared with typed arguments (the declarations and parsing).

A command declares its arguments, the roles that may run it, where it may run
(group / single / any), whether it needs a confirmation, and one line of help;
usage and ``/help`` are generated from that. Parsing understands quotes
("…", '…', “…”, 「…」) and a trailing ``rest`` argument that keeps the raw text,
newlines included (for multi-line answers). Bad arguments get the usage and
change nothing. Running a command (roles, confirmation, audit) is bot.command_stage.

Numbers and dates have bounds, so nothing typed can overflow what stores or
computes them: an ``int`` has at most 15 digits, a ``float`` is written in plain
decimals (no ``nan``, ``inf`` or exponent) with at most 15 digits before the point
and ``decimals`` after it, and dates and times lie in the years 2000–2100.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from bot.roles import ADMIN

if TYPE_CHECKING:
    from bot.routing import Router

HandlerFn = Callable[..., Awaitable[None]]

# Bounds of typed numbers and dates (documented in docs/commands.md).
NUMBER_DIGITS = 15          # digits before the decimal point
YEARS = (2000, 2100)        # dates and times in command arguments
_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.(\d*))?|\.(\d+))")

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
    decimals: int | None = None  # float: at most this many digits after the point

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
        value: Any
        if self.type == "int":
            value = _integer(raw, what)
        elif self.type == "float":
            value = self._decimal(raw, what)
        elif self.type == "mention":
            value = raw[1:] if raw.startswith(("@", "＠")) else raw
            if not value:
                raise CommandError(f"{what} 应是 @成员 或成员 ID")
        elif self.type == "choice":
            if raw.lower() not in self.choices:
                raise CommandError(f"{what} 只能是 {' / '.join(self.choices)}，收到 {_shown(raw)}")
            value = raw.lower()
        elif self.type == "date":
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                raise CommandError(f"{what} 应是日期 YYYY-MM-DD，收到 {_shown(raw)}") from None
            check_year(value.year, what)
        elif self.type == "time":
            m = re.fullmatch(r"(\d{1,2})[:：](\d{2})", raw)
            if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                raise CommandError(f"{what} 应是时间 HH:MM，收到 {_shown(raw)}")
            value = time(int(m.group(1)), int(m.group(2)))
        else:
            value = raw
        if self.type in ("int", "float"):
            if self.min is not None and value < self.min:
                raise CommandError(f"{what} 不能小于 {_number(self.min)}")
            if self.max is not None and value > self.max:
                raise CommandError(f"{what} 不能大于 {_number(self.max)}")
        return value

    def _decimal(self, raw: str, what: str) -> float:
        m = _DECIMAL.fullmatch(raw)
        if not m:
            raise CommandError(f"{what} 应是普通写法的数字（如 268 或 19.9），收到 {_shown(raw)}")
        whole = raw.lstrip("+-").split(".")[0]
        if len(whole.lstrip("0")) > NUMBER_DIGITS:
            raise CommandError(f"{what} 太大了（整数部分最多 {NUMBER_DIGITS} 位）")
        places = m.group(1) or m.group(2) or ""
        if self.decimals is not None and len(places.rstrip("0")) > self.decimals:
            raise CommandError(f"{what} 最多 {self.decimals} 位小数，收到 {_shown(raw)}")
        return float(raw)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def _shown(raw: str, limit: int = 40) -> str:
    """What the user typed, quoted and cut for a reply."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


def _integer(raw: str, what: str) -> int:
    if not _INT.fullmatch(raw):
        raise CommandError(f"{what} 应是整数，收到 {_shown(raw)}")
    if len(raw.lstrip("+-").lstrip("0")) > NUMBER_DIGITS:
        raise CommandError(f"{what} 太大了（最多 {NUMBER_DIGITS} 位）")
    return int(raw)


def check_year(year: int, what: str = "日期") -> None:
    """Refuse a date outside :data:`YEARS` (nothing the bot plans lies beyond them)."""
    if not YEARS[0] <= year <= YEARS[1]:
        raise CommandError(f"{what} 的年份应在 {YEARS[0]}–{YEARS[1]} 之间，收到 {year}")


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
    private: bool = False  # its answer holds staff, customer or compliance data: answered 1:1 when typed in a group
    preview: HandlerFn | None = None  # confirm=True: what will happen, shown with the code (None back: refused)
    # Reads that take long (a report): called with (event, app, args) before the handler's transaction opens,
    # for an author who may run the command; the result is ``ctx.prepared`` (None: the handler does it itself).
    prepare: Callable[[Any, Any, Args], Awaitable[Any]] | None = None

    @classmethod
    def declare(cls, path: str, fn: HandlerFn, args: list[Any], *, router: str, help: str = "",
                roles: Iterable[str] = (), where: str = "any", confirm: bool = False,
                audit: bool | None = None, examples: Sequence[str] = (), private: bool = False,
                preview: HandlerFn | None = None,
                prepare: Callable[[Any, Any, Args], Awaitable[Any]] | None = None) -> CommandSpec:
        parts = tuple(p.lower() for p in path.split())
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"command path {path!r} must be 'cmd' or 'cmd sub'")
        if where not in ("any", "group", "single"):
            raise ValueError("where must be any, group or single")
        for a in args:
            if not isinstance(a, Arg):
                raise TypeError(f"{path}: arguments are declared with Arg(...), got {a!r}")
        if preview is not None and not confirm:
            raise ValueError(f"{path}: a preview is shown with the confirmation code; it needs confirm=True")
        if prepare is not None and confirm:
            raise ValueError(f"{path}: a confirmed command runs later; it cannot prepare before its transaction")
        if any(a.rest for a in args[:-1]):
            raise ValueError(f"{path}: only the last argument may take the rest of the text")
        return cls(path=parts, fn=fn, args=list(args), router=router, help=help, roles=frozenset(roles),
                   where=where, confirm=confirm, audit=audit, examples=list(examples), private=private,
                   preview=preview, prepare=prepare)

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
        self.aliases: dict[tuple[str, ...], tuple[str, ...]] = {}
        for r in routers:
            self.group_help.update(r.command_help)
            for spec in r.commands:
                if spec.path in self.specs:
                    raise ValueError(f"command /{spec.name} declared twice ({self.specs[spec.path].router}, "
                                     f"{spec.router})")
                self.specs[spec.path] = spec
            for alias, path in r.command_aliases.items():
                if alias in self.aliases and self.aliases[alias] != path:
                    raise ValueError(f"alias /{' '.join(alias)} declared twice")
                self.aliases[alias] = path
        for path in self.specs:
            if len(path) == 2 and (path[0],) in self.specs and self.specs[(path[0],)].args:
                raise ValueError(f"/{path[0]} takes arguments and also has subcommands")
        for alias, path in self.aliases.items():
            if path not in self.specs and not any(p[0] == path[0] for p in self.specs):
                raise ValueError(f"alias /{' '.join(alias)} names /{' '.join(path)}, which is not a command")

    def top_level(self) -> list[str]:
        return sorted({p[0] for p in self.specs})

    def subcommands(self, top: str) -> list[CommandSpec]:
        top = self.aliases.get((top,), (top,))[0]
        return [s for p, s in sorted(self.specs.items()) if p[0] == top]

    def resolve(self, tokens: list[Token]) -> tuple[CommandSpec | None, int, str]:
        """(spec, tokens consumed, top-level name) for the typed command; Chinese aliases (/帮助) included."""
        if not tokens:
            return None, 0, ""
        words = [t.text.lower() for t in tokens[:2]]
        if len(words) == 2 and tuple(words) in self.aliases:
            path = self.aliases[tuple(words)]
            return self.specs.get(path), 2, path[0]
        first = self.aliases.get((words[0],), (words[0],))
        top = first[0]
        if len(first) == 2:
            return self.specs.get(first), 1, top
        if len(words) == 2:
            sub = self.aliases.get((top, words[1]), (top, words[1]))
            if sub in self.specs:
                return self.specs[sub], 2, top
        return self.specs.get((top,)), 1, top

    def visible(self, roles: frozenset[str]) -> list[CommandSpec]:
        return [s for _, s in sorted(self.specs.items()) if s.allowed(roles)]

    def suggest(self, typed: str, roles: frozenset[str], top: str | None = None) -> CommandSpec | None:
        """The command a typo most likely meant ("/kb ad" → /kb add, "/hlep" → /help), among those ``roles``
        may run; None when nothing is close."""
        import difflib  # only when somebody mistyped

        specs = [s for s in self.visible(roles) if top is None or s.path[0] == top]
        names = {(s.path[-1] if top is not None and len(s.path) == 2 else s.path[0]): s for s in specs}
        close = difflib.get_close_matches(typed.lower(), list(names), n=1, cutoff=0.6)
        if not close:
            return None
        found = names[close[0]]
        if top is None and len(found.path) == 2:  # a top-level typo of a command with subcommands
            return next((s for s in specs if s.path == (found.path[0],)), found)
        return found


def strip_bot_mention(text: str, bot_names: Iterable[str]) -> str:
    """The text without a leading "@<bot name>" (ASCII or full-width @)."""
    t = text.lstrip()
    for name in bot_names:
        for prefix in (f"@{name}", f"＠{name}"):
            if name and t.startswith(prefix):
                return t[len(prefix):].lstrip()
    return t


def parse_when(value: str, tz: Any) -> datetime:
    """Parse "2026-11-23 10:00" (or ISO) as local time in ``tz``; for command and CLI arguments."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("T", " "))
    except ValueError:
        raise CommandError(f"时间格式应为 YYYY-MM-DD HH:MM，收到 {_shown(value)}") from None
    check_year(dt.year, "时间")
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt
