"""The ``tiers.yaml`` contract: declared models, checked with file:line problems, turned into :class:`Rules`.

A file with any problem is refused whole (``python -m bot tiers check`` lists them;
the bot keeps the rules in service, see :mod:`bot.tiers.feature`). Which tier ids a
file defines is read first, so ``privileges``, ``downgrade.to`` and ``downgrade.keep``
are checked against them even where another tier has a problem.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.tiers.rules import ACTIONS, POINTS_PER_ENTRY, REQUIREMENTS, ActionRule, Downgrade, Rules, Streak, Tier
from bot.yamldoc import load_yaml, read_text
from bot.yamlmodel import FileModel, validate

ID_RX = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _entry_points(value: Any, where: str) -> Any:
    """One ledger entry's points as the file gives them (``checkin.points``, ``streak.points``)."""
    if not _whole(value, 0) or value > POINTS_PER_ENTRY:
        raise ValueError(f"{where}.points 应是 0 到 {POINTS_PER_ENTRY:,} 之间的整数")
    return value


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) and i.strip() for i in value)


def _entry_problems(problems: list[tuple[str, str]]) -> NoReturn:
    """Raise one problem per entry of a mapping (``(key, message)``), each at that entry's line."""
    raise ValidationError.from_exception_data("tiers.yaml", [
        InitErrorDetails(type=PydanticCustomError("value_error", "{text}", {"text": text}), loc=(key,), input=key)
        for key, text in problems])


def _ids(info: ValidationInfo) -> set[str]:
    return (info.context or {}).get("ids", set())


class Part(FileModel):
    """A mapping of the file; ``not_a_mapping`` says what it should be (``{action}``: its key, for points)."""

    not_a_mapping: ClassVar[str] = ""
    action: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if not isinstance(v, dict) and cls.not_a_mapping:
            raise ValueError(cls.not_a_mapping.format(action=cls.action))
        return v


class Requires(FileModel):
    unknown_key: ClassVar[str] = f"未知的升级条件 {{key}}（可用：{', '.join(REQUIREMENTS)}）"

    points: float | None = None
    messages: float | None = None
    checkins: float | None = None
    homework: float | None = None
    referrals: float | None = None
    purchases: float | None = None
    spend: float | None = None
    days_since_join: float | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _amount(cls, v: Any, info: ValidationInfo) -> Any:
        if not _number(v):
            raise ValueError(f"{info.field_name} 应是不小于 0 的数字")
        return float(v)

    _order: tuple[str, ...] = PrivateAttr(())

    @model_validator(mode="wrap")
    @classmethod
    def _in_file_order(cls, v: Any, handler: ModelWrapValidatorHandler[Requires]) -> Requires:
        model = handler(v)
        model._order = tuple(k for k in v if k in REQUIREMENTS) if isinstance(v, dict) else ()
        return model

    def needs(self) -> dict[str, float]:
        """The requirements in the order the file lists them (the order ``/tier rules`` shows)."""
        return {k: getattr(self, k) for k in self._order}


class TierSpec(Part):
    unknown_key: ClassVar[str] = "等级的未知字段 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "每个等级应是 {{id: …, name: …, requires: {{…}}}} 映射"

    id: str = Field(None, validate_default=True)  # type: ignore[assignment]
    name: str | None = None
    requires: Requires | None = None
    group_tag: str = ""

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, str) or not ID_RX.fullmatch(v):
            raise ValueError("id 应是小写字母开头的英文标识，如 quality")
        seen = (info.context or {}).setdefault("seen", set())
        if v in seen:
            raise ValueError(f"等级 id {v} 重复了")
        seen.add(v)
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ValueError("name 应是等级的中文名称")
        return v

    @field_validator("requires", mode="before")
    @classmethod
    def _requires(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and not isinstance(v, dict):
            raise ValueError("requires 应是「条件: 数值」的映射")
        if v and info.data.get("id") is not None and info.data["id"] == (info.context or {}).get("first"):
            raise ValueError("第一个等级是起点，不能有 requires")
        return v or None

    @field_validator("group_tag", mode="before")
    @classmethod
    def _group_tag(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError("group_tag 应是文字")
        return v


class PointsSpec(Part):
    """How many points one action earns; ``action`` is the key it sits under (``checkin: {…}``)."""

    unknown_key: ClassVar[str] = "{parent} 的未知字段 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "{action} 应是 {{points: 数字, daily_cap: 数字}} 映射"

    points: int = Field(None, validate_default=True)  # type: ignore[assignment]
    daily_cap: int | None = None
    keywords: list[str] = Field(default_factory=list)

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> Any:
        return _entry_points(v, cls.action)

    @field_validator("daily_cap", mode="before")
    @classmethod
    def _cap(cls, v: Any) -> Any:
        if v is not None and not _whole(v, 1):
            raise ValueError(f"{cls.action}.daily_cap 应是正整数（每天最多计分几次）")
        return v

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, v: Any) -> Any:
        if not _texts(v):
            raise ValueError(f"{cls.action}.keywords 应是文字列表")
        return v

    def rule(self) -> ActionRule:
        keywords = self.keywords or (["打卡"] if self.action == "checkin" else [])
        return ActionRule(self.points, self.daily_cap, tuple(k.strip() for k in keywords))


POINTS_SPECS: dict[str, type[PointsSpec]] = {
    a: type(f"{a.capitalize()}Points", (PointsSpec,), {"action": a, "__module__": __name__}) for a in ACTIONS}


class _PointsBase(Part):
    unknown_key: ClassVar[str] = "未知的积分动作 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "points 应是「动作: {{points: …}}」的映射"

    def rules(self) -> dict[str, ActionRule]:
        return {a: spec.rule() for a in ACTIONS if (spec := getattr(self, a)) is not None}


Points = create_model("Points", __base__=_PointsBase, __module__=__name__,
                      **{a: (spec | None, None) for a, spec in POINTS_SPECS.items()})  # type: ignore[call-overload]


class DowngradeSpec(Part):
    unknown_key: ClassVar[str] = "downgrade 的未知字段 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "downgrade 应是 {{inactive_days: 天数, to: 等级}} 映射"

    inactive_days: int = Field(None, validate_default=True)  # type: ignore[assignment]
    to: str = Field(None, validate_default=True)  # type: ignore[assignment]
    keep: list[str] = Field(default_factory=list)

    @field_validator("inactive_days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if not _whole(v, 1):
            raise ValueError("downgrade.inactive_days 应是正整数")
        return v

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in _ids(info):
            raise ValueError(f"downgrade.to 应是已定义的等级，收到 {v!r}")
        return v

    @field_validator("keep", mode="before")
    @classmethod
    def _keep(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, list) or any(k not in _ids(info) for k in v):
            raise ValueError("downgrade.keep 应是已定义等级的列表")
        return v


class StreakSpec(Part):
    unknown_key: ClassVar[str] = "streak 的未知字段 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "streak 应是 {{days: 天数, points: 积分}} 映射"

    days: int = Field(None, validate_default=True)  # type: ignore[assignment]
    points: int = Field(None, validate_default=True)  # type: ignore[assignment]

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if not _whole(v, 2) or v > 366:
            raise ValueError("streak.days 应是 2 到 366 之间的整数（连续打卡几天）")
        return v

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> Any:
        return _entry_points(v, "streak")


class TiersFile(Part):
    """The whole file: ``tiers`` from the lowest up, ``points``, ``streak``, ``downgrade`` and ``privileges``."""

    unknown_key: ClassVar[str] = "未知的字段 {key}（可用：{known}）"
    not_a_mapping: ClassVar[str] = "文件应是一个映射，至少包含 tiers: 等级列表"

    tiers: list[TierSpec] = Field(None, validate_default=True)  # type: ignore[assignment]
    points: Points | None = None  # type: ignore[valid-type]
    streak: StreakSpec | None = None
    downgrade: DowngradeSpec | None = None
    privileges: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("tiers", mode="before")
    @classmethod
    def _ladder(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise ValueError("tiers 应是非空的等级列表（从低到高）")
        return v

    @field_validator("streak", mode="before")
    @classmethod
    def _streak_needs_checkins(cls, v: Any, info: ValidationInfo) -> Any:
        points = info.data.get("points")
        if v is not None and (points is None or getattr(points, "checkin", None) is None):
            raise ValueError("streak 奖励连续打卡，需要 points 里有 checkin 规则")
        return v

    @field_validator("privileges", mode="before")
    @classmethod
    def _privileges(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("privileges 应是「等级: [权益, …]」的映射")
        problems = [(k, f"{k} 的权益应是文字列表") for k, items in v.items() if not _texts(items)]
        problems += [(k, f"privileges 里的 {k} 不是已定义的等级") for k in v if k not in _ids(info)]
        if problems:
            _entry_problems(problems)
        return v

    def rules(self, version: str) -> Rules:
        privileges = {str(k): tuple(i.strip() for i in items) for k, items in self.privileges.items()}
        tiers = tuple(Tier(t.id, (t.name or t.id).strip(), t.requires.needs() if t.requires else {}, t.group_tag,
                           privileges.get(t.id, ())) for t in self.tiers)
        dg = self.downgrade
        return Rules(tiers=tiers, points=self.points.rules() if self.points else {},
                     downgrade=Downgrade(dg.inactive_days, dg.to, tuple(dg.keep)) if dg else None, version=version,
                     streak=Streak(self.streak.days, self.streak.points) if self.streak else None)


def _declared_ids(data: Any) -> tuple[set[str], str | None]:
    """The tier ids the file defines (well-formed ones) and the first tier's id."""
    items = data.get("tiers") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return set(), None
    ids = [i.get("id") for i in items if isinstance(i, dict)]
    ok = {i for i in ids if isinstance(i, str) and ID_RX.fullmatch(i)}
    first = items[0].get("id") if items and isinstance(items[0], dict) else None
    return ok, first


def parse_rules(text: str, path: str) -> Rules:
    """Validate a tiers.yaml text; raise FileProblems naming file, line and problem."""
    data, lines = load_yaml(text, path)
    ids, first = _declared_ids(data)
    model = validate(TiersFile, data, lines, context={"ids": ids, "first": first, "seen": set()})
    return model.rules(hashlib.sha256(text.encode()).hexdigest()[:12])


def load_rules(path: Path) -> Rules:
    return parse_rules(read_text(path), str(path))
