"""Routers and predicates: what a feature declares.

One :class:`Router` per feature, created at module level in ``handlers/<feature>.py``;
handlers are plain ``async def h(event, ctx)``. Matching (predicates), authority
(roles) and handling are kept apart. Handlers run in priority order (lower
first); a handler declared ``block=True`` that matched stops the handlers after
it, observers (``block=False``) never do — unless they call ``ctx.stop()`` (a block
decided while handling, e.g. a member handed to a person).

Priorities by convention: 0-9 observers that see every event (moderation),
10 slash commands (blocking), 20-29 interactive follow-ups (a number answering
"did you mean"), 30-39 tiers bookkeeping (observer), 40-49 SOP triggers
(observer), 40 the human handoff (stops the event when it opens or continues one),
50+ the knowledge base's answers (blocking).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.commands import CommandSpec
from bot.events import Event, MessageEvent

if TYPE_CHECKING:
    from bot.context import Context

E = TypeVar("E", bound=Event)
HandlerFn = Callable[[Any, "Context"], Awaitable[None]]
# Work a handler needs that takes no transaction (a scan, matching): run before the handler's transaction
# opens, so a long computation (off the event loop) never holds SQLite's one writer; the result is
# ``ctx.prepared``. Called with (event, app).
PrepareFn = Callable[[Any, Any], Awaitable[Any]]


# ── predicates ─────────────────────────────────────────────────────────────────


class Predicate:
    """A named test on an event; combine with ``&``, ``|`` and ``~``.

    ``with_app=True``: ``fn(event, app)`` — a test that needs the running bot (a feature's
    service in service, e.g. the check-in keywords of the rules file); the dispatcher passes it.
    """

    def __init__(self, fn: Callable[..., bool], name: str, *, with_app: bool = False) -> None:
        self.fn = fn
        self.name = name
        self.with_app = with_app

    def __call__(self, event: Event, app: Any = None) -> bool:
        return bool(self.fn(event, app) if self.with_app else self.fn(event))

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(lambda e, a: self(e, a) and other(e, a), f"({self.name} & {other.name})", with_app=True)

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate(lambda e, a: self(e, a) or other(e, a), f"({self.name} | {other.name})", with_app=True)

    def __invert__(self) -> Predicate:
        return Predicate(lambda e, a: not self(e, a), f"~{self.name}", with_app=True)

    def __repr__(self) -> str:
        return f"<Predicate {self.name}>"


always = Predicate(lambda e: True, "always")
in_group = Predicate(lambda e: getattr(getattr(e, "chat", None), "type", "") == "group", "in_group")
in_single = Predicate(lambda e: getattr(getattr(e, "chat", None), "type", "") == "single", "in_single")
from_staff = Predicate(lambda e: isinstance(e, MessageEvent) and e.sender.staff, "from_staff")
from_customer = Predicate(lambda e: isinstance(e, MessageEvent) and not e.sender.staff, "from_customer")
mentions_bot = Predicate(lambda e: isinstance(e, MessageEvent) and e.mentions_bot, "mentions_bot")


def text_matches(pattern: str | re.Pattern[str]) -> Predicate:
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    return Predicate(lambda e: isinstance(e, MessageEvent) and bool(rx.search(e.text)), f"text~{rx.pattern}")


_LEADING_MENTIONS = re.compile(r"^(?:[@＠]\S+\s+)+")


def command_text(text: str) -> str | None:
    """The text after the slash if ``text`` is a slash command (ASCII or full-width slash).

    Leading @mentions are skipped: "@小域 /help" is the /help command.
    """
    t = _LEADING_MENTIONS.sub("", text.lstrip())
    if t[:1] in ("/", "／") and len(t) > 1 and not t[1].isspace():
        return t[1:]
    return None


is_command_text = Predicate(lambda e: isinstance(e, MessageEvent) and command_text(e.text) is not None,
                            "is_command")


def is_command(name: str) -> Predicate:
    def test(e: Event) -> bool:
        if not isinstance(e, MessageEvent):
            return False
        body = command_text(e.text)
        return body is not None and body.split(maxsplit=1)[0].lower() == name

    return Predicate(test, f"is_command({name})")


# ── handlers and routers ───────────────────────────────────────────────────────


@dataclass(slots=True)
class HandlerSpec:
    name: str
    event_type: type[Event]
    fn: HandlerFn
    predicate: Predicate = always
    priority: int = 50
    block: bool = False
    roles: frozenset[str] = frozenset()
    prepare: PrepareFn | None = None


class Router:
    """A feature's handlers and commands."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[HandlerSpec] = []
        self.commands: list[CommandSpec] = []
        self.command_help: dict[str, str] = {}
        self.command_aliases: dict[tuple[str, ...], tuple[str, ...]] = {}

    def on(self, event_type: type[E], predicate: Predicate | None = None, *, priority: int = 50,
           block: bool = False, roles: Iterable[str] = (),
           prepare: PrepareFn | None = None) -> Callable[[HandlerFn], HandlerFn]:
        """A handler of ``event_type``; ``prepare`` (see PrepareFn) runs first, outside its transaction."""
        def deco(fn: HandlerFn) -> HandlerFn:
            self.handlers.append(HandlerSpec(
                name=f"{self.name}.{fn.__name__}", event_type=event_type, fn=fn, predicate=predicate or always,
                priority=priority, block=block, roles=frozenset(roles), prepare=prepare))
            return fn

        return deco

    def message(self, predicate: Predicate | None = None, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.on(MessageEvent, predicate, **kw)

    def describe(self, command: str, help_text: str) -> None:
        """One line of help for a top-level command that has subcommands."""
        self.command_help[command] = help_text

    def alias(self, alias: str, path: str) -> None:
        """Another name for a command (usually Chinese): ``alias("帮助", "help")``, ``alias("知识库", "kb")``,
        ``alias("知识库 新增", "kb add")``."""
        self.command_aliases[tuple(alias.lower().split())] = tuple(path.lower().split())

    def command(self, path: str, *args: Any, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        """Declare ``/path`` (``"kb add"`` for a subcommand); see bot.commands.CommandSpec."""

        def deco(fn: HandlerFn) -> HandlerFn:
            self.commands.append(CommandSpec.declare(path, fn, list(args), router=self.name, **kw))
            return fn

        return deco
