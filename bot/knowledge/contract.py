"""The entry contract, declared: what one knowledge entry may say, and the problem each mistake gets.

One model serves every source — a YAML file (problems with file and line), a
database row and the chat forms of ``/kb add`` and ``/kb edit`` (problems
without a line) — so all three obey the same rules. The messages are the ones
operators read in chat and in ``python -m bot kb check``.

Validation context (``EntryModel.model_validate(data, context=...)``):
``check`` compiles an answer template (raises when it is broken); ``text_line``
gives, for ``answer`` / ``off_hours``, the file line where the text starts, so a
template problem names the line inside a block answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Strict, ValidationInfo, field_validator, model_validator

from bot.hours import parse_spans, spans_text
from bot.knowledge.entry import CHAT_SCOPES, ID_RX, MATCH_MODES, ActiveHours, Entry, Scope, Source
from bot.knowledge.patterns import PatternRefused, compile_pattern
from bot.textcheck import TextRefused
from bot.yamldoc import kind_of
from bot.yamlmodel import FileModel, ProblemAt

MAX_TEXT = 4000
MAX_PHRASE = 200
TemplateCheck = Callable[[str], None]


class _Refused:
    """A value a rule spanning two fields refused before the fields are validated; carries the message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _refused(value: Any) -> Any:
    if isinstance(value, _Refused):
        raise ValueError(value.message)
    return value


Phrase = Annotated[str, BeforeValidator(_refused)]


def parse_hours(raw: str) -> ActiveHours:
    """Parse "09:00-21:00" (several ranges comma-separated; "21:00-02:00" runs overnight)."""
    spans = parse_spans(raw, "09:00-21:00")
    if not spans:
        raise ValueError("active_hours 是空的")
    return ActiveHours(spans, spans_text(spans))


def _template_problem(info: ValidationInfo, name: str, source: str) -> None:
    context = info.context or {}
    check: TemplateCheck | None = context.get("check")
    if check is None:
        return
    try:
        check(source)
    except Exception as exc:
        cause = exc if isinstance(exc, TextRefused) else exc.__cause__ or exc
        line = int(getattr(cause, "lineno", None) or 1)
        message = getattr(cause, "message", None) or str(cause)
        start = context["text_line"](name) if "text_line" in context else 0
        what = f"{name} " if isinstance(cause, TextRefused) else f"{name} 模板有误："
        raise ProblemAt(what + message, start + line - 1 if start else 0) from None


class ScopeModel(FileModel):
    """``scope:`` — where an entry may answer."""

    chat: str = "any"
    groups: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError(f"scope 应是映射，例如 {{chat: group, groups: [], tiers: []}}，收到{kind_of(raw)}")
        unknown = [str(k) for k in raw if k not in cls.model_fields]
        if unknown:
            raise ValueError("；".join(f"scope 里有未知字段 {k}（可用：chat、groups、tiers）" for k in unknown))
        return raw

    @field_validator("chat", mode="before")
    @classmethod
    def _chat(cls, v: Any) -> Any:
        v = v or "any"
        if v not in CHAT_SCOPES:
            raise ValueError(f"scope.chat 只能是 any、group 或 single，收到 {v!r}")
        return v

    @field_validator("groups", "tiers", mode="before")
    @classmethod
    def _names(cls, v: Any, info: ValidationInfo) -> Any:
        v = v or []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise ValueError(f"scope.{info.field_name} 应是文字列表")
        return tuple(x.strip() for x in v)

    def to_scope(self) -> Scope:
        return Scope(chat=self.chat, groups=self.groups, tiers=self.tiers)


class EntryModel(FileModel):
    """One entry: ``- id: …`` with its questions or keywords and its answer (the order is the one shown
    when a field name is unknown)."""

    model_config = ConfigDict(validate_default=True)

    id: str | None = None
    questions: tuple[Phrase, ...] = ()
    keywords: tuple[Phrase, ...] = ()
    match: Literal["auto", "exact", "contains", "regex"] = "auto"
    answer: str | None = None
    scope: ScopeModel | None = None
    priority: Annotated[int, Strict()] | None = None
    active_hours: str | None = None
    off_hours: str | None = None
    group_auto: Annotated[bool, Strict()] | None = None

    @model_validator(mode="before")
    @classmethod
    def _rules_across_fields(cls, raw: Any) -> Any:
        """Rules that need two fields, pinned to the field they are about (so the problem names its line)."""
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        keywords = data.get("keywords")
        if data.get("match") == "regex":
            if not keywords:
                data["keywords"] = _Refused("match: regex 需要在 keywords 里写正则表达式")
            elif isinstance(keywords, list | str):
                data["keywords"] = [_regex(k) for k in ([keywords] if isinstance(keywords, str) else keywords)]
        off = data.get("off_hours")
        if isinstance(off, str) and off.strip() and data.get("active_hours") in (None, ""):
            data["off_hours"] = _Refused("off_hours 只在设置了 active_hours 时使用，请同时写 active_hours")
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str:
        if v is None:
            raise ValueError("缺少 id（每条知识需要一个唯一、稳定的 id，例如 refund-policy）")
        if not ID_RX.fullmatch(v):
            raise ValueError(f"id {v!r} 只能用字母、数字、- _ .，以字母或数字开头，最长 64 个字符")
        return v

    @field_validator("questions", "keywords", mode="before")
    @classmethod
    def _phrases(cls, v: Any, info: ValidationInfo) -> Any:
        """A list of phrases (one phrase alone is a list of one); each item's problem names its line."""
        name = info.field_name
        if v is None or v == ():
            return ()
        if isinstance(v, _Refused):
            raise ValueError(v.message)
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            raise ValueError(f"{name} 应是文字列表，例如 [怎么退款, 退款流程]，收到{kind_of(v)}")
        out: list[Any] = []
        seen: set[str] = set()
        for i, item in enumerate(v):
            out.append(_phrase(name, i, item, seen))
        return out

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, v: Any) -> Any:
        if v not in MATCH_MODES:
            raise ValueError(f"match 只能是 {'、'.join(MATCH_MODES)}，收到 {v!r}")
        return v

    @field_validator("answer")
    @classmethod
    def _answer(cls, v: str | None, info: ValidationInfo) -> str:
        if not v:
            raise ValueError("缺少 answer（回答内容）")
        v = v.strip()
        if len(v) > MAX_TEXT:
            raise ValueError(f"answer 太长（{len(v)} 字，最多 {MAX_TEXT} 字）")
        _template_problem(info, "answer", v)
        return v

    @field_validator("off_hours", mode="before")
    @classmethod
    def _off_hours_refused(cls, v: Any) -> Any:
        return _refused(v)

    @field_validator("off_hours")
    @classmethod
    def _off_hours(cls, v: str | None, info: ValidationInfo) -> str:
        v = (v or "").strip()
        if v:
            _template_problem(info, "off_hours", v)
        return v

    @field_validator("active_hours", mode="before")
    @classmethod
    def _hours_text(cls, v: Any) -> Any:
        if v not in (None, "") and not isinstance(v, str):
            raise ValueError(f"active_hours 应是带引号的文字，例如 \"09:00-21:00\"，收到{kind_of(v)}")
        return v

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, v: str | None) -> str:
        if v:
            parse_hours(v)
        return v or ""

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: int | None) -> int:
        if v is not None and not -1000 <= v <= 1000:
            raise ValueError("priority 应在 -1000 到 1000 之间")
        return v or 0

    @model_validator(mode="after")
    def _something_to_match(self) -> EntryModel:
        if self.match == "exact" and not self.questions and not self.keywords:
            raise ValueError("match: exact 需要 questions（要完全一致的说法）")
        if not self.questions and not self.keywords:
            raise ValueError("至少需要一个 questions 或 keywords")
        return self

    def to_entry(self, source: Source) -> Entry:
        return Entry(id=self.id or "", answer=self.answer or "", questions=self.questions, keywords=self.keywords,
                     match=self.match, scope=self.scope.to_scope() if self.scope else Scope(),
                     priority=self.priority or 0,
                     active_hours=parse_hours(self.active_hours) if self.active_hours else None,
                     off_hours=self.off_hours or "", group_auto=bool(self.group_auto), source=source)


def _phrase(name: str, i: int, item: Any, seen: set[str]) -> Any:
    """One item of questions/keywords, stripped — or refused with the problem its line shows."""
    if isinstance(item, _Refused):
        return item
    if not isinstance(item, str):
        return _Refused(f"{name} 第 {i + 1} 项应是文字，收到{kind_of(item)}（数字或 yes/no 请加引号）")
    item = item.strip()
    if not item:
        return _Refused(f"{name} 第 {i + 1} 项是空的")
    if len(item) > MAX_PHRASE:
        return _Refused(f"{name} 第 {i + 1} 项太长（{len(item)} 字，最多 {MAX_PHRASE} 字）")
    if item in seen:
        return _Refused(f"{name} 里 {item!r} 重复了")
    seen.add(item)
    return item


def _regex(item: Any) -> Any:
    if not isinstance(item, str):
        return item
    try:
        compile_pattern(item.strip())
    except PatternRefused as exc:
        return _Refused(f"正则表达式 {item.strip()!r} 不能用：{exc}")
    return item
