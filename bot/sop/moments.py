"""The Moments calendar (``sop_templates/moments.yaml``): the weekly 朋友圈 plan and its exceptions.

The file is a contract (see docs/sop.md): a slot list per weekday, date
overrides (a holiday replaces or skips a day), campaigns (extra slots over a
date range), default staff and audience, and an approval switch. What operators
change in chat (``/moments skip|set|approve``, the ``moment_override`` table) is
laid over it by :meth:`Calendar.plan`, which answers "what goes out on this
date" — for the publisher, ``/moments week`` and the CLI alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, field_validator, model_validator

from bot.hours import at_local
from bot.sop.contract import (
    Images,
    Links,
    Name,
    Refused,
    Staff,
    attachments,
    inline_text,
    must_be,
    names,
    one_text,
    refused,
    template_error,
    template_file,
    too_many_attachments,
)
from bot.sop.script import TEMPLATE_RX
from bot.sop.timing import WEEKDAY_CN, WEEKDAYS, parse_clock
from bot.yamldoc import FileProblems, Problem, load_yaml, read_text
from bot.yamlmodel import FileModel, Units

if TYPE_CHECKING:
    from bot.templates import Templates
    from bot.textcheck import TextCheck

MOMENT_VIAS = ("moment_task", "remind_staff")
MAX_MOMENT_TEXT = 2000
MAX_SLOT_ID = 64
SLOT_ID_PROBLEM = f"时段 id 应是不超过 {MAX_SLOT_ID} 个字符的文字"
Clock = time
ORIGIN_NAMES = {"weekly": "周计划", "override": "节日安排", "campaign": "活动", "chat": "聊天设置"}


@dataclass(frozen=True, slots=True)
class Slot:
    id: str
    time: time
    theme: str = ""
    source: str = ""          # the text (inline or the template's content), jinja2
    template: str = ""
    attachments: tuple[dict[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    staff: tuple[str, ...] = ()
    via: str = ""             # "" = config moments.delivery
    origin: str = "weekly"    # weekly | override | campaign | chat
    campaign: str = ""
    line: int = 0

    @property
    def hhmm(self) -> str:
        return self.time.strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    start: date
    end: date
    slots: tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class DayOverride:
    day: date
    note: str
    slots: tuple[Slot, ...] | None   # None: nothing is posted that day


@dataclass(slots=True)
class ChatChanges:
    """The active ``moment_override`` rows."""

    skips: dict[str, dict[str, str]] = field(default_factory=dict)        # date -> {slot id or "*": actor}
    sets: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)  # (weekday, HH:MM) -> (text, actor)
    approvals: dict[str, str] = field(default_factory=dict)               # date -> actor

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> ChatChanges:
        out = cls()
        for r in rows:
            if not r.active:
                continue
            if r.kind == "skip":
                out.skips.setdefault(r.date, {})[r.slot_id or "*"] = r.actor
            elif r.kind == "set":
                out.sets[(WEEKDAYS.index(r.weekday), r.time)] = (r.text, r.actor)
            elif r.kind == "approve":
                out.approvals[r.date] = r.actor
        return out


@dataclass(frozen=True, slots=True)
class PlannedSlot:
    slot: Slot
    day: date
    at: datetime                       # aware UTC
    skipped_by: str = ""               # who skipped it in chat
    replaced_by: str = ""              # who changed its text in chat


@dataclass(frozen=True, slots=True)
class DayPlan:
    day: date
    slots: tuple[PlannedSlot, ...]
    note: str = ""                     # the override's or campaign's note
    skipped_day: bool = False          # the file skips the whole day (a holiday)
    approval_required: bool = False
    approved_by: str = ""

    @property
    def weekday(self) -> str:
        return WEEKDAY_CN[self.day.weekday()]


@dataclass(frozen=True, slots=True)
class Calendar:
    week: dict[int, tuple[Slot, ...]]
    overrides: dict[date, DayOverride] = field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()
    approval: bool = False
    staff: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    version: str = ""
    file: str = ""

    def plan(self, day: date, tz: ZoneInfo, chat: ChatChanges | None = None, *, force_approval: bool = False
             ) -> DayPlan:
        """Every slot of ``day`` (sorted by time), with what chat changed and whether it is approved."""
        chat = chat or ChatChanges()
        note = ""
        skipped_day = False
        override = self.overrides.get(day)
        slots: list[Slot]
        if override is not None:
            note = override.note
            if override.slots is None:
                skipped_day, slots = True, []
            else:
                slots = list(override.slots)
        else:
            slots = list(self.week.get(day.weekday(), ()))
        replaced: dict[str, str] = {}
        if not skipped_day and override is None:
            for (weekday, hhmm), (text, actor) in sorted(chat.sets.items()):
                if weekday != day.weekday():
                    continue
                at = parse_clock(hhmm)
                same = next((i for i, s in enumerate(slots) if s.time == at), None)
                if same is not None:
                    old = slots[same]
                    slots[same] = Slot(id=old.id, time=old.time, theme=old.theme, source=text,
                                       attachments=old.attachments, tags=old.tags, tiers=old.tiers, staff=old.staff,
                                       via=old.via, origin="chat")
                    replaced[old.id] = actor
                else:
                    sid = f"chat-{WEEKDAYS[weekday]}-{hhmm.replace(':', '')}"
                    slots.append(Slot(id=sid, time=at, source=text, origin="chat", theme="聊天设置"))
                    replaced[sid] = actor
        for c in self.campaigns:
            if c.start <= day <= c.end:
                slots.extend(c.slots)
                note = note or c.name
        skips = chat.skips.get(day.isoformat(), {})
        planned = tuple(PlannedSlot(slot=s, day=day, at=at_local(day, s.time, tz),
                                    skipped_by=skips.get(s.id) or skips.get("*", ""),
                                    replaced_by=replaced.get(s.id, ""))
                        for s in sorted(slots, key=lambda s: (s.time, s.id)))
        required = self.approval or force_approval
        return DayPlan(day=day, slots=planned, note=note, skipped_day=skipped_day, approval_required=required,
                       approved_by=chat.approvals.get(day.isoformat(), ""))

    def slot_ids(self) -> set[str]:
        ids = {s.id for slots in self.week.values() for s in slots}
        ids |= {s.id for o in self.overrides.values() for s in (o.slots or ())}
        ids |= {s.id for c in self.campaigns for s in c.slots}
        return ids


def slot_text(templates: Templates, slot: Slot, day: date) -> str:
    """A slot's text for ``day`` (its template sees ``date``, ``weekday``, ``theme`` and ``slot``)."""
    return templates.render_string(slot.source, **slot_values(slot.id, slot.hhmm, slot.theme, day))


def slot_values(slot_id: str, hhmm: str, theme: str, day: date) -> dict[str, Any]:
    return {"date": day.isoformat(), "weekday": WEEKDAY_CN[day.weekday()], "theme": theme,
            "slot": {"id": slot_id, "time": hhmm, "theme": theme}}


SAMPLE_SLOT = slot_values("sample", "09:00", "", date(2026, 1, 5))  # what a text is tried with when checked


def text_problem(templates: Templates | None, source: str) -> str | None:
    """Why ``source`` cannot be a Moments text (None when it can): it must render within the budget with
    sample values, in at most MAX_MOMENT_TEXT characters."""
    return template_error(templates, source, {"sample": SAMPLE_SLOT, "limit": MAX_MOMENT_TEXT})


def calendar_findings(calendar: Calendar, templates: Templates, lexicon: TextCheck | None) -> list[str]:
    """The compliance lexicon's terms in every slot of the calendar file, rendered with sample values
    (``/moments reload``): a ``reject`` one holds its slot for ``/moments approve``, a ``review`` one is a
    warning. Each named by file, line and slot."""
    return [f"{calendar.file}:{line}: {text}" for line, text in calendar_findings_at(calendar, templates, lexicon)]


def calendar_findings_at(calendar: Calendar, templates: Templates, lexicon: TextCheck | None
                         ) -> list[tuple[int, str]]:
    """:func:`calendar_findings` as (line, what was found in the slot) pairs (``sop check``)."""
    if lexicon is None:
        return []
    slots = [s for day in calendar.week.values() for s in day]
    slots += [s for o in calendar.overrides.values() for s in (o.slots or ())]
    slots += [s for c in calendar.campaigns for s in c.slots]
    out = []
    for slot in slots:
        try:
            text = templates.trial(slot.source, limit=MAX_MOMENT_TEXT, **SAMPLE_SLOT)
        except Exception:  # noqa: S112 - the calendar's contract refused it already
            continue
        for f in lexicon.findings(text):
            held = "；发布前需要 /moments approve 审批" if f.refuses else ""
            out.append((slot.line, f"时段 {slot.id}（{slot.hhmm}）{f}{held}"))
    return out


# ── the file contract ──────────────────────────────────────────────────────────
#
# The calendar is checked unit by unit (bot.yamlmodel.Units): its own fields
# (CalendarModel), the week (WeekModel), each override and campaign, and each
# slot (SlotModel); then the rules across them (ids and dates used once).


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def slot_items(value: Any) -> list[Any]:
    """A list of slots (absent: none)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("应是时段列表（每项 {time: …, text: …}）")
    return value


def _listed(shape: Any, value: Any) -> list[Any]:
    """``value`` as ``shape`` accepts it, or nothing (the unit's own check names the problem)."""
    try:
        return shape(value)
    except ValueError:
        return []


class AudienceModel(FileModel):
    """``audience: {tags: [标签], tiers: [等级]}`` (neither: every customer)."""

    key_label: ClassVar[str] = "audience："

    tags: Annotated[tuple[Name, ...], names("audience.tags")] = ()
    tiers: Annotated[tuple[Name, ...], names("audience.tiers")] = ()

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("audience 应写成 {tags: [标签], tiers: [等级]}（都不写 = 全部客户）")
        return raw


class SlotModel(FileModel):
    """One slot: a time of day and what is posted then."""

    key_label: ClassVar[str] = "时段："

    id: Any = None
    time: Clock = Field(default="", validate_default=True)
    theme: Annotated[str, must_be(str, "theme 应是文字")] = ""
    text: str | None = None
    template: str | None = None
    images: Images = ()
    links: Links = ()
    audience: AudienceModel | None = None
    staff: Staff = ()
    via: Any = ""

    @model_validator(mode="before")
    @classmethod
    def _what_a_slot_needs(cls, raw: Any, info: ValidationInfo) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("每个时段应是映射：{time: \"08:30\", theme: …, text: …}")
        raw = one_text(raw)
        if raw.get("text") is None and raw.get("template") is None:
            line = (info.context or {}).get("line", 0)
            raw = {**raw, "text": Refused("时段需要 text（文案）或 template（模板文件名）", line)}
        return raw

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Clock:
        try:
            return parse_clock(v)
        except ValueError as exc:
            raise ValueError(f"time：{exc}") from None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_SLOT_ID:
            raise ValueError(SLOT_ID_PROBLEM)
        return v

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, v: Any, info: ValidationInfo) -> Any:
        if refused(v) is None:
            return None
        return inline_text(v, info, MAX_MOMENT_TEXT, lambda n: f"朋友圈文字最多 {MAX_MOMENT_TEXT} 字，这里有 {n} 字")

    @field_validator("template", mode="before")
    @classmethod
    def _template(cls, v: Any, info: ValidationInfo) -> Any:
        if refused(v) is None:
            return None
        return template_file(v, info, TEMPLATE_RX, "template 应是 sop_templates/templates/ 下的 .j2 文件名")

    @field_validator("via", mode="before")
    @classmethod
    def _via(cls, v: Any) -> Any:
        if v and v not in MOMENT_VIAS:
            raise ValueError(f"via 只能是 moment_task（企业微信朋友圈任务）或 remind_staff（提醒员工自己发），"
                             f"收到 {v!r}")
        return v or ""

    def to_slot(self, default_id: str, origin: str, campaign: str, sources: dict[str, str], line: int) -> Slot:
        audience = self.audience or AudienceModel()
        return Slot(id=(self.id or f"{default_id}-{self.time.strftime('%H%M')}").strip(), time=self.time,
                    theme=self.theme.strip(), source=sources[self.template] if self.template else self.text or "",
                    template=self.template or "", attachments=attachments(self.images, self.links),
                    tags=audience.tags, tiers=audience.tiers, staff=self.staff, via=self.via, origin=origin,
                    campaign=campaign, line=line)


class WeekModel(FileModel):
    """``week:`` — each weekday's slots."""

    key_label: ClassVar[str] = "week："

    monday: Any = None
    tuesday: Any = None
    wednesday: Any = None
    thursday: Any = None
    friday: Any = None
    saturday: Any = None
    sunday: Any = None

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("week 应是 monday … sunday 各自的时段列表")
        return raw

    @field_validator(*WEEKDAYS, mode="before")
    @classmethod
    def _slots(cls, v: Any) -> Any:
        return slot_items(v)


class OverrideModel(FileModel):
    """One of ``overrides:`` — a date whose slots replace the week's, or that posts nothing (``skip``)."""

    key_label: ClassVar[str] = "override："

    day: date = Field(default=None, alias="date", validate_default=True)
    note: Annotated[str, must_be(str, "note 应是文字")] = ""
    skip: Annotated[bool, must_be(bool, "skip 应是 true 或 false")] = False
    slots: Any = None

    @model_validator(mode="before")
    @classmethod
    def _skip_or_slots(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("每个 override 应是 {date: …, skip: true} 或 {date: …, slots: […]}")
        skip = raw.get("skip") is True
        if skip and raw.get("slots"):
            raw = {**raw, "slots": Refused("同一天不能既 skip 又给出 slots")}
        elif not skip and "slots" not in raw:
            raw = {**raw, "slots": Refused("override 需要 skip: true（这天不发）或 slots（替换这天的时段）")}
        return raw

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, v: Any) -> date:
        day = _date(v)
        if day is None:
            raise ValueError("override 的 date 应是日期，例如 2026-12-25")
        return day

    @field_validator("slots", mode="before")
    @classmethod
    def _slots(cls, v: Any) -> Any:
        return slot_items(refused(v))


class CampaignModel(FileModel):
    """One of ``campaigns:`` — extra slots every day from ``from`` to ``to``."""

    key_label: ClassVar[str] = "campaign："

    id: Any = Field(default=None, validate_default=True)
    name: Any = None
    start: date | None = Field(default=None, alias="from")
    end: date | None = Field(default=None, alias="to")
    slots: Any = None

    @model_validator(mode="before")
    @classmethod
    def _dates(cls, raw: Any) -> Any:
        """``to`` defaults to ``from``; a wrong date is named at ``from``, an end before the start at ``to``."""
        if not isinstance(raw, dict):
            raise ValueError("每个 campaign 应是映射")
        start, end = _date(raw.get("from")), _date(raw.get("to", raw.get("from")))
        if start is None or end is None:
            return {**raw, "from": Refused("campaign 的 from / to 应是日期"), "to": None}
        if end < start:
            return {**raw, "to": Refused("campaign 的 to 早于 from")}
        return {**raw, "from": start, "to": end}

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("campaign 需要 id（英文标识，例如 double12）")
        return v

    @field_validator("start", "end", mode="before")
    @classmethod
    def _checked_date(cls, v: Any) -> Any:
        return refused(v)

    @field_validator("slots", mode="before")
    @classmethod
    def _slots(cls, v: Any) -> Any:
        return slot_items(v)


def _overrides(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("overrides 应是列表：- {date: 2026-12-25, slots: […]} 或 - {date: 2027-01-01, skip: true}")
    return value


def _campaigns(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("campaigns 应是列表：- {id: …, name: …, from: 日期, to: 日期, slots: […]}")
    return value


class CalendarModel(FileModel):
    """The calendar's own fields; the week, overrides and campaigns are checked one by one."""

    approval: Annotated[bool, must_be(bool, "approval 应是 true（每天的朋友圈需 /moments approve 审批后才发）"
                                            "或 false")] = False
    staff: Staff = ()
    audience: AudienceModel | None = None
    week: Any = None  # each part checked on its own (WeekModel, OverrideModel, CampaignModel)
    overrides: Any = None
    campaigns: Any = None

    @field_validator("overrides", mode="before")
    @classmethod
    def _overrides(cls, v: Any) -> Any:
        return _overrides(v or [])

    @field_validator("campaigns", mode="before")
    @classmethod
    def _campaigns(cls, v: Any) -> Any:
        return _campaigns(v or [])


def _slots(units: Units, raw: Any, default_id: str, origin: str, *keys: Any, campaign: str = "") -> tuple[Slot, ...]:
    """A list of slots, each id once."""
    out: list[Slot] = []
    for i, item in enumerate(_listed(slot_items, raw)):
        model = units.check(SlotModel, item, *keys, i)
        if model is None:
            continue
        many = too_many_attachments(attachments(model.images, model.links))
        if many:
            units.problem(many, *keys, i)
        s = model.to_slot(default_id, origin, campaign, units.context["sources"], units.lines.line(*keys, i))
        if len(s.id) > MAX_SLOT_ID:  # an id made of a long campaign id and the time
            units.problem(SLOT_ID_PROBLEM, *keys, i, "id")
            continue
        if any(o.id == s.id for o in out):
            units.problem(f"时段 id {s.id} 重复了（同一时间的两个时段请写不同的 id）", *keys, i)
            continue
        out.append(s)
    return tuple(out)


def _week(units: Units, raw: Any) -> dict[int, tuple[Slot, ...]]:
    raw = raw or {}
    units.check(WeekModel, raw, "week")
    if not isinstance(raw, dict):
        return dict.fromkeys(range(7), ())
    return {i: _slots(units, raw.get(name), name, "weekly", "week", name) for i, name in enumerate(WEEKDAYS)}


def _day_overrides(units: Units, raw: Any) -> dict[date, DayOverride]:
    overrides: dict[date, DayOverride] = {}
    for i, item in enumerate(_listed(_overrides, raw or [])):
        model = units.check(OverrideModel, item, "overrides", i)
        if model is None:
            continue
        if model.day in overrides:
            units.problem(f"{model.day} 的 override 重复了", "overrides", i, "date")
            continue
        slots = None if model.skip else _slots(units, model.slots, model.day.isoformat(), "override",
                                               "overrides", i, "slots")
        overrides[model.day] = DayOverride(day=model.day, note=model.note.strip(), slots=slots)
    return overrides


def _campaign_list(units: Units, raw: Any, weekly_ids: set[str]) -> tuple[Campaign, ...]:
    campaigns: list[Campaign] = []
    for i, item in enumerate(_listed(_campaigns, raw or [])):
        model = units.check(CampaignModel, item, "campaigns", i)
        if model is None:
            continue
        if any(c.id == model.id for c in campaigns):
            units.problem(f"campaign id {model.id} 重复了", "campaigns", i, "id")
            continue
        slots = _slots(units, model.slots, model.id, "campaign", "campaigns", i, "slots", campaign=model.id)
        if "slots" not in item:
            units.problem("campaign 需要 slots（活动期间每天额外发的时段）", "campaigns", i)
        for s in slots:
            if s.id in weekly_ids:
                units.problem(f"活动时段 id {s.id} 和周计划的时段重复", "campaigns", i, "slots")
        name = model.name if "name" in item else model.id
        campaigns.append(Campaign(id=model.id, name=str(name), start=model.start, end=model.end, slots=slots))
    return tuple(campaigns)


def parse_calendar(text: str, path: str, *, templates: Templates | None = None,
                   templates_dir: Path | None = None) -> Calendar:
    """Validate the calendar's text; raise FileProblems naming file, line and problem."""
    data, lines = load_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(),
                                    "日历文件应是映射：approval、staff、audience、week、overrides、campaigns")])
    sources: dict[str, str] = {}
    units = Units(lines, {"templates": templates, "templates_dir": templates_dir, "sources": sources, "check": True,
                          "sample": SAMPLE_SLOT, "limit": MAX_MOMENT_TEXT})
    head = units.check(CalendarModel, data)
    week = _week(units, data.get("week"))
    overrides = _day_overrides(units, data.get("overrides"))
    campaigns = _campaign_list(units, data.get("campaigns"), {s.id for slots in week.values() for s in slots})
    if units.problems or head is None:
        raise FileProblems(units.sorted())
    audience = head.audience or AudienceModel()
    digest = hashlib.sha256(json.dumps([text, sources], ensure_ascii=False).encode()).hexdigest()[:12]
    return Calendar(week=week, overrides=overrides, campaigns=campaigns, approval=head.approval, staff=head.staff,
                    tags=audience.tags, tiers=audience.tiers, version=digest, file=path)


def load_calendar(path: Path, shown: str | None = None, *, templates: Templates | None = None,
                  templates_dir: Path | None = None) -> Calendar:
    return parse_calendar(read_text(path, shown), shown or str(path), templates=templates,
                          templates_dir=templates_dir)
