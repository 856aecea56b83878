"""A transaction's copies of small, rarely written tables: read once per transaction, not once per event.

An inbox batch runs many events in one transaction; a handler that asks the same small question for
each of them (which roles a user holds, whether a member is with a person, whether a group switched
the knowledge base off) reads the answer for everybody once, with :func:`snapshot`, and keeps it in
``session.info`` for the rest of the transaction. The rules that keep such a copy exact:

- the code that writes the table drops the copy in the same session (:func:`forget`), so the next
  lookup reads the table again and sees the write;
- a savepoint that rolls back drops every copy (the dispatcher calls :func:`forget` with no name),
  so nothing written in it and then undone is remembered;
- nothing outlives the transaction: ``session.info`` goes with the session. Another replica's write
  is seen by the next transaction that starts after it committed — as if the table were read each time.

Only for tables small enough to read whole (a few hundred rows at most), and only for what is
compared against the time at lookup (a row copied at the start of a batch still says when it ends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
_KEY = "siyu.snapshots"


async def snapshot(session: Any, name: str, load: Callable[[Any], Awaitable[T]]) -> T:
    """This transaction's copy of ``name``: ``await load(session)`` the first time, then the same object."""
    copies: dict[str, Any] = session.info.setdefault(_KEY, {})
    if name not in copies:
        copies[name] = await load(session)
    return copies[name]  # type: ignore[no-any-return]


def forget(session: Any, name: str | None = None) -> None:
    """Drop this transaction's copy of ``name`` (of every table when None): read again on the next lookup."""
    if name is None:
        session.info.pop(_KEY, None)
    else:
        session.info.get(_KEY, {}).pop(name, None)
