"""User-facing text: jinja2 templates, always rendered in the sandbox, within a budget.

Operators write templates (SOP steps, knowledge-base answers, Moments texts), so
every template — ours too — renders in a ``SandboxedEnvironment``: no attribute
access to internals, no imports, no file access beyond the template folders.

Operator-written text also renders within a :class:`Budget`: a deadline and a
number of template lines executed (so nested loops end), an output size, and
guards on the operations that make huge values in one step (``'a' * 10**9``,
``10 ** 10 ** 10``, a format width of a billion, ``range`` past the budget).
A template that goes over raises :class:`BudgetExceeded`; :meth:`Templates.trial`
renders a new template once with sample values so it is refused when it is
added, not when a member triggers it.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from bot.ladderfacts import NO_LADDER, LadderFacts, LiveLadder

CORE_DIR = Path(__file__).with_name("templates")
TEMPLATE_CODE = "<template>"   # jinja2's compiled code carries this file name (or the template file's)


@dataclass(frozen=True, slots=True)
class Budget:
    """What one render of operator-written text may use."""

    seconds: float = 0.5          # wall clock
    lines: int = 200_000          # template lines executed (each loop round runs at least one)
    output: int = 20_000          # characters of output (WeCom's text limit is 2,048 bytes a message)
    value: int = 100_000          # the largest string/list one operation may make, the largest int argument


DEFAULT_BUDGET = Budget()
MESSAGE_BYTES = 2048      # one WeCom text message (docs/wecom-protocol.md); longer texts are split (bot.outbox)
OPERATOR_MESSAGES = 2     # an operator's text (an answer, a step, a Moments text) may fill at most this many
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(\d{4,}|\*)|\{[^{}]*:[^{}]*?\d{4,}[^{}]*\}")


class BudgetExceeded(TemplateError):
    """A render went over its budget; the message says which limit, in Chinese."""


class _Meter:
    """Counts the template lines one render executes (a trace function) and watches the clock."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.deadline = time.monotonic() + budget.seconds
        self.lines = 0

    def tick(self) -> None:
        self.lines += 1
        if self.lines > self.budget.lines:
            raise BudgetExceeded(f"模板执行的步数超过上限（{self.budget.lines:,} 步），请减少循环")
        if self.lines % 256 == 0 and time.monotonic() > self.deadline:
            raise BudgetExceeded(f"模板渲染超时（{self.budget.seconds:g} 秒），请减少循环")

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if (event == "call" and frame.f_code.co_filename.startswith("<template")) or \
                frame.f_code.co_filename.endswith(".j2"):
            return self._local
        return None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.tick()
        return self._local


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a join that refuses a string past the budget (doubling in a loop)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_within((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BudgetedSandbox(SandboxedEnvironment):
    """The sandbox, plus guards on the operations that build a huge value in one step."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})
    budget = DEFAULT_BUDGET

    def concat_within(self, parts: Iterable[Any]) -> str:
        text = "".join(map(str, parts))
        if len(text) > self.budget.value:
            raise self._too_big("拼接")
        return text

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'{:>999999999}'.format(1)``: the sandbox's str.format, refusing a width past the budget."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _WIDE_FORMAT.search(value.__self__):
            raise self._too_big("格式宽度")
        return wrapped

    def _too_big(self, what: str) -> SecurityError:
        return SecurityError(f"模板里的{what}太大（上限 {self.budget.value:,}）")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limit = self.budget.value
        if operator == "**":
            if not isinstance(left, int | float) or not isinstance(right, int | float) or abs(right) > 64 \
                    or abs(left) > limit:
                raise self._too_big("乘方")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * max(n, 0) > limit:
                    raise self._too_big("重复")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 256:
                raise self._too_big("数字")
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple) and \
                    len(left) + len(right) > limit:
                raise self._too_big("拼接")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise self._too_big("格式宽度")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self._check_args(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _check_args(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        limit = self.budget.value
        for a in (*args, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > limit:
                raise self._too_big("参数")


def _guarded(fn: Callable[..., Any], env: BudgetedSandbox) -> Callable[..., Any]:
    """A filter whose arguments are checked like a call's (``center(10**9)``, ``"%9999999d"|format``)."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if fn.__name__ == "do_format":
            # its arguments are values to show ("%+d"|format(points)), not sizes: only the width counts
            if args and isinstance(args[0], str) and _WIDE_FORMAT.search(args[0]):
                raise env._too_big("格式宽度")
        else:
            env._check_args(fn, args[1:], kwargs)  # the first argument is the value being filtered
        return fn(*args, **kwargs)

    return guarded


def render_within(template: Template, values: dict[str, Any], budget: Budget = DEFAULT_BUDGET) -> str:
    """Render ``template`` within ``budget``: lines executed, clock and output size are all bounded."""
    meter = _Meter(budget)
    previous = sys.gettrace()
    sys.settrace(meter.trace)
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(**values):
            size += len(chunk)
            if size > budget.output:
                raise BudgetExceeded(f"模板输出超过上限（{budget.output:,} 字）")
            out.append(chunk)
            meter.tick()
        return "".join(out)
    finally:
        sys.settrace(previous)


class TemplateProblem(ValueError):
    """A template that does not compile or render; ``str()`` says where and what."""


class Templates:
    def __init__(self, tz: ZoneInfo, dirs: Iterable[Path] = (), clock: Any = None) -> None:
        self.tz = tz
        self.clock = clock
        self._dirs = [CORE_DIR, *dirs]
        self._ladder: Callable[[], LadderFacts] = lambda: NO_LADDER
        self.env = self._make_env(StrictUndefined)
        # Operator-written text: a missing field renders empty instead of failing a delivery.
        self.lenient = self._make_env(ChainableUndefined)
        self._compile = functools.lru_cache(maxsize=2048)(self._compile_uncached)

    def _make_env(self, undefined: type) -> SandboxedEnvironment:
        env = BudgetedSandbox(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in self._dirs]),
            undefined=undefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters = {name: _guarded(fn, env) for name, fn in env.filters.items()}
        env.filters["localtime"] = self._localtime
        env.globals["now"] = self.now
        env.globals["range"] = _budgeted_range
        env.globals["ladder"] = LiveLadder(self.ladder)
        return env

    def provide_ladder(self, source: Callable[[], LadderFacts]) -> None:
        """Where ``ladder`` in every template reads the member ladder from (bot.ladderfacts): the tiers
        feature gives the rules in service, the command-line checks the rules file."""
        self._ladder = source

    def ladder(self) -> LadderFacts:
        return self._ladder()

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
        """Render an operator template file leniently (missing fields render empty), within the budget."""
        try:
            return render_within(self.lenient.get_template(name), values).strip()
        except TemplateError as exc:
            raise TemplateProblem(f"{name}: {exc}") from exc
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise TemplateProblem(f"{name}: 模板无法渲染（{type(exc).__name__}）") from exc

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
        """Render operator-written inline text (knowledge answers, SOP steps), within the budget."""
        try:
            return render_within(self._compile(source), values).strip()
        except TemplateError as exc:
            raise TemplateProblem(str(exc)) from exc
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise TemplateProblem(f"模板无法渲染（{type(exc).__name__}）") from exc

    def trial(self, source: str, /, limit: int | None = None, messages: int | None = None, **values: Any) -> str:
        """Render a new operator template once with sample ``values``: a template that goes over the budget,
        fails, renders longer than ``limit`` characters or into more than ``messages`` WeCom text messages
        raises TemplateProblem with the reason in Chinese, so it is refused when it is added."""
        self.check(source)
        text = self.render_string(source, **values)
        if limit is not None and len(text) > limit:
            raise TemplateProblem(f"渲染后有 {len(text):,} 字，超过上限 {limit:,} 字")
        if messages is not None:
            problem = too_many_messages(text, messages)
            if problem:
                raise TemplateProblem(problem)
        return text


def too_many_messages(text: str, messages: int = OPERATOR_MESSAGES) -> str | None:
    """Why ``text`` is too long to send (the reason in Chinese), or None: sent as WeCom text messages of
    MESSAGE_BYTES bytes (split at line breaks as the outbox does), it may fill at most ``messages``."""
    size = len(text.encode())
    if size <= MESSAGE_BYTES:
        return None
    # function-level: bot.outbox imports bot.config, which imports every feature's config section
    from bot.outbox import split_text

    parts = len(split_text(text, MESSAGE_BYTES))
    if parts <= messages:
        return None
    return (f"渲染后有 {size:,} 字节，要拆成 {parts} 条消息发送（企业微信一条文字消息最多 {MESSAGE_BYTES:,} 字节，"
            f"这里最多 {messages} 条），请缩短")


def _budgeted_range(*args: int) -> Iterator[int]:
    """``range`` for templates: the sandbox's size limit, and each step counts against the render's lines."""
    if len(args) > 3 or any(not isinstance(a, int) or isinstance(a, bool) for a in args):
        raise SecurityError("range 只接受 1 到 3 个整数")
    numbers = range(*args)
    if len(numbers) > DEFAULT_BUDGET.value:
        raise SecurityError(f"range 太大（上限 {DEFAULT_BUDGET.value:,}）")
    return iter(numbers)
