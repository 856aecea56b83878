"""Routers, predicates and the dispatcher.

One :class:`Router` per feature; handlers are plain ``async def h(event, ctx)``.
Matching (predicates), authority (roles) and handling are kept apart. Handlers
run in priority order (lower first); a handler declared ``block=True`` that
matched stops the handlers after it, observers (``block=False``) never do.

Priorities by convention: 0-9 observers that see every event (moderation),
10 slash commands (blocking), 20-29 interactive follow-ups (a number answering
"did you mean"), 30-39 tiers bookkeeping (observer), 40-49 SOP triggers
(observer), 50+ the knowledge base's answers (blocking).

Each handler runs in its own transaction with a receipt row (event key +
handler name): its state changes, the messages it queues and the receipt
commit together, so a reprocessed event never repeats a handler's effects, and
a failing handler rolls back alone without stopping the others.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from bot.events import Chat, EnteredAgent, Event, MessageEvent
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.models import HandledEvent

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.commands import Args

log = logging.getLogger("siyu.dispatch")

ADMIN = "admin"
OPERATOR = "operator"
REVIEWER = "reviewer"
ROLES = (ADMIN, OPERATOR, REVIEWER)

E = TypeVar("E", bound=Event)
HandlerFn = Callable[[Any, "Context"], Awaitable[None]]


# ── predicates ─────────────────────────────────────────────────────────────────


class Predicate:
    """A named test on an event; combine with ``&``, ``|`` and ``~``."""

    def __init__(self, fn: Callable[[Event], bool], name: str) -> None:
        self.fn = fn
        self.name = name

    def __call__(self, event: Event) -> bool:
        return bool(self.fn(event))

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(lambda e: self(e) and other(e), f"({self.name} & {other.name})")

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate(lambda e: self(e) or other(e), f"({self.name} | {other.name})")

    def __invert__(self) -> Predicate:
        return Predicate(lambda e: not self(e), f"~{self.name}")

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


class Router:
    """A feature's handlers and commands."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[HandlerSpec] = []
        self.commands: list[Any] = []  # bot.commands.CommandSpec
        self.command_help: dict[str, str] = {}

    def on(self, event_type: type[E], predicate: Predicate | None = None, *, priority: int = 50,
           block: bool = False, roles: Iterable[str] = ()) -> Callable[[HandlerFn], HandlerFn]:
        def deco(fn: HandlerFn) -> HandlerFn:
            self.handlers.append(HandlerSpec(
                name=f"{self.name}.{fn.__name__}", event_type=event_type, fn=fn, predicate=predicate or always,
                priority=priority, block=block, roles=frozenset(roles)))
            return fn

        return deco

    def message(self, predicate: Predicate | None = None, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.on(MessageEvent, predicate, **kw)

    def describe(self, command: str, help_text: str) -> None:
        """One line of help for a top-level command that has subcommands."""
        self.command_help[command] = help_text

    def command(self, path: str, *args: Any, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        """Declare ``/path`` (``"kb add"`` for a subcommand); see bot.commands.CommandSpec."""
        from bot.commands import CommandSpec

        def deco(fn: HandlerFn) -> HandlerFn:
            self.commands.append(CommandSpec.declare(path, fn, list(args), router=self.name, **kw))
            return fn

        return deco


# ── the context handed to every handler ────────────────────────────────────────


class Context:
    """What a handler may use: its session, the services, and ways to send and schedule."""

    def __init__(self, app: BotApp, event: Event, session: Any, handler: str, *, roles: frozenset[str],
                 args: Args | None = None, confirmed: bool = False) -> None:
        self.app = app
        self.event = event
        self.session = session
        self.handler = handler
        self.roles = roles
        self.args: Args = args if args is not None else _NO_ARGS
        self.confirmed = confirmed
        self._n = 0
        self.queued = 0
        self.emitted = 0
        self.rollback_hooks: list[Callable[[], Awaitable[None]]] = []
        self.commit_hooks: list[Callable[[], None]] = []

    @property
    def config(self) -> Any:
        return self.app.config

    @property
    def clock(self) -> Any:
        return self.app.clock

    def now(self) -> datetime:
        return self.app.clock.now()

    def has_role(self, *roles: str) -> bool:
        return ADMIN in self.roles or any(r in self.roles for r in roles)

    def key(self, suffix: str | None = None) -> str:
        """An idempotency key derived from the event and this handler."""
        if suffix is None:
            self._n += 1
            suffix = str(self._n)
        return f"{self.event.key}|{self.handler}|{suffix}"[:200]

    def render(self, template: str, /, **values: Any) -> str:
        return self.app.templates.render(template, **values)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once this handler's transaction has committed (e.g. to refresh a cache)."""
        self.commit_hooks.append(hook)

    def on_rollback(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` in a fresh transaction if this handler fails (e.g. to record the failure).

        Never open a second write session inside a handler: on SQLite it waits for the
        handler's own transaction. Use ``ctx.session``, or this hook after the rollback.
        """
        self.rollback_hooks.append(hook)

    def _reply_target(self) -> tuple[Chat | None, list[str], dict[str, Any]]:
        ev = self.event
        if isinstance(ev, MessageEvent):
            return ev.chat, [ev.sender.id], dict(ev.reply)
        if isinstance(ev, EnteredAgent):
            chat = ev.chat or Chat(id=ev.user.id, type="single", name=ev.user.name)
            return chat, [ev.user.id], dict(ev.reply)
        chat = getattr(ev, "chat", None)
        return chat, [], {}

    async def reply(self, text: str, *, msgtype: str = "text", mention: bool = False,
                    key: str | None = None) -> int:
        """Answer in the chat the event came from."""
        chat, to, dest = self._reply_target()
        if chat is None:
            raise RuntimeError(f"{type(self.event).__name__} has no chat to reply to")
        if mention and to:
            dest["mention"] = list(to)
        extra: dict[str, Any] = {}
        if self.event.channel == "aibot" and dest.get("response_url"):
            # The callback may still answer passively; the outbox takes over only after that window.
            wait_ms = self.app.config.aibot.reply_wait_ms
            extra["not_before"] = self.now() + timedelta(milliseconds=wait_ms + 500)
        return await self.send("reply", text=text, chat=chat, to=to, msgtype=msgtype, destination=dest, key=key,
                               **extra)

    async def send(self, kind: str, *, text: str = "", chat: Chat | dict[str, Any] | None = None,
                   to: Iterable[str] = (), key: str | None = None, **kw: Any) -> int:
        """Queue a delivery; it is sent after this handler's transaction commits."""
        n = await self.app.outbox.enqueue(self.session, key=key or self.key(), kind=kind, text=text, chat=chat,
                                          to=list(to), source=self.event.key, **kw)
        self.queued += n
        return n

    async def emit(self, event: Event) -> bool:
        """Raise an internal event (e.g. tier_changed); it is dispatched durably after commit."""
        new = await self.app.inbox_pump.emit(self.session, event)
        self.emitted += int(new)
        return new

    async def schedule(self, key: str, name: str, due_at: datetime, payload: dict[str, Any]) -> bool:
        """Run the registered task ``name`` once at ``due_at`` (see bot.scheduler.Timers)."""
        return await self.app.timers.schedule(self.session, key=key, name=name, due_at=due_at, payload=payload)


class _NoArgs(dict[str, Any]):
    pass


_NO_ARGS: Any = _NoArgs()


# ── the dispatcher ─────────────────────────────────────────────────────────────


@dataclass(slots=True)
class Outcome:
    ran: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retry: bool = False


class TransientError(Exception):
    """Raise from a handler to have the whole event retried later."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | TimeoutError):
        return True
    if isinstance(exc, OperationalError) and "locked" in str(exc).lower():
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return code in ("40001", "40P01", "55P03")
    return False


HANDLED = HandledEvent.__table__


class Dispatcher:
    def __init__(self, app: BotApp) -> None:
        self.app = app
        self.routers: list[Router] = []
        self._specs: list[HandlerSpec] = []
        self.error_hooks: list[Callable[[HandlerSpec, Event, BaseException], Awaitable[None]]] = []
        self.handler_attempts = 3

    def include(self, router: Router) -> None:
        if any(r.name == router.name for r in self.routers):
            raise ValueError(f"router {router.name!r} included twice")
        self.routers.append(router)
        self._specs = sorted((h for r in self.routers for h in r.handlers), key=lambda h: h.priority)

    @property
    def handlers(self) -> list[HandlerSpec]:
        return list(self._specs)

    async def roles_of(self, session: Any, user_id: str) -> frozenset[str]:
        return await self.app.roles.of(session, user_id)

    async def dispatch(self, event: Event) -> Outcome:
        outcome = Outcome()
        for spec in self._specs:
            if not isinstance(event, spec.event_type):
                continue
            try:
                matched = spec.predicate(event)
            except Exception as exc:
                log.exception("predicate of %s failed on %s", spec.name, event.key)
                outcome.errors.append(f"{spec.name}: predicate {exc!r}")
                continue
            if not matched:
                continue
            if spec.roles:
                actor = _actor_id(event)
                async with self.app.db.read() as s:
                    roles = await self.roles_of(s, actor) if actor else frozenset()
                if ADMIN not in roles and not (spec.roles & roles):
                    continue
            await self.run_handler(spec, event, outcome)
            if spec.block:
                break
        return outcome

    async def run_handler(self, spec: HandlerSpec, event: Event, outcome: Outcome) -> None:
        for attempt in range(1, self.handler_attempts + 1):
            ctx: Context | None = None
            try:
                async with self.app.db.session() as session:
                    receipt = insert_ignoring_conflicts(self.app.db.dialect, HANDLED, ["event_key", "handler"])
                    res = await session.execute(receipt.values(
                        event_key=event.key[:255], handler=spec.name, at=self.app.clock.now()
                    ).returning(HANDLED.c.handler))
                    if res.first() is None:
                        return  # this handler already committed its effects for this event
                    actor = _actor_id(event)
                    roles = await self.roles_of(session, actor) if actor else frozenset()
                    ctx = Context(self.app, event, session, spec.name, roles=roles)
                    await asyncio.wait_for(spec.fn(event, ctx), self.app.config.inbox.handler_timeout_s)
                outcome.ran.append(spec.name)
                self._after_commit(ctx)
                return
            except Exception as exc:
                transient = _is_transient(exc)
                if transient and attempt < self.handler_attempts:
                    await asyncio.sleep(0.05 * attempt)
                    continue
                outcome.errors.append(f"{spec.name}: {type(exc).__name__}: {exc}"[:500])
                if transient:
                    outcome.retry = True
                for hook in ctx.rollback_hooks if ctx is not None else ():
                    try:
                        await hook()
                    except Exception:
                        log.exception("rollback hook of %s failed", spec.name)
                await self.on_error(spec, event, exc)
                return

    def _after_commit(self, ctx: Context | None) -> None:
        if ctx is None:
            return
        for hook in ctx.commit_hooks:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook of %s failed", ctx.handler)
        if ctx.queued:
            self.app.outbox_pump.kick()
        if ctx.emitted:
            self.app.inbox_pump.kick()

    async def on_error(self, spec: HandlerSpec, event: Event, exc: BaseException) -> None:
        """The one error handler: log, count, and tell the ops users."""
        self.app.metrics.handler_errors.labels(spec.name).inc()
        log.error("handler %s failed on event %s (%s): %s: %s", spec.name, event.key, event.type,
                  type(exc).__name__, exc, exc_info=exc)
        for hook in self.error_hooks:
            try:
                await hook(spec, event, exc)
            except Exception:
                log.exception("error hook failed")


def _actor_id(event: Event) -> str:
    if isinstance(event, MessageEvent):
        return event.sender.id
    if isinstance(event, EnteredAgent):
        return event.user.id
    return ""
