"""Typed keys for the services features provide (``app.get(KNOWLEDGE)``, ``ctx.get(KNOWLEDGE)``).

A feature declares its key in its package's ``__init__`` and provides the service
in its ``install(app)``; handlers and other features look it up by the key. The
key lives here, at the bottom, so a feature never imports the app to name it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ServiceKey(Generic[T]):
    """A typed key for a feature's service object."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<ServiceKey {self.name}>"


class Services:
    """The services an app holds, by key."""

    def __init__(self) -> None:
        self._services: dict[ServiceKey[Any], Any] = {}

    def provide(self, key: ServiceKey[T], value: T) -> None:
        self._services[key] = value

    def get(self, key: ServiceKey[T]) -> T:
        try:
            return self._services[key]
        except KeyError:
            raise LookupError(f"no service {key.name!r}; is its feature enabled?") from None

    def maybe(self, key: ServiceKey[T]) -> T | None:
        return self._services.get(key)

    def shared(self, key: ServiceKey[T], make: Callable[[], T]) -> T:
        """The service under ``key``, made with ``make`` on first use: a registry several features add
        to in their ``install``, in any order (bot.memberfacts, bot.openquestions)."""
        if key not in self._services:
            self._services[key] = make()
        return self._services[key]
