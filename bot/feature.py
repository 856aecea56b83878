"""A feature: its routers and the one function that assembles its services.

``handlers/__init__.py`` lists the features (``FEATURES``), explicitly and in
order; ``BotApp`` installs each — ``install(app)`` builds the feature's services,
pumps, crons, routes and template folder — then includes its routers. A plugin
(config ``bot.plugins = ["pkg.module:feature"]``) names a :class:`Feature` the
same way, or a plain ``setup(app) -> Router | list[Router]`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.routing import Router

if TYPE_CHECKING:
    from bot.app import BotApp

Install = Callable[["BotApp"], None]
Setup = Callable[["BotApp"], Router | Sequence[Router]]


def _nothing(app: BotApp) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    routers: Sequence[Router] = ()
    install: Install = _nothing
    about: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def setup(self, app: BotApp) -> list[Router]:
        self.install(app)
        return list(self.routers)


def as_feature(item: Feature | Setup) -> Feature:
    """A plugin given as a ``setup(app)`` function becomes a feature whose install returns its routers."""
    if isinstance(item, Feature):
        return item
    routers: list[Router] = []

    def install(app: BotApp) -> None:
        result = item(app)
        routers.extend([result] if isinstance(result, Router) else list(result))

    name = getattr(item, "__module__", "plugin")
    return Feature(name=name, install=install, routers=routers)

