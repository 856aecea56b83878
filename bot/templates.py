"""User-facing text: jinja2 templates, always rendered in the sandbox.

Operators write templates (SOP steps, knowledge-base answers, Moments texts), so
every template — ours too — renders in ``SandboxedEnvironment``: no attribute
access to internals, no imports, no file access beyond the template folders.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

CORE_DIR = Path(__file__).with_name("templates")


class TemplateProblem(ValueError):
    """A template that does not compile or render; ``str()`` says where and what."""


class Templates:
    def __init__(self, tz: ZoneInfo, dirs: Iterable[Path] = (), clock: Any = None) -> None:
        self.tz = tz
        self.clock = clock
        self._dirs = [CORE_DIR, *dirs]
        self.env = self._make_env(StrictUndefined)
        # Operator-written text: a missing field renders empty instead of failing a delivery.
        self.lenient = self._make_env(ChainableUndefined)
        self._compile = functools.lru_cache(maxsize=2048)(self._compile_uncached)

    def _make_env(self, undefined: type) -> SandboxedEnvironment:
        env = SandboxedEnvironment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in self._dirs]),
            undefined=undefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["localtime"] = self._localtime
        env.globals["now"] = self.now
        return env

    def add_dir(self, path: Path) -> None:
        if path not in self._dirs:
            self._dirs.append(path)
            for env in (self.env, self.lenient):
                env.loader = ChoiceLoader([FileSystemLoader(str(d)) for d in self._dirs])

    def now(self) -> datetime:
        base = self.clock.now() if self.clock is not None else datetime.now(self.tz)
        return base.astimezone(self.tz)

    def _localtime(self, value: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if not isinstance(value, datetime):
            return str(value)
        return value.astimezone(self.tz).strftime(fmt)

    def render(self, name: str, /, **values: Any) -> str:
        """Render a template file by name (``core/help.j2``)."""
        try:
            return self.env.get_template(name).render(**values).strip()
        except TemplateError as exc:
            raise TemplateProblem(f"{name}: {exc}") from exc

    def render_file(self, name: str, /, **values: Any) -> str:
        """Render an operator template file leniently (missing fields render empty)."""
        try:
            return self.lenient.get_template(name).render(**values).strip()
        except TemplateError as exc:
            raise TemplateProblem(f"{name}: {exc}") from exc

    def _compile_uncached(self, source: str) -> Any:
        return self.lenient.from_string(source)

    def check(self, source: str) -> None:
        """Raise TemplateProblem if ``source`` does not compile."""
        try:
            self.lenient.parse(source)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateProblem(f"line {line}: {exc}" if line else str(exc)) from exc

    def render_string(self, source: str, /, **values: Any) -> str:
        """Render operator-written inline text (knowledge answers, SOP steps)."""
        try:
            return self._compile(source).render(**values).strip()
        except TemplateError as exc:
            raise TemplateProblem(str(exc)) from exc
