"""The SOP script file contract (``sop_templates/*.yaml``) and its validation.

A file holds one script. :func:`parse_script` checks every field and names the
file, line and problem of each thing wrong (``bot.yamldoc``); a file with any
problem is refused whole and the previous version of that script stays live.

A parsed :class:`Script` carries its *body*: the file's data with the defaults
it was loaded with and the source of every template it uses. The body is what a
run's version row stores, so a run renders the texts it started with even after
the files change; :meth:`Script.from_body` rebuilds the script from it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bot.hours import QuietHours, parse_quiet
from bot.sop.contract import (
    Images,
    Links,
    Name,
    Refused,
    Staff,
    attachments,
    checking,
    inline_text,
    must_be,
    names,
    one_text,
    refused,
    template_file,
    too_many_attachments,
)
from bot.sop.timing import At, Late, Repeat, format_duration, parse_at, parse_duration
from bot.yamldoc import FileProblems, Lines, Problem, load_yaml
from bot.yamlmodel import FileModel, Units

if TYPE_CHECKING:
    from bot.templates import Templates
    from bot.textcheck import TextCheck

TRIGGERS = ("member_joined", "contact_added", "group_created", "tag_added", "tier_changed", "churned", "silent",
            "manual")
MEMBER_TRIGGERS = ("contact_added", "tag_added", "tier_changed", "churned", "silent")  # per: member only
SILENT_DAYS = (1, 365)
STOP_EVENTS = ("member_left", "tier_changed", "tag_added", "contact_removed", "group_dismissed")
VIAS = ("reply", "group_robot", "appchat", "mass_send", "remind_staff", "app_message", "welcome", "mark_tag",
        "survey")
GROUP_VIAS = ("reply", "group_robot", "appchat")
ID_RX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STEP_ID_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
TEMPLATE_RX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.j2")
MAX_STEPS = 200
MAX_TEXT = 4000
WELCOME_WINDOW = timedelta(seconds=20)

TRIGGER_NAMES = {"member_joined": "成员入群", "contact_added": "添加好友", "group_created": "建群",
                 "tag_added": "打标签", "tier_changed": "等级变化", "churned": "客户流失",
                 "silent": "客户沉默", "manual": "手动启动"}
VIA_NAMES = {"reply": "群内回复", "group_robot": "群机器人", "appchat": "群聊消息", "mass_send": "群发任务",
             "remind_staff": "提醒员工", "app_message": "应用消息", "welcome": "欢迎语", "mark_tag": "打标签",
             "survey": "满意度调查"}
# via: survey — what a step says when it does not (the score question; the question a detractor gets)
SURVEY_QUESTION = "您愿意把我们推荐给朋友吗？请回复 0–10 的数字（0 表示完全不愿意，10 表示非常愿意）"
SURVEY_REASON = "谢谢您的反馈！方便说说哪里让您不满意吗？我们会认真改进🙏"
MAX_SURVEY_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a script gets when it does not say (config ``[sop]``)."""

    quiet_hours: str = "22:00-08:00"
    late_grace: str = "2h"
    late_then: str = "send"

    @classmethod
    def of(cls, sop: Any) -> Defaults:
        """The defaults the ``[sop]`` config section gives."""
        return cls(quiet_hours=sop.quiet_hours, late_grace=sop.late_grace, late_then=sop.late_then)


@dataclass(frozen=True, slots=True)
class Where:
    groups: tuple[str, ...] = ()   # ids or names, shell-style patterns ("*", "禾屿*"); empty = every group
    tiers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    states: tuple[str, ...] = ()   # contact_added: the channel code (State) the customer came by

    def group_ok(self, chat_id: str, chat_name: str) -> bool:
        if not self.groups:
            return True
        return any(fnmatch.fnmatchcase(chat_id, g) or (chat_name and fnmatch.fnmatchcase(chat_name, g))
                   for g in self.groups)

    def member_ok(self, tier: str, tier_name: str, tags: Iterable[str]) -> bool:
        if self.tiers and tier not in self.tiers and tier_name not in self.tiers:
            return False
        return not self.tags or bool(set(self.tags) & set(tags))

    def state_ok(self, state: str) -> bool:
        return not self.states or any(fnmatch.fnmatchcase(state, s) for s in self.states)


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    key: str                   # its id, else its number (1-based)
    at: At
    via: str
    source: str = ""           # the text to render (inline text or the template file's content)
    template: str = ""         # template file name, when the text comes from one
    when: str = ""
    stage: Annotated[str, must_be(str, "stage 应是文字（阶段名称，例如 引导）")] = ""
    repeat: Repeat | None = None
    late: Late | None = None   # None: the script's
    staff: tuple[str, ...] = ()
    mention: Annotated[bool | None, must_be((bool, type(None)), "mention 应是 true 或 false")] = None
    add_tag: tuple[str, ...] = ()
    remove_tag: tuple[str, ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()
    window: timedelta | None = None   # via: survey — how long a reply counts as the answer (None: sop.survey_window)
    reason: str = ""                  # via: survey — the question a detractor (0–6) gets
    line: int = field(default=0, compare=False)

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True, slots=True)
class Script:
    id: str
    name: str
    trigger: str
    per: str
    steps: tuple[Step, ...]
    late: Late
    where: Where = field(default_factory=Where)
    quiet: QuietHours | None = None
    stop_on: tuple[str, ...] = ()
    staff: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    silent_days: int = 0     # trigger: silent — the days of silence that start a run
    version: str = ""
    file: str = ""
    body: dict[str, Any] = field(default_factory=dict, compare=False)

    def step(self, key: str) -> Step | None:
        return next((s for s in self.steps if s.key == key), None)

    def quiet_for(self, step: Step) -> QuietHours | None:
        """Quiet hours hold messages back; a welcome (20 s window) and tagging are not held."""
        return None if step.via in ("welcome", "mark_tag") else self.quiet

    @property
    def uses_chat(self) -> bool:
        return any(s.via in GROUP_VIAS for s in self.steps)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Script:
        """The script a version row stores (trusted: it was validated when it loaded)."""
        script, problems = _load(body["data"], Lines(body.get("file", "")), sources=dict(body.get("sources", {})),
                                 file=body.get("file", ""), version=body.get("version", ""), check=False)
        if script is None:
            raise FileProblems(problems)
        return script


# ── the file contract ──────────────────────────────────────────────────────────
#
# A file is checked unit by unit (bot.yamlmodel.Units): the script's own
# fields (ScriptModel), then each step (StepModel), then the rules across steps.


def sample_context() -> dict[str, Any]:
    """What conditions and texts see, with neutral values (for checking and previews)."""
    from bot.members import MemberProfile

    member = MemberProfile(id="sample", name="小明").for_template()
    member.update({"messages": 0, "referrals": 0, "spend": 0.0, "last_active_at": None})
    return {
        "member": member,
        "group": {"id": "", "name": "示例群", "members": 0},
        "staff": {"id": ""},
        "run": {"id": 0, "script": "", "name": "", "started_at": None, "day": 0, "occurrence": 1},
        "step": {"number": 1, "stage": "", "at": ""},
        "trigger": {"type": "", "tag": "", "from_tier": "", "to_tier": "", "state": ""},
        "due": None,
        "checkins": {"yesterday": {"date": "", "count": 0, "names": [], "streaks": []},
                     "today": {"date": "", "count": 0, "names": []}, "group_size": 0},
        "days_since": lambda _when=None: 9999.0,
    }


def _condition_error(templates: Templates | None, expr: str) -> str | None:
    if templates is None:
        return None
    from jinja2 import TemplateError

    try:
        fn = templates.env.compile_expression(expr, undefined_to_none=False)
    except TemplateError as exc:
        return f"条件写法有误：{exc}"
    try:
        bool(fn(**sample_context()))
    except TemplateError as exc:
        return f"条件里用到了不存在的字段：{exc}"
    except Exception:  # noqa: S110 - a type mismatch on sample values is not a problem of the file
        pass
    return None



def _duration(name: str, value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}：{exc}") from None


def _stop_event(event: str) -> str | None:
    """Why ``event`` is not something ``stop_on`` can name (``tag_added:复购`` names a tag)."""
    base, colon, qualifier = event.partition(":")
    if base not in STOP_EVENTS:
        return (f"stop_on 只能包含 {', '.join(STOP_EVENTS)}（tag_added 和 tier_changed 可以写成 tag_added:复购、"
                f"tier_changed:vip），收到 {event!r}")
    if colon and (base not in ("tag_added", "tier_changed") or not qualifier.strip()):
        return f"只有 tag_added:标签 和 tier_changed:等级 可以带冒号，收到 {event!r}"
    return None


def step_items(value: Any) -> list[Any]:
    """``steps:`` — a list of 1 to MAX_STEPS steps."""
    if not isinstance(value, list) or not value:
        raise ValueError("steps 应是非空的步骤列表")
    if len(value) > MAX_STEPS:
        raise ValueError(f"步骤太多（{len(value)} 步，最多 {MAX_STEPS} 步）")
    return value


def _extra_keys(raw: dict[Any, Any], known: tuple[str, ...], name: str) -> None:
    extra = set(raw) - set(known)
    if extra:
        raise ValueError(f"{name} 里有未知字段 {', '.join(sorted(map(str, extra)))}（可用：{', '.join(known)}）")


class LateModel(FileModel):
    """``late: {grace: 2h, then: send|skip}``."""

    grace: timedelta = timedelta(hours=2)
    then: str = "send"

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("late 应写成 {grace: 2h, then: send|skip}")
        _extra_keys(raw, ("grace", "then"), "late")
        return raw

    @field_validator("grace", mode="before")
    @classmethod
    def _grace(cls, v: Any) -> timedelta:
        return _duration("late.grace", v)

    @field_validator("then", mode="before")
    @classmethod
    def _then(cls, v: Any) -> str:
        if v not in ("send", "skip"):
            raise ValueError(f"late.then 只能是 send（照发）或 skip（跳过），收到 {v!r}")
        return v

    def to_late(self) -> Late:
        return Late(self.grace, self.then)


class RepeatModel(FileModel):
    """``repeat: {every: 1d, times: 21}`` (``repeat: 1d`` alone: every day until the run stops)."""

    every: timedelta = Field(default="", validate_default=True)
    times: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = {"every": raw}
        if not isinstance(raw, dict):
            raise ValueError("repeat 应写成 {every: 1d, times: 21}（times 不写则一直重复到停止）")
        _extra_keys(raw, ("every", "times"), "repeat")
        return raw

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, v: Any) -> timedelta:
        every = _duration("repeat.every", v)
        if every < timedelta(hours=1):
            raise ValueError("repeat.every 至少 1h")
        return every

    @field_validator("times", mode="before")
    @classmethod
    def _times(cls, v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000):
            raise ValueError("repeat.times 应是 1 到 1000 的整数")
        return v

    def to_repeat(self) -> Repeat:
        return Repeat(self.every, self.times)


class StepModel(FileModel):
    """One of ``steps:`` (the order is the one an unknown key's problem lists)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: Any = None
    at: At
    via: str = "reply"
    text: str | None = None
    template: str | None = None
    when: str | None = None
    stage: Annotated[str, must_be(str, "stage 应是文字（阶段名称，例如 引导）")] = ""
    repeat: RepeatModel | None = None
    late: LateModel | None = None
    staff: Staff = ()
    mention: Annotated[bool | None, must_be((bool, type(None)), "mention 应是 true 或 false")] = None
    add_tag: Annotated[tuple[Name, ...], names("add_tag")] = ()
    remove_tag: Annotated[tuple[Name, ...], names("remove_tag")] = ()
    images: Images = ()
    links: Links = ()
    window: timedelta | None = None
    reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _what_a_step_needs(cls, raw: Any, info: ValidationInfo) -> Any:
        """A mapping with an ``at`` and its text (a template, or nothing for ``via: mark_tag`` and ``survey``)."""
        if not isinstance(raw, dict):
            raise ValueError("每个步骤应是映射，例如 {at: \"+0m\", via: reply, text: …}")
        raw = one_text(raw)
        context = info.context or {}
        number, line = context.get("number", 0), context.get("line", 0)
        if "at" not in raw:
            raw = {**raw, "at": Refused(f"第 {number} 步缺少 at（什么时候发：+0m、day 1 09:30 …）", line)}
        if raw.get("text") is None and raw.get("template") is None and raw.get("via", "reply") == "survey":
            raw = {**raw, "text": SURVEY_QUESTION}
        if raw.get("text") is None and raw.get("template") is None and raw.get("via", "reply") != "mark_tag":
            raw = {**raw, "text": Refused(f"第 {number} 步需要 text（直接写内容）或 template（模板文件名）", line)}
        return raw

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str | int) or not STEP_ID_RX.fullmatch(str(v))):
            raise ValueError("步骤 id 只能用字母、数字、- _ .（最长 40 个字符）")
        return v

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> At:
        return parse_at(refused(v))

    @field_validator("via", mode="before")
    @classmethod
    def _via(cls, v: Any) -> Any:
        if v not in VIAS:
            raise ValueError(f"via 只能是 {' | '.join(VIAS)}，收到 {v!r}")
        return v

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, v: Any, info: ValidationInfo) -> Any:
        if refused(v) is None:
            return None
        return inline_text(v, info, MAX_TEXT, lambda n: f"text 太长（{n} 字，最多 {MAX_TEXT} 字）")

    @field_validator("template", mode="before")
    @classmethod
    def _template(cls, v: Any, info: ValidationInfo) -> Any:
        if refused(v) is None:
            return None
        return template_file(v, info, TEMPLATE_RX,
                             "template 应是 sop_templates/templates/ 下的 .j2 文件名，例如 day1.j2")

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise ValueError("when 应是条件表达式，例如 \"member.points < 10\"")
        bad = _condition_error((info.context or {}).get("templates"), v) if checking(info) else None
        if bad:
            raise ValueError(bad)
        return v

    @field_validator("late", mode="before")
    @classmethod
    def _late(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("late 应写成 {grace: 2h, then: send|skip}")
        return v

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> timedelta:
        window = _duration("window", v)
        if not timedelta(hours=1) <= window <= MAX_SURVEY_WINDOW:
            raise ValueError("window 应在 1h 到 30d 之间，例如 48h")
        return window

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("reason 应是文字：给打 0–6 分的成员的追问")
        return inline_text(v, info, MAX_TEXT, lambda n: f"reason 太长（{n} 字，最多 {MAX_TEXT} 字）")

    def rules(self, trigger: str) -> list[tuple[str, tuple[str, ...]]]:
        """Problems of fields that are right alone but not together (message, the key it is about)."""
        out: list[tuple[str, tuple[str, ...]]] = []
        many = too_many_attachments(attachments(self.images, self.links))
        if many:
            out.append((many, ()))
        if self.via == "mark_tag" and not (self.add_tag or self.remove_tag):
            out.append(("via: mark_tag 需要 add_tag 或 remove_tag", ("via",)))
        if self.via != "mark_tag" and (self.add_tag or self.remove_tag):
            out.append(("add_tag / remove_tag 只用于 via: mark_tag", ("add_tag",)))
        if (self.images or self.links) and self.via not in ("mass_send", "welcome"):
            out.append(("images / links 只能随 mass_send 或 welcome 发送", ("images",)))
        if self.via != "survey" and (self.window is not None or self.reason is not None):
            out.append(("window / reason 只用于 via: survey", ("window" if self.window is not None else "reason",)))
        if self.via == "welcome":
            out += self._welcome_rules(trigger)
        if self.via in GROUP_VIAS and trigger == "contact_added":
            out.append((f"via: {self.via} 要发到群里，trigger: contact_added 没有群；"
                        "用 welcome、mass_send 或 remind_staff", ("via",)))
        return out

    def _welcome_rules(self, trigger: str) -> list[tuple[str, tuple[str, ...]]]:
        out: list[tuple[str, tuple[str, ...]]] = []
        if trigger != "contact_added":
            out.append(("via: welcome 只能用于 trigger: contact_added（欢迎语码来自添加好友事件）", ("via",)))
        elif self.at.kind != "offset" or self.at.offset != timedelta(0):
            out.append(("via: welcome 只能在 at: \"+0m\" 发送：欢迎语码 20 秒内有效", ("at",)))
        if self.repeat is not None:
            out.append(("via: welcome 不能重复", ("repeat",)))
        return out

    def to_step(self, index: int, sources: dict[str, str], line: int) -> Step:
        return Step(index=index, key=str(self.id) if self.id is not None else str(index + 1), at=self.at,
                    via=self.via, source=sources[self.template] if self.template else self.text or "",
                    template=self.template or "", when=(self.when or "").strip(), stage=self.stage.strip(),
                    repeat=self.repeat.to_repeat() if self.repeat else None,
                    late=self.late.to_late() if self.late else None, staff=self.staff, mention=self.mention,
                    add_tag=self.add_tag, remove_tag=self.remove_tag,
                    attachments=attachments(self.images, self.links), window=self.window,
                    reason=(self.reason or SURVEY_REASON) if self.via == "survey" else "", line=line)


class WhereModel(FileModel):
    """``where:`` — which groups, tiers, tags and channel codes a script starts for."""

    key_label: ClassVar[str] = "where："

    groups: Annotated[tuple[Name, ...], names("where.groups")] = ()
    tiers: Annotated[tuple[Name, ...], names("where.tiers")] = ()
    tags: Annotated[tuple[Name, ...], names("where.tags")] = ()
    states: Annotated[tuple[Name, ...], names("where.states")] = ()

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("where 应写成 {groups: [\"*\"], tiers: [], tags: []}")
        return raw

    def to_where(self) -> Where:
        return Where(groups=() if "*" in self.groups else self.groups, tiers=self.tiers, tags=self.tags,
                     states=self.states)


def script_trigger(value: Any) -> str:
    """The trigger the steps are checked against: ``manual`` when the file's is wrong."""
    return value if isinstance(value, str) and value in TRIGGERS else "manual"


def script_per(value: Any, trigger: str) -> str:
    """``per`` as written, else what the trigger implies (``group`` for group_created, else ``member``)."""
    return value if value in ("member", "group") else "group" if trigger == "group_created" else "member"


class ScriptModel(FileModel):
    """The script's own fields; its steps are checked one by one (:class:`StepModel`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: Any = Field(default=None, validate_default=True)
    name: Any = None
    description: Annotated[str, must_be(str, "description 应是文字")] = ""
    enabled: Annotated[bool, must_be(bool, "enabled 应是 true 或 false")] = True
    trigger: Any = Field(default=None, validate_default=True)
    where: WhereModel | None = None
    per: Any = None
    quiet_hours: Any = None
    late: LateModel = Field(default_factory=LateModel)
    stop_on: Annotated[tuple[Name, ...], names("stop_on", _stop_event)] = ()
    staff: Staff = ()
    silent_days: Any = Field(default=None, validate_default=True)
    steps: Any = Field(default=None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, raw: Any, info: ValidationInfo) -> Any:
        """What the file does not say comes from config ``[sop]`` (``defaults`` in the context)."""
        defaults: Defaults | None = (info.context or {}).get("defaults")
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        raw.setdefault("quiet_hours", defaults.quiet_hours if defaults else "")
        if raw.get("late") is None:
            raw["late"] = {"grace": defaults.late_grace, "then": defaults.late_then} if defaults else {}
        return raw

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if not isinstance(v, str) or not ID_RX.fullmatch(v):
            raise ValueError("id 应是小写字母、数字、- 或 _ 组成的标识，例如 newcomer-7d")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("name 应是脚本的中文名称")
        return v

    @field_validator("trigger", mode="before")
    @classmethod
    def _trigger(cls, v: Any) -> Any:
        if script_trigger(v) != v:
            raise ValueError(f"trigger 只能是 {' | '.join(TRIGGERS)}，收到 {v!r}")
        return v

    @field_validator("per", mode="before")
    @classmethod
    def _per(cls, v: Any, info: ValidationInfo) -> Any:
        trigger = info.data.get("trigger", "manual")
        if v not in ("member", "group"):
            raise ValueError(f"per 只能是 member（每位成员一次）或 group（每个群一次），收到 {v!r}")
        if v == "member" and trigger == "group_created":
            raise ValueError("trigger: group_created 只能 per: group（建群时还没有成员）")
        if v == "group" and trigger in MEMBER_TRIGGERS:
            raise ValueError(f"trigger: {trigger} 针对一位成员，只能 per: member")
        return v

    @field_validator("silent_days", mode="before")
    @classmethod
    def _silent_days(cls, v: Any, info: ValidationInfo) -> int:
        trigger = info.data.get("trigger")
        if trigger != "silent":
            if v is not None:
                raise ValueError("silent_days 只用于 trigger: silent")
            return 0
        low, high = SILENT_DAYS
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"trigger: silent 需要 silent_days：沉默多少天（{low}–{high} 的整数），"
                             "例如 silent_days: 14")
        return v

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours(cls, v: Any) -> QuietHours | None:
        if not isinstance(v, str):
            raise ValueError("quiet_hours 应是带引号的时间段，例如 \"22:00-08:00\"（\"off\" 关闭）")
        try:
            return parse_quiet(v)
        except ValueError as exc:
            raise ValueError(f"quiet_hours：{exc}") from None

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> Any:
        return step_items(v)


def _steps(units: Units, raw: Any, trigger: str, per: str) -> list[Step]:
    """Each step, then the rules across steps (ids used once, one welcome, tagging per member)."""
    try:
        items = step_items(raw)
    except ValueError:
        return []  # the script's own check names it
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        model = units.check(StepModel, item, "steps", i, label=f"第 {i + 1} 步：", number=i + 1)
        if model is None:
            continue
        for message, key in model.rules(trigger):
            units.problem(message, "steps", i, *key)
        step = model.to_step(i, units.context["sources"], units.lines.line("steps", i))
        if step.key in seen:
            units.problem(f"步骤 id {step.key} 和第 {seen[step.key]} 步重复", "steps", i, "id")
            continue
        seen[step.key] = step.number
        if step.via == "welcome" and any(s.via == "welcome" for s in steps):
            units.problem("一个脚本只能有一个 welcome 步骤（欢迎语码只能用一次）", "steps", i)
        if step.via == "mark_tag" and per == "group":
            units.problem("via: mark_tag 给成员打标签，只能用于 per: member", "steps", i, "via")
        if step.via == "survey" and per == "group":
            units.problem("via: survey 私聊问一位成员，只能用于 per: member", "steps", i, "via")
        steps.append(step)
    return steps


def _body(data: dict[str, Any], head: ScriptModel, sources: dict[str, str], file: str, version: str
          ) -> dict[str, Any]:
    """What a run's version row stores: the data with the defaults it loaded with, and its templates' texts."""
    stored = dict(data)
    stored["quiet_hours"] = head.quiet_hours.text if head.quiet_hours is not None else "off"
    stored["late"] = {"grace": format_duration(head.late.grace), "then": head.late.then}
    body = {"data": stored, "sources": {k: sources[k] for k in sorted(sources)}, "file": file}
    body["version"] = version or hashlib.sha256(
        json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return body


def _load(data: dict[str, Any], lines: Lines, *, sources: dict[str, str], file: str, version: str, check: bool,
          templates: Templates | None = None, templates_dir: Path | None = None,
          defaults: Defaults | None = None, lexicon: TextCheck | None = None) -> tuple[Script | None, list[Problem]]:
    # a step's text is rendered once with sample values when checked (within the budget, ≤ two messages),
    # and with a lexicon it must hold no reject term
    units = Units(lines, {"templates": templates, "templates_dir": templates_dir, "sources": sources,
                          "check": check, "defaults": defaults, "sample": sample_context() if check else None,
                          "lexicon": lexicon})
    head = units.check(ScriptModel, data)
    trigger = head.trigger if head else script_trigger(data.get("trigger"))
    per = script_per(head.per if head else data.get("per"), trigger)
    steps = _steps(units, data.get("steps"), trigger, per)
    if head is None:
        return None, units.sorted()
    body = _body(data, head, sources, file, version)
    script = Script(id=head.id, name=(head.name or head.id).strip(), trigger=trigger, per=per, steps=tuple(steps),
                    late=head.late.to_late(), where=head.where.to_where() if head.where else Where(),
                    quiet=head.quiet_hours, stop_on=head.stop_on, staff=head.staff,
                    description=head.description.strip(), enabled=head.enabled, silent_days=head.silent_days,
                    version=body["version"], file=file, body=body)
    return script, units.sorted()


def parse_script(text: str, path: str, *, templates: Templates | None = None, templates_dir: Path | None = None,
                 defaults: Defaults | None = None, lexicon: TextCheck | None = None) -> Script:
    """Validate one script file's text; raise FileProblems naming file, line and problem."""
    data, lines = load_yaml(text, path)
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(), "脚本文件应是一个映射：id、name、trigger、steps …")])
    script, problems = _load(data, lines, sources={}, file=path, version="", check=True, templates=templates,
                             templates_dir=templates_dir, defaults=defaults or Defaults(), lexicon=lexicon)
    if problems or script is None:
        raise FileProblems(problems)
    return script
