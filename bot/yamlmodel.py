"""Declared models for the YAML files operators edit: pydantic validation with file:line problems.

Every file contract (knowledge entries, SOP scripts, the Moments calendar,
lexicons, the tiers ladder) is a pydantic model derived from :class:`FileModel`.
:func:`validate` checks parsed data against it and turns pydantic's errors into
the :class:`~bot.yamldoc.Problem` operators read: in Chinese, at the line of the
value (from the :class:`~bot.yamldoc.Lines` map), with a "did you mean" hint for
a misspelt key. A validator that needs to say something specific raises
``ValueError("中文说明")``; that text is shown as it is. A validator that knows a
more precise line than its value's (a template error inside a block of text)
raises :class:`ProblemAt`. A file made of many units (a script's steps, a
calendar's slots) is checked with :class:`Units`, so that every problem of the
file is found at once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.yamldoc import FileProblems, Key, Lines, Problem, kind_of

M = TypeVar("M", bound=BaseModel)


class ProblemAt(ValueError):
    """A validator's message about one line of its value (``line`` 0: the value's own line)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class FileModel(BaseModel):
    """Base of the file contracts: unknown keys are problems, values are not silently converted.

    ``unknown_key`` words the problem of an unknown key where a contract says it its own way
    (``"等级的未知字段 {key}（可用：{known}）"``; ``{parent}`` is the key that holds it); empty:
    the generic "未知字段 X（是不是 Y？）", after ``key_label``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    unknown_key: ClassVar[str] = ""

    #: How a problem about an unknown key of this mapping starts (``"week："``: which mapping it is in).
    key_label: ClassVar[str] = ""


def _keys_of(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    out: list[str] = []
    for name, info in model.model_fields.items():
        out.append(info.alias or name)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Key, ...]) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (for "did you mean" hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        info = fields.get(part) or current.model_fields.get(part)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside ``list[X]``, ``X | None``, ``dict[str, X]`` …, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _message(model: type[BaseModel], err: dict[str, Any], loc: tuple[Key, ...]) -> str:
    kind = err["type"]
    name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "值")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"缺少 {name}"
    if kind == "extra_forbidden":
        holder = _model_at(model, loc)
        known = _keys_of(holder)
        wording = getattr(holder, "unknown_key", "")
        if wording:
            parent = next((str(p) for p in reversed(loc[:-1]) if isinstance(p, str)), "")
            return wording.format(key=loc[-1], known=", ".join(known), parent=parent)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"（是不是 {close[0]}？）" if close else (f"（可用字段：{', '.join(known)}）" if known else "")
        return f"{getattr(holder, 'key_label', '')}未知字段 {loc[-1]}{hint}"
    if kind in ("string_type", "str_type"):
        return f"{name} 应是文字，收到{kind_of(value)}（数字或 yes/no 请加引号）"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name} 应是整数，收到{kind_of(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"{name} 应是数字，收到{kind_of(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} 应是 true 或 false，收到{kind_of(value)}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{name} 应是列表，收到{kind_of(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"{name} 应是映射（键: 值），收到{kind_of(value)}"
    if kind == "literal_error":
        return f"{name} 只能是 {ctx.get('expected', '')}，收到 {value!r}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{name} 不能小于 {ctx.get('ge', ctx.get('gt'))}，收到 {value!r}"
    if kind in ("less_than_equal", "less_than"):
        return f"{name} 不能大于 {ctx.get('le', ctx.get('lt'))}，收到 {value!r}"
    if kind == "string_too_long":
        return f"{name} 太长（最多 {ctx.get('max_length')} 字）"
    if kind == "string_too_short":
        return f"{name} 是空的"
    if kind == "too_long":
        return f"{name} 太多了（最多 {ctx.get('max_length')} 项）"
    if kind == "too_short":
        return f"{name} 至少要有 {ctx.get('min_length')} 项"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"]
    return f"{name}: {err['msg']}"


def problems_of(model: type[BaseModel], exc: ValidationError, lines: Lines, *,
                at: tuple[Key, ...] = ()) -> list[Problem]:
    """pydantic's errors as file:line problems (``at``: where ``data`` sits inside the file)."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        line = getattr((err.get("ctx") or {}).get("error"), "line", 0) or lines.line(*at, *loc)
        problem = Problem(lines.path, line, _message(model, err, loc))
        if problem not in out:
            out.append(problem)
    return out


def validate(model: type[M], data: Any, lines: Lines, *, at: tuple[Key, ...] = (),
             context: dict[str, Any] | None = None) -> M:
    """``data`` as ``model``; raise FileProblems naming each problem's line."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise FileProblems(problems_of(model, exc, lines, at=at)) from None


@dataclass(slots=True)
class Units:
    """A file's problems, gathered unit by unit; each unit is a declared model checked at its place."""

    lines: Lines
    context: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)

    def check(self, model: type[M], raw: Any, *at: Key, label: str = "", **context: Any) -> M | None:
        """``raw`` as ``model`` (validated where ``at`` says it sits), or None with its problems noted.

        ``label`` starts the problem of an unknown key (``第 2 步：``) when it depends on the place;
        ``context`` adds to the file's validation context for this unit (``line``: the unit's own line)."""
        try:
            return model.model_validate(raw, context={**self.context, "line": self.lines.line(*at), **context})
        except ValidationError as exc:
            found = problems_of(model, exc, self.lines, at=at)
            self.problems += [Problem(p.path, p.line, label + p.message) if label and p.message.startswith("未知字段")
                              else p for p in found]
            return None

    def problem(self, message: str, *keys: Key) -> None:
        self.problems.append(self.lines.problem(message, *keys))

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: p.line)
