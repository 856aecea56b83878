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
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.sop.script import TEMPLATE_RX, _strings, _template_error, _unknown, parse_attachments
from bot.sop.timing import WEEKDAY_CN, WEEKDAYS, at_local, parse_clock
from bot.yamldoc import FileProblems, Lines, Problem, kind_of, load_yaml, read_text

if TYPE_CHECKING:
    from bot.templates import Templates

TOP_FIELDS = ("approval", "staff", "audience", "week", "overrides", "campaigns")
SLOT_FIELDS = ("id", "time", "theme", "text", "template", "images", "links", "audience", "staff", "via")
OVERRIDE_FIELDS = ("date", "note", "skip", "slots")
CAMPAIGN_FIELDS = ("id", "name", "from", "to", "slots")
MOMENT_VIAS = ("moment_task", "remind_staff")
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
    return templates.render_string(slot.source, date=day.isoformat(), weekday=WEEKDAY_CN[day.weekday()],
                                   theme=slot.theme, slot={"id": slot.id, "time": slot.hhmm, "theme": slot.theme})


# ── parsing ────────────────────────────────────────────────────────────────────


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


class _Parser:
    def __init__(self, lines: Lines, templates: Templates | None, templates_dir: Path | None,
                 sources: dict[str, str]) -> None:
        self.lines = lines
        self.templates = templates
        self.templates_dir = templates_dir
        self.sources = sources
        self.problems: list[Problem] = []

    def problem(self, message: str, *keys: Any) -> None:
        self.problems.append(self.lines.problem(message, *keys))

    def audience(self, raw: Any, *keys: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if raw is None:
            return (), ()
        if not isinstance(raw, dict):
            self.problem("audience 应写成 {tags: [标签], tiers: [等级]}（都不写 = 全部客户）", *keys)
            return (), ()
        for k in raw:
            if k not in ("tags", "tiers"):
                self.problem(_unknown(k, ("tags", "tiers"), "audience："), *keys, k)
        return (_strings(raw.get("tags"), "audience.tags", self.lines, self.problems, *keys, "tags"),
                _strings(raw.get("tiers"), "audience.tiers", self.lines, self.problems, *keys, "tiers"))

    def slot(self, raw: Any, default_id: str, origin: str, *keys: Any, campaign: str = "") -> Slot | None:
        if not isinstance(raw, dict):
            self.problem("每个时段应是映射：{time: \"08:30\", theme: …, text: …}", *keys)
            return None
        for k in raw:
            if k not in SLOT_FIELDS:
                self.problem(_unknown(k, SLOT_FIELDS, "时段："), *keys, k)
        try:
            at = parse_clock(raw.get("time", ""))
        except ValueError as exc:
            self.problem(f"time：{exc}", *keys, "time")
            return None
        sid = raw.get("id", f"{default_id}-{at.strftime('%H%M')}")
        if not isinstance(sid, str) or not sid.strip() or len(sid) > 64:
            self.problem("时段 id 应是不超过 64 个字符的文字", *keys, "id")
            return None
        theme = raw.get("theme", "")
        if not isinstance(theme, str):
            self.problem("theme 应是文字", *keys, "theme")
            theme = ""
        source, template = "", ""
        text, tpl = raw.get("text"), raw.get("template")
        if text is not None and tpl is not None:
            self.problem("text 和 template 只能写一个", *keys, "template")
        elif text is not None:
            if not isinstance(text, str) or not text.strip():
                self.problem(f"text 应是非空文字，收到{kind_of(text)}", *keys, "text")
            else:
                source = text.strip()
                if len(source) > 2000:
                    self.problem(f"朋友圈文字最多 2000 字，这里有 {len(source)} 字", *keys, "text")
                bad = _template_error(self.templates, source)
                if bad:
                    self.problem(f"text 模板有误：{bad}", *keys, "text")
        elif tpl is not None:
            if not isinstance(tpl, str) or not TEMPLATE_RX.fullmatch(tpl) or ".." in tpl:
                self.problem("template 应是 sop_templates/templates/ 下的 .j2 文件名", *keys, "template")
            elif tpl in self.sources:
                source, template = self.sources[tpl], tpl
            elif self.templates_dir is None:
                self.problem(f"模板 {tpl} 的内容没有保存", *keys, "template")
            else:
                try:
                    source = (self.templates_dir / tpl).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    why = "不存在" if isinstance(exc, FileNotFoundError) else f"无法读取（{exc}）"
                    self.problem(f"模板 {self.templates_dir.name}/{tpl} {why}", *keys, "template")
                else:
                    template = tpl
                    self.sources[tpl] = source
                    bad = _template_error(self.templates, source)
                    if bad:
                        self.problem(f"模板 {self.templates_dir.name}/{tpl} 有误：{bad}", *keys, "template")
        else:
            self.problem("时段需要 text（文案）或 template（模板文件名）", *keys)
        attachments = parse_attachments(raw.get("images"), raw.get("links"), self.lines, self.problems, *keys)
        tags, tiers = self.audience(raw.get("audience"), *keys, "audience")
        staff = _strings(raw.get("staff"), "staff", self.lines, self.problems, *keys, "staff")
        via = raw.get("via", "")
        if via and via not in MOMENT_VIAS:
            self.problem(f"via 只能是 moment_task（企业微信朋友圈任务）或 remind_staff（提醒员工自己发），收到 {via!r}",
                         *keys, "via")
            via = ""
        return Slot(id=sid.strip(), time=at, theme=theme.strip(), source=source, template=template,
                    attachments=attachments, tags=tags, tiers=tiers, staff=staff, via=via, origin=origin,
                    campaign=campaign, line=self.lines.line(*keys))

    def slot_list(self, raw: Any, default_id: str, origin: str, *keys: Any, campaign: str = "") -> tuple[Slot, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem("应是时段列表（每项 {time: …, text: …}）", *keys)
            return ()
        out: list[Slot] = []
        for i, item in enumerate(raw):
            s = self.slot(item, default_id, origin, *keys, i, campaign=campaign)
            if s is None:
                continue
            if any(o.id == s.id for o in out):
                self.problem(f"时段 id {s.id} 重复了（同一时间的两个时段请写不同的 id）", *keys, i)
                continue
            out.append(s)
        return tuple(out)


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
    p = _Parser(lines, templates, templates_dir, sources)
    for k in data:
        if k not in TOP_FIELDS:
            p.problem(_unknown(k, TOP_FIELDS, ""), k)
    approval = data.get("approval", False)
    if not isinstance(approval, bool):
        p.problem("approval 应是 true（每天的朋友圈需 /moments approve 审批后才发）或 false", "approval")
        approval = False
    staff = _strings(data.get("staff"), "staff", lines, p.problems, "staff")
    tags, tiers = p.audience(data.get("audience"), "audience")
    week: dict[int, tuple[Slot, ...]] = {}
    raw_week = data.get("week") or {}
    if not isinstance(raw_week, dict):
        p.problem("week 应是 monday … sunday 各自的时段列表", "week")
        raw_week = {}
    for k in raw_week:
        if k not in WEEKDAYS:
            p.problem(_unknown(k, WEEKDAYS, "week："), "week", k)
    for i, name in enumerate(WEEKDAYS):
        week[i] = p.slot_list(raw_week.get(name), name, "weekly", "week", name)
    overrides: dict[date, DayOverride] = {}
    raw_over = data.get("overrides") or []
    if not isinstance(raw_over, list):
        p.problem("overrides 应是列表：- {date: 2026-12-25, slots: […]} 或 - {date: 2027-01-01, skip: true}",
                  "overrides")
        raw_over = []
    for i, item in enumerate(raw_over):
        if not isinstance(item, dict):
            p.problem("每个 override 应是 {date: …, skip: true} 或 {date: …, slots: […]}", "overrides", i)
            continue
        for k in item:
            if k not in OVERRIDE_FIELDS:
                p.problem(_unknown(k, OVERRIDE_FIELDS, "override："), "overrides", i, k)
        day = _date(item.get("date"))
        if day is None:
            p.problem("override 的 date 应是日期，例如 2026-12-25", "overrides", i, "date")
            continue
        if day in overrides:
            p.problem(f"{day} 的 override 重复了", "overrides", i, "date")
            continue
        skip = item.get("skip", False)
        if not isinstance(skip, bool):
            p.problem("skip 应是 true 或 false", "overrides", i, "skip")
            skip = False
        if skip and item.get("slots"):
            p.problem("同一天不能既 skip 又给出 slots", "overrides", i, "slots")
            continue
        if not skip and "slots" not in item:
            p.problem("override 需要 skip: true（这天不发）或 slots（替换这天的时段）", "overrides", i)
            continue
        note = item.get("note", "")
        if not isinstance(note, str):
            p.problem("note 应是文字", "overrides", i, "note")
            note = ""
        slots = None if skip else p.slot_list(item.get("slots"), day.isoformat(), "override", "overrides", i, "slots")
        overrides[day] = DayOverride(day=day, note=note.strip(), slots=slots)
    campaigns: list[Campaign] = []
    raw_camp = data.get("campaigns") or []
    if not isinstance(raw_camp, list):
        p.problem("campaigns 应是列表：- {id: …, name: …, from: 日期, to: 日期, slots: […]}", "campaigns")
        raw_camp = []
    for i, item in enumerate(raw_camp):
        if not isinstance(item, dict):
            p.problem("每个 campaign 应是映射", "campaigns", i)
            continue
        for k in item:
            if k not in CAMPAIGN_FIELDS:
                p.problem(_unknown(k, CAMPAIGN_FIELDS, "campaign："), "campaigns", i, k)
        cid = item.get("id")
        if not isinstance(cid, str) or not cid.strip():
            p.problem("campaign 需要 id（英文标识，例如 double12）", "campaigns", i, "id")
            continue
        if any(c.id == cid for c in campaigns):
            p.problem(f"campaign id {cid} 重复了", "campaigns", i, "id")
            continue
        start, end = _date(item.get("from")), _date(item.get("to", item.get("from")))
        if start is None or end is None:
            p.problem("campaign 的 from / to 应是日期", "campaigns", i, "from")
            continue
        if end < start:
            p.problem("campaign 的 to 早于 from", "campaigns", i, "to")
            continue
        name = item.get("name", cid)
        slots = p.slot_list(item.get("slots"), cid, "campaign", "campaigns", i, "slots", campaign=cid)
        if not slots and "slots" not in item:
            p.problem("campaign 需要 slots（活动期间每天额外发的时段）", "campaigns", i)
        campaigns.append(Campaign(id=cid, name=str(name), start=start, end=end, slots=slots))
    weekly_ids = {s.id for slots in week.values() for s in slots}
    for i, c in enumerate(campaigns):
        for s in c.slots:
            if s.id in weekly_ids:
                p.problem(f"活动时段 id {s.id} 和周计划的时段重复", "campaigns", i, "slots")
    if p.problems:
        raise FileProblems(sorted(p.problems, key=lambda x: x.line))
    digest = hashlib.sha256(json.dumps([text, sources], ensure_ascii=False).encode()).hexdigest()[:12]
    return Calendar(week=week, overrides=overrides, campaigns=tuple(campaigns), approval=approval, staff=staff,
                    tags=tags, tiers=tiers, version=digest, file=path)


def load_calendar(path: Path, shown: str | None = None, *, templates: Templates | None = None,
                  templates_dir: Path | None = None) -> Calendar:
    return parse_calendar(read_text(path, shown), shown or str(path), templates=templates,
                          templates_dir=templates_dir)
