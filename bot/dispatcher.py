"""The dispatcher: runs the routers' handlers for one event.

Handlers run in priority order (see bot.routing), inside the caller's
transaction (the inbox pump's batch, see bot.inbox.InboxPump.process_batch),
with a receipt row per handler (event key + handler name): a reprocessed event
never repeats a handler's effects. Two ways to run them:

- **carefully**: each handler in its own savepoint with its receipt, so a failing
  handler rolls back alone (retried here when the failure is transient) without
  stopping the others;
- **optimistically** (:class:`Receipts` given): one savepoint per event, none per
  handler; the batch's receipts are read once and written together before the
  commit. When a handler fails, the event's savepoint is rolled back and that
  event runs again carefully (its handlers before the failing one run a second
  time; their effects count once). Three statements fewer per handler in the
  common case where nothing fails.

One error handler logs, counts and tells the ops users — after the commit, like
every hook that must not run inside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, OperationalError

from bot.context import Context
from bot.events import EnteredAgent, Event, MessageEvent
from bot.roles import ADMIN
from bot.routing import HandlerSpec, Router
from bot.storage import snapshots
from bot.storage.db import insert_ignoring_conflicts
from bot.storage.keys import bounded_key
from bot.storage.models import HandledEvent

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.dispatch")


@dataclass(slots=True)
class AfterCommit:
    """What waits for the transaction's commit: the contexts of handlers that ran (their after-commit
    hooks and pump kicks) and the handlers that failed (their rollback hooks, the error handler)."""

    committed: list[Context] = field(default_factory=list)
    failed: list[tuple[HandlerSpec, Event, BaseException, list[Callable[[], Awaitable[None]]]]] = field(
        default_factory=list)


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
_CHUNK = 400  # receipts per statement (three parameters each: well inside SQLite's limit)


class BatchAborted(Exception):
    """Optimistic work failed: a handler raised (its event runs again carefully), or a receipt was stored by
    another transaction meanwhile (the whole batch runs again carefully)."""


class Receipts:
    """The receipts of one optimistic batch transaction: those already stored for its events, read in one
    statement, and the new ones, written in a few statements just before the commit (:meth:`write`)."""

    def __init__(self, stored: set[tuple[str, str]], at: Any) -> None:
        self.stored = stored
        self.new: list[tuple[str, str]] = []
        self.at = at

    @classmethod
    async def load(cls, session: Any, event_keys: list[str], at: Any) -> Receipts:
        keys = sorted({bounded_key(k, 255) for k in event_keys})
        stored: set[tuple[str, str]] = set()
        for i in range(0, len(keys), _CHUNK):
            rows = await session.execute(HANDLED.select().with_only_columns(HANDLED.c.event_key, HANDLED.c.handler)
                                         .where(HANDLED.c.event_key.in_(keys[i:i + _CHUNK])))
            stored.update((k, h) for k, h in rows.all())
        return cls(stored, at)

    def mark(self) -> int:
        return len(self.new)

    def undo(self, mark: int) -> None:
        """Forget the receipts taken since ``mark`` (their event's savepoint was rolled back)."""
        for receipt in self.new[mark:]:
            self.stored.discard(receipt)
        del self.new[mark:]

    def take(self, event_key: str, handler: str) -> bool:
        """Whether the handler is to run for the event (no receipt yet); its receipt is then written."""
        receipt = (bounded_key(event_key, 255), handler)
        if receipt in self.stored:
            return False
        self.stored.add(receipt)
        self.new.append(receipt)
        return True

    async def write(self, session: Any, dialect: str) -> None:
        """Store the new receipts; one that another transaction stored meanwhile (a second replica that took
        the same event after its lease) aborts the batch, which then runs carefully and skips it."""
        for i in range(0, len(self.new), _CHUNK):
            part = self.new[i:i + _CHUNK]
            stmt = insert_ignoring_conflicts(dialect, HANDLED, ["event_key", "handler"]).values(
                [{"event_key": k, "handler": h, "at": self.at} for k, h in part]).returning(HANDLED.c.handler)
            if len((await session.execute(stmt)).all()) != len(part):
                raise BatchAborted("a receipt of this batch was stored by another transaction")
        self.new.clear()


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
        """Run the handlers for one event in its own transaction (see :meth:`dispatch_in`)."""
        prepared = await self.prepare(event)
        after = AfterCommit()
        async with self.app.db.session() as session:
            outcome = await self.dispatch_in(session, event, after, prepared)
        await self.finish(after)
        return outcome

    async def prepare(self, event: Event) -> dict[str, Any]:
        """What the matching handlers' ``prepare`` functions compute for ``event`` (by handler name); call it
        while no transaction is open, so long work (off the event loop) never holds the database writer.
        A prepare that fails is logged and left out: its handler then does that work itself."""
        out: dict[str, Any] = {}
        for spec in self._specs:
            if spec.prepare is None or not isinstance(event, spec.event_type):
                continue
            try:
                if not spec.predicate(event, self.app):
                    continue
                out[spec.name] = await asyncio.wait_for(spec.prepare(event, self.app),
                                                        self.app.config.inbox.handler_timeout_s)
            except Exception:
                log.exception("preparing %s for %s failed; the handler works without it", spec.name, event.key)
        return out

    async def dispatch_in(self, session: Any, event: Event, after: AfterCommit,
                          prepared: Mapping[str, Any] | None = None, receipts: Receipts | None = None) -> Outcome:
        """Run the handlers for one event inside the caller's transaction, each in a savepoint — or, with
        ``receipts``, optimistically (see the module's docstring); ``prepared``: what :meth:`prepare`
        computed before the transaction opened (``ctx.prepared`` of each handler).

        What must wait for the commit (after-commit hooks, pump kicks, rollback hooks and the error
        handler of failed handlers) is collected in ``after``; call :meth:`finish` once committed.
        """
        if receipts is None:
            return await self._dispatch(session, event, after, prepared, None)
        mark, trial = receipts.mark(), AfterCommit()
        try:
            async with session.begin_nested():
                outcome = await self._dispatch(session, event, trial, prepared, receipts)
        except BatchAborted as exc:
            receipts.undo(mark)
            log.debug("%s; the event runs again with a savepoint per handler", exc)
            return await self._dispatch(session, event, after, prepared, None)
        after.committed.extend(trial.committed)
        return outcome

    async def _dispatch(self, session: Any, event: Event, after: AfterCommit, prepared: Mapping[str, Any] | None,
                        receipts: Receipts | None) -> Outcome:
        outcome = Outcome()
        actor = _actor_id(event)
        for spec in self._specs:
            if not isinstance(event, spec.event_type):
                continue
            try:
                matched = spec.predicate(event, self.app)
            except Exception as exc:
                log.exception("predicate of %s failed on %s", spec.name, event.key)
                outcome.errors.append(f"{spec.name}: predicate {exc!r}")
                continue
            if not matched:
                continue
            if spec.roles:
                roles = await self.roles_of(session, actor) if actor else frozenset()
                if ADMIN not in roles and not (spec.roles & roles):
                    continue
            ready = (prepared or {}).get(spec.name)
            if receipts is None:
                stopped = await self.run_handler(session, spec, event, outcome, after, ready)
            else:
                stopped = await self.run_optimistic(session, spec, event, outcome, after, ready, receipts)
            if spec.block or stopped:
                break
        return outcome

    async def run_handler(self, session: Any, spec: HandlerSpec, event: Event, outcome: Outcome,
                          after: AfterCommit, prepared: Any = None) -> bool:
        """One handler in a savepoint with its receipt: it commits with the caller's transaction, or rolls
        back alone (retried here up to ``handler_attempts`` times when the failure is transient).
        True if it ran and asked to stop the event there (``ctx.stop()``)."""
        for attempt in range(1, self.handler_attempts + 1):
            ctx: Context | None = None
            try:
                async with session.begin_nested():
                    receipt = insert_ignoring_conflicts(self.app.db.dialect, HANDLED, ["event_key", "handler"])
                    res = await session.execute(receipt.values(
                        event_key=bounded_key(event.key, 255), handler=spec.name, at=self.app.clock.now()
                    ).returning(HANDLED.c.handler))
                    if res.first() is None:
                        return False  # this handler already committed its effects for this event
                    ctx = await self._context(session, spec, event, prepared)
                    await self._call(spec, event, ctx)
                return self._ran(spec, ctx, outcome, after)
            except Exception as exc:
                snapshots.forget(session)  # what the rolled-back savepoint wrote is undone: read tables again
                transient = _is_transient(exc)
                if transient and attempt < self.handler_attempts:
                    await asyncio.sleep(0.05 * attempt)
                    continue
                outcome.errors.append(f"{spec.name}: {type(exc).__name__}: {exc}"[:500])
                if transient:
                    outcome.retry = True
                after.failed.append((spec, event, exc, list(ctx.rollback_hooks) if ctx is not None else []))
                return False
        return False

    async def run_optimistic(self, session: Any, spec: HandlerSpec, event: Event, outcome: Outcome,
                             after: AfterCommit, prepared: Any, receipts: Receipts) -> bool:
        """One handler without a savepoint of its own; a failure raises :class:`BatchAborted`."""
        if not receipts.take(event.key, spec.name):
            return False  # this handler already committed its effects for this event
        try:
            ctx = await self._context(session, spec, event, prepared)
            await self._call(spec, event, ctx)
        except Exception as exc:
            snapshots.forget(session)
            raise BatchAborted(f"{spec.name} failed on {event.key}: {type(exc).__name__}") from exc
        return self._ran(spec, ctx, outcome, after)

    async def _context(self, session: Any, spec: HandlerSpec, event: Event, prepared: Any) -> Context:
        actor = _actor_id(event)
        roles = await self.roles_of(session, actor) if actor else frozenset()
        ctx = Context(self.app, event, session, spec.name, roles=roles)
        ctx.prepared = prepared
        return ctx

    async def _call(self, spec: HandlerSpec, event: Event, ctx: Context) -> None:
        await asyncio.wait_for(spec.fn(event, ctx), self.app.config.inbox.handler_timeout_s)

    @staticmethod
    def _ran(spec: HandlerSpec, ctx: Context, outcome: Outcome, after: AfterCommit) -> bool:
        """A handler ran: its context waits for the commit; True if it asked to stop the event."""
        outcome.ran.append(spec.name)
        after.committed.append(ctx)
        return ctx.stopped

    async def finish(self, after: AfterCommit) -> None:
        """After the transaction committed: after-commit hooks, pump kicks, then the failures' rollback
        hooks (each in a fresh transaction) and the error handler."""
        for ctx in after.committed:
            for hook in ctx.commit_hooks:
                try:
                    hook()
                except Exception:
                    log.exception("after-commit hook of %s failed", ctx.handler)
            ctx.kick()
        for spec, event, exc, rollback_hooks in after.failed:
            for rollback in rollback_hooks:
                try:
                    await rollback()
                except Exception:
                    log.exception("rollback hook of %s failed", spec.name)
            await self.on_error(spec, event, exc)
        after.committed.clear()
        after.failed.clear()

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
