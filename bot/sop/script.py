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

import difflib
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.sop.timing import At, Late, QuietHours, Repeat, format_duration, parse_at, parse_duration, parse_quiet
from bot.yamldoc import FileProblems, Lines, Problem, kind_of, load_yaml

if TYPE_CHECKING:
    from bot.templates import Templates

TRIGGERS = ("member_joined", "contact_added", "group_created", "tag_added", "tier_changed", "manual")
STOP_EVENTS = ("member_left", "tier_changed", "tag_added", "contact_removed", "group_dismissed")
VIAS = ("reply", "group_robot", "appchat", "mass_send", "remind_staff", "app_message", "welcome", "mark_tag")
GROUP_VIAS = ("reply", "group_robot", "appchat")
TOP_FIELDS = ("id", "name", "description", "enabled", "trigger", "where", "per", "quiet_hours", "late", "stop_on",
              "staff", "steps")
STEP_FIELDS = ("id", "at", "via", "text", "template", "when", "stage", "repeat", "late", "staff", "mention",
               "add_tag", "remove_tag", "images", "links")
WHERE_FIELDS = ("groups", "tiers", "tags", "states")
ID_RX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STEP_ID_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
TEMPLATE_RX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.j2")
MAX_STEPS = 200
MAX_TEXT = 4000
WELCOME_WINDOW = timedelta(seconds=20)

TRIGGER_NAMES = {"member_joined": "成员入群", "contact_added": "添加好友", "group_created": "建群",
                 "tag_added": "打标签", "tier_changed": "等级变化", "manual": "手动启动"}
VIA_NAMES = {"reply": "群内回复", "group_robot": "群机器人", "appchat": "群聊消息", "mass_send": "群发任务",
             "remind_staff": "提醒员工", "app_message": "应用消息", "welcome": "欢迎语", "mark_tag": "打标签"}


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
    stage: str = ""
    repeat: Repeat | None = None
    late: Late | None = None   # None: the script's
    staff: tuple[str, ...] = ()
    mention: bool | None = None
    add_tag: tuple[str, ...] = ()
    remove_tag: tuple[str, ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()
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
        return _build(body["data"], Lines(body.get("file", "")), [], sources=body.get("sources", {}),
                      file=body.get("file", ""), version=body.get("version", ""), check=None)


# ── parsing ────────────────────────────────────────────────────────────────────


def _unknown(name: Any, allowed: tuple[str, ...], what: str) -> str:
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"（是不是 {close[0]}？）" if close else f"（可用：{', '.join(allowed)}）"
    return f"{what}未知字段 {name}{hint}"


def _strings(value: Any, name: str, lines: Lines, problems: list[Problem], *keys: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.append(lines.problem(f"{name} 应是文字列表，收到{kind_of(value)}", *keys))
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, int | float) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            problems.append(lines.problem(f"{name} 第 {i + 1} 项应是非空文字，收到{kind_of(item)}", *keys, i))
            continue
        out.append(item.strip())
    return tuple(out)


def parse_attachments(images: Any, links: Any, lines: Lines, problems: list[Problem], *keys: Any
                      ) -> tuple[dict[str, Any], ...]:
    """``images: [url or media id]`` and ``links: [{title, url, desc}]`` → WeCom attachments (≤ 9)."""
    out: list[dict[str, Any]] = []
    for item in _strings(images, "images", lines, problems, *keys, "images"):
        ref = {"url": item} if item.startswith(("http://", "https://")) else {"media_id": item}
        out.append({"msgtype": "image", "image": ref})
    if links is not None:
        if not isinstance(links, list):
            links = [links]
        for i, item in enumerate(links):
            if isinstance(item, str):
                item = {"url": item}
            if not isinstance(item, dict) or not isinstance(item.get("url"), str) \
                    or not item["url"].startswith(("http://", "https://")):
                problems.append(lines.problem("links 每项应是网址，或 {title: 标题, url: https://…, desc: 说明}",
                                              *keys, "links", i))
                continue
            extra = set(item) - {"title", "url", "desc", "picurl"}
            if extra:
                problems.append(lines.problem(f"links 里有未知字段 {', '.join(sorted(extra))}（可用：title, url, desc, "
                                              f"picurl）", *keys, "links", i))
                continue
            link = {"title": str(item.get("title") or item["url"]), "url": item["url"]}
            if item.get("desc"):
                link["desc"] = str(item["desc"])
            if item.get("picurl"):
                link["picurl"] = str(item["picurl"])
            out.append({"msgtype": "link", "link": link})
    if len(out) > 9:
        problems.append(lines.problem(f"附件最多 9 个（图片和链接合计），这里有 {len(out)} 个", *keys))
    return tuple(out)


def _template_error(templates: Templates | None, source: str) -> str | None:
    if templates is None:
        return None
    try:
        templates.check(source)
    except Exception as exc:
        return str(exc)
    return None


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


def _late(raw: Any, lines: Lines, problems: list[Problem], *keys: Any) -> Late | None:
    if not isinstance(raw, dict):
        problems.append(lines.problem("late 应写成 {grace: 2h, then: send|skip}", *keys))
        return None
    extra = set(raw) - {"grace", "then"}
    if extra:
        problems.append(lines.problem(f"late 里有未知字段 {', '.join(map(str, extra))}（可用：grace, then）", *keys))
    grace = timedelta(hours=2)
    try:
        grace = parse_duration(raw.get("grace", "2h"))
    except ValueError as exc:
        problems.append(lines.problem(f"late.grace：{exc}", *keys, "grace"))
    then = raw.get("then", "send")
    if then not in ("send", "skip"):
        problems.append(lines.problem(f"late.then 只能是 send（照发）或 skip（跳过），收到 {then!r}", *keys, "then"))
        then = "send"
    return Late(grace, then)


def _repeat(raw: Any, lines: Lines, problems: list[Problem], *keys: Any) -> Repeat | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"every": raw}
    if not isinstance(raw, dict):
        problems.append(lines.problem("repeat 应写成 {every: 1d, times: 21}（times 不写则一直重复到停止）", *keys))
        return None
    extra = set(raw) - {"every", "times"}
    if extra:
        problems.append(lines.problem(f"repeat 里有未知字段 {', '.join(map(str, extra))}（可用：every, times）", *keys))
    try:
        every = parse_duration(raw.get("every", ""))
    except ValueError as exc:
        problems.append(lines.problem(f"repeat.every：{exc}", *keys, "every"))
        return None
    if every < timedelta(hours=1):
        problems.append(lines.problem("repeat.every 至少 1h", *keys, "every"))
        return None
    times = raw.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 1000):
        problems.append(lines.problem("repeat.times 应是 1 到 1000 的整数", *keys, "times"))
        return None
    return Repeat(every, times)


def _step(raw: Any, i: int, script_data: dict[str, Any], lines: Lines, problems: list[Problem],
          sources: dict[str, str], templates: Templates | None, templates_dir: Path | None,
          check: bool) -> Step | None:
    keys = ("steps", i)
    if not isinstance(raw, dict):
        problems.append(lines.problem("每个步骤应是映射，例如 {at: \"+0m\", via: reply, text: …}", *keys))
        return None
    for name in raw:
        if name not in STEP_FIELDS:
            problems.append(lines.problem(_unknown(name, STEP_FIELDS, f"第 {i + 1} 步："), *keys, name))
    trigger = script_data.get("trigger")
    ok = True
    sid = raw.get("id")
    if sid is not None and (not isinstance(sid, str | int) or not STEP_ID_RX.fullmatch(str(sid))):
        problems.append(lines.problem("步骤 id 只能用字母、数字、- _ .（最长 40 个字符）", *keys, "id"))
        ok = False
    key = str(sid) if sid is not None else str(i + 1)
    at: At | None = None
    if "at" not in raw:
        problems.append(lines.problem(f"第 {i + 1} 步缺少 at（什么时候发：+0m、day 1 09:30 …）", *keys))
        ok = False
    else:
        try:
            at = parse_at(raw["at"])
        except ValueError as exc:
            problems.append(lines.problem(str(exc), *keys, "at"))
            ok = False
    via = raw.get("via", "reply")
    if via not in VIAS:
        problems.append(lines.problem(f"via 只能是 {' | '.join(VIAS)}，收到 {via!r}", *keys, "via"))
        ok = False
    source, template = "", ""
    text = raw.get("text")
    tpl = raw.get("template")
    if text is not None and tpl is not None:
        problems.append(lines.problem("text 和 template 只能写一个", *keys, "template"))
        ok = False
    elif text is not None:
        if not isinstance(text, str) or not text.strip():
            problems.append(lines.problem(f"text 应是非空文字，收到{kind_of(text)}", *keys, "text"))
            ok = False
        else:
            source = text.strip()
            if len(source) > MAX_TEXT:
                problems.append(lines.problem(f"text 太长（{len(source)} 字，最多 {MAX_TEXT} 字）", *keys, "text"))
            bad = _template_error(templates, source) if check else None
            if bad:
                problems.append(lines.problem(f"text 模板有误：{bad}", *keys, "text"))
    elif tpl is not None:
        if not isinstance(tpl, str) or not TEMPLATE_RX.fullmatch(tpl) or ".." in tpl:
            problems.append(lines.problem("template 应是 sop_templates/templates/ 下的 .j2 文件名，例如 day1.j2",
                                          *keys, "template"))
            ok = False
        elif tpl in sources:
            template, source = tpl, sources[tpl]
        elif not check or templates_dir is None:
            problems.append(lines.problem(f"模板 {tpl} 的内容没有保存", *keys, "template"))
            ok = False
        else:
            path = templates_dir / tpl
            try:
                source = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = "不存在" if isinstance(exc, FileNotFoundError) else f"无法读取（{exc}）"
                problems.append(lines.problem(f"模板 {templates_dir.name}/{tpl} {why}", *keys, "template"))
                ok = False
            else:
                template = tpl
                sources[tpl] = source
                bad = _template_error(templates, source)
                if bad:
                    problems.append(lines.problem(f"模板 {templates_dir.name}/{tpl} 有误：{bad}", *keys, "template"))
    elif via != "mark_tag":
        problems.append(lines.problem(f"第 {i + 1} 步需要 text（直接写内容）或 template（模板文件名）", *keys))
        ok = False
    when = raw.get("when")
    if when is not None:
        if not isinstance(when, str) or not when.strip():
            problems.append(lines.problem("when 应是条件表达式，例如 \"member.points < 10\"", *keys, "when"))
            when = ""
        else:
            bad = _condition_error(templates, when) if check else None
            if bad:
                problems.append(lines.problem(bad, *keys, "when"))
    stage = raw.get("stage", "")
    if not isinstance(stage, str):
        problems.append(lines.problem("stage 应是文字（阶段名称，例如 引导）", *keys, "stage"))
        stage = ""
    repeat = _repeat(raw.get("repeat"), lines, problems, *keys, "repeat")
    late = _late(raw["late"], lines, problems, *keys, "late") if "late" in raw else None
    staff = _strings(raw.get("staff"), "staff", lines, problems, *keys, "staff")
    mention = raw.get("mention")
    if mention is not None and not isinstance(mention, bool):
        problems.append(lines.problem("mention 应是 true 或 false", *keys, "mention"))
        mention = None
    add_tag = _strings(raw.get("add_tag"), "add_tag", lines, problems, *keys, "add_tag")
    remove_tag = _strings(raw.get("remove_tag"), "remove_tag", lines, problems, *keys, "remove_tag")
    attachments = parse_attachments(raw.get("images"), raw.get("links"), lines, problems, *keys)
    if via == "mark_tag" and not (add_tag or remove_tag):
        problems.append(lines.problem("via: mark_tag 需要 add_tag 或 remove_tag", *keys, "via"))
    if via != "mark_tag" and (add_tag or remove_tag):
        problems.append(lines.problem("add_tag / remove_tag 只用于 via: mark_tag", *keys, "add_tag"))
    if attachments and via not in ("mass_send", "welcome"):
        problems.append(lines.problem("images / links 只能随 mass_send 或 welcome 发送", *keys, "images"))
    if via == "welcome":
        if trigger != "contact_added":
            problems.append(lines.problem("via: welcome 只能用于 trigger: contact_added（欢迎语码来自添加好友事件）",
                                          *keys, "via"))
        elif at is not None and (at.kind != "offset" or at.offset != timedelta(0)):
            problems.append(lines.problem("via: welcome 只能在 at: \"+0m\" 发送：欢迎语码 20 秒内有效", *keys, "at"))
        if repeat is not None:
            problems.append(lines.problem("via: welcome 不能重复", *keys, "repeat"))
    if via in GROUP_VIAS and trigger == "contact_added":
        problems.append(lines.problem(f"via: {via} 要发到群里，trigger: contact_added 没有群；"
                                      "用 welcome、mass_send 或 remind_staff", *keys, "via"))
    if not ok or at is None:
        return None
    return Step(index=i, key=key, at=at, via=via, source=source, template=template, when=(when or "").strip(),
                stage=stage.strip(), repeat=repeat, late=late, staff=staff, mention=mention, add_tag=add_tag,
                remove_tag=remove_tag, attachments=attachments, line=lines.line(*keys))


def _build(data: Any, lines: Lines, problems: list[Problem], *, sources: dict[str, str], file: str, version: str,
           check: bool | None, templates: Templates | None = None, templates_dir: Path | None = None,
           defaults: Defaults | None = None) -> Script:
    checking = bool(check)
    for name in data:
        if name not in TOP_FIELDS:
            problems.append(lines.problem(_unknown(name, TOP_FIELDS, ""), name))
    sid = data.get("id")
    if not isinstance(sid, str) or not ID_RX.fullmatch(sid):
        problems.append(lines.problem("id 应是小写字母、数字、- 或 _ 组成的标识，例如 newcomer-7d", "id"))
        sid = "?"
    name = data.get("name", sid)
    if not isinstance(name, str) or not name.strip():
        problems.append(lines.problem("name 应是脚本的中文名称", "name"))
        name = str(sid)
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(lines.problem("description 应是文字", "description"))
        description = ""
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(lines.problem("enabled 应是 true 或 false", "enabled"))
        enabled = True
    trigger = data.get("trigger")
    if trigger not in TRIGGERS:
        problems.append(lines.problem(f"trigger 只能是 {' | '.join(TRIGGERS)}，收到 {trigger!r}", "trigger"))
        trigger = "manual"
    default_per = "group" if trigger == "group_created" else "member"
    per = data.get("per", default_per)
    if per not in ("member", "group"):
        problems.append(lines.problem(f"per 只能是 member（每位成员一次）或 group（每个群一次），收到 {per!r}", "per"))
        per = default_per
    if per == "member" and trigger == "group_created":
        problems.append(lines.problem("trigger: group_created 只能 per: group（建群时还没有成员）", "per"))
    if per == "group" and trigger in ("contact_added", "tag_added", "tier_changed"):
        problems.append(lines.problem(f"trigger: {trigger} 针对一位成员，只能 per: member", "per"))
    where = Where()
    raw_where = data.get("where")
    if raw_where is not None:
        if not isinstance(raw_where, dict):
            problems.append(lines.problem("where 应写成 {groups: [\"*\"], tiers: [], tags: []}", "where"))
        else:
            for key in raw_where:
                if key not in WHERE_FIELDS:
                    problems.append(lines.problem(_unknown(key, WHERE_FIELDS, "where："), "where", key))
            groups = _strings(raw_where.get("groups"), "where.groups", lines, problems, "where", "groups")
            where = Where(groups=() if "*" in groups else groups,
                          tiers=_strings(raw_where.get("tiers"), "where.tiers", lines, problems, "where", "tiers"),
                          tags=_strings(raw_where.get("tags"), "where.tags", lines, problems, "where", "tags"),
                          states=_strings(raw_where.get("states"), "where.states", lines, problems, "where",
                                          "states"))
    quiet_raw = data.get("quiet_hours", defaults.quiet_hours if defaults else "")
    quiet = None
    if not isinstance(quiet_raw, str):
        problems.append(lines.problem("quiet_hours 应是带引号的时间段，例如 \"22:00-08:00\"（\"off\" 关闭）",
                                      "quiet_hours"))
    else:
        try:
            quiet = parse_quiet(quiet_raw)
        except ValueError as exc:
            problems.append(lines.problem(f"quiet_hours：{exc}", "quiet_hours"))
    late_raw = data.get("late")
    if late_raw is None and defaults is not None:
        late_raw = {"grace": defaults.late_grace, "then": defaults.late_then}
    late = _late(late_raw if late_raw is not None else {}, lines, problems, "late") or Late(timedelta(hours=2), "send")
    stop_on = _strings(data.get("stop_on"), "stop_on", lines, problems, "stop_on")
    for i, ev in enumerate(stop_on):
        base, colon, qualifier = ev.partition(":")
        if base not in STOP_EVENTS:
            problems.append(lines.problem(f"stop_on 只能包含 {', '.join(STOP_EVENTS)}（tag_added 和 tier_changed "
                                          f"可以写成 tag_added:复购、tier_changed:vip），收到 {ev!r}", "stop_on", i))
        elif colon and (base not in ("tag_added", "tier_changed") or not qualifier.strip()):
            problems.append(lines.problem(f"只有 tag_added:标签 和 tier_changed:等级 可以带冒号，收到 {ev!r}",
                                          "stop_on", i))
    staff = _strings(data.get("staff"), "staff", lines, problems, "staff")
    raw_steps = data.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(lines.problem("steps 应是非空的步骤列表", "steps"))
    elif len(raw_steps) > MAX_STEPS:
        problems.append(lines.problem(f"步骤太多（{len(raw_steps)} 步，最多 {MAX_STEPS} 步）", "steps"))
    else:
        seen: dict[str, int] = {}
        welcomes = 0
        for i, raw in enumerate(raw_steps):
            step = _step(raw, i, {"trigger": trigger}, lines, problems, sources, templates, templates_dir, checking)
            if step is None:
                continue
            if step.key in seen:
                problems.append(lines.problem(f"步骤 id {step.key} 和第 {seen[step.key]} 步重复", "steps", i, "id"))
                continue
            seen[step.key] = step.number
            if step.via == "welcome":
                welcomes += 1
                if welcomes > 1:
                    problems.append(lines.problem("一个脚本只能有一个 welcome 步骤（欢迎语码只能用一次）", "steps", i))
            if step.via == "mark_tag" and per == "group":
                problems.append(lines.problem("via: mark_tag 给成员打标签，只能用于 per: member", "steps", i, "via"))
            steps.append(step)
    stored = {k: v for k, v in data.items()}
    stored["quiet_hours"] = quiet.text if quiet is not None else "off"
    stored["late"] = {"grace": format_duration(late.grace), "then": late.then}
    body = {"data": stored, "sources": {k: sources[k] for k in sorted(sources)}, "file": file}
    if not version:
        version = hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode()
                                 ).hexdigest()[:12]
    body["version"] = version
    return Script(id=str(sid), name=name.strip(), trigger=trigger, per=per, steps=tuple(steps), late=late,
                  where=where, quiet=quiet, stop_on=stop_on, staff=staff, description=description.strip(),
                  enabled=enabled, version=version, file=file, body=body)


def parse_script(text: str, path: str, *, templates: Templates | None = None, templates_dir: Path | None = None,
                 defaults: Defaults | None = None) -> Script:
    """Validate one script file's text; raise FileProblems naming file, line and problem."""
    data, lines = load_yaml(text, path)
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(), "脚本文件应是一个映射：id、name、trigger、steps …")])
    problems: list[Problem] = []
    script = _build(data, lines, problems, sources={}, file=path, version="", check=True, templates=templates,
                    templates_dir=templates_dir, defaults=defaults or Defaults())
    if problems:
        raise FileProblems(sorted(problems, key=lambda p: p.line))
    return script
