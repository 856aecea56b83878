"""Knowledge files: YAML lists of entries, validated with file, line and problem.

The format is a contract (see the README). One validator serves every source:
YAML files (with line numbers), database rows and the chat forms of ``/kb add``
and ``/kb edit`` (where a problem names the field instead of a line).

A file with any problem is rejected as a whole, so that a half-edited file never
serves half its entries; :class:`bot.knowledge.base.KnowledgeBase` keeps the
previous version of that file live instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.hours import parse_spans, spans_text
from bot.knowledge.entry import CHAT_SCOPES, ID_RX, MATCH_MODES, ActiveHours, Entry, Scope, Source
from bot.yamldoc import Problem, kind_of

FIELDS = ("id", "questions", "keywords", "match", "answer", "scope", "priority", "active_hours", "off_hours",
          "group_auto")
SCOPE_FIELDS = ("chat", "groups", "tiers")
MAX_TEXT = 4000
TemplateCheck = Callable[[str], None]


class EntryInvalid(ValueError):
    """An entry that breaks the contract; ``problems`` says what, with lines where known."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(slots=True)
class Field:
    """A field's value and where it sits in the file (0 when it did not come from a file)."""

    value: Any
    line: int = 0
    text_line: int = 0  # the file line of the scalar's first text line (for template errors)
    item_lines: list[int] = field(default_factory=list)


@dataclass(slots=True)
class FileLoad:
    path: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _template_problem(check: TemplateCheck | None, source: str) -> tuple[int, str] | None:
    if check is None:
        return None
    try:
        check(source)
    except Exception as exc:
        cause = exc.__cause__ or exc
        line = getattr(cause, "lineno", None) or 1
        message = getattr(cause, "message", None) or str(cause)
        return int(line), str(message)
    return None


def parse_hours(raw: str) -> ActiveHours:
    """Parse "09:00-21:00" (several ranges comma-separated; "21:00-02:00" runs overnight)."""
    spans = parse_spans(raw, "09:00-21:00")
    if not spans:
        raise ValueError("active_hours 是空的")
    return ActiveHours(spans, spans_text(spans))


def _strings(f: Field, name: str, problems: list[tuple[int, str]]) -> tuple[str, ...]:
    value = f.value
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.append((f.line, f"{name} 应是文字列表，例如 [怎么退款, 退款流程]，收到{kind_of(value)}"))
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        line = f.item_lines[i] if i < len(f.item_lines) else f.line
        if not isinstance(item, str):
            problems.append((line, f"{name} 第 {i + 1} 项应是文字，收到{kind_of(item)}（数字或 yes/no 请加引号）"))
            continue
        item = item.strip()
        if not item:
            problems.append((line, f"{name} 第 {i + 1} 项是空的"))
            continue
        if len(item) > 200:
            problems.append((line, f"{name} 第 {i + 1} 项太长（{len(item)} 字，最多 200 字）"))
            continue
        if item in out:
            problems.append((line, f"{name} 里 {item!r} 重复了"))
            continue
        out.append(item)
    return tuple(out)


def build_entry(fields: dict[str, Field], source: Source, *, check: TemplateCheck | None = None,
                entry_line: int = 0) -> tuple[Entry | None, list[tuple[int, str]]]:
    """Validate one entry's fields; (entry, []) or (None, [(line, problem), …])."""
    problems: list[tuple[int, str]] = []
    for name, f in fields.items():
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"（是不是 {close[0]}？）" if close else f"（可用字段：{', '.join(FIELDS)}）"
            problems.append((f.line, f"未知字段 {name}{hint}"))

    raw_id = fields["id"].value if "id" in fields else None
    eid = ""
    if raw_id is None:
        problems.append((entry_line, "缺少 id（每条知识需要一个唯一、稳定的 id，例如 refund-policy）"))
    elif not isinstance(raw_id, str):
        problems.append((fields["id"].line, f"id 应是文字，收到{kind_of(raw_id)}"))
    elif not ID_RX.fullmatch(raw_id):
        problems.append((fields["id"].line, f"id {raw_id!r} 只能用字母、数字、- _ .，以字母或数字开头，最长 64 个字符"))
    else:
        eid = raw_id

    def at(name: str) -> int:
        return fields[name].line if name in fields else entry_line

    match = "auto"
    if "match" in fields:
        raw = fields["match"].value
        if raw not in MATCH_MODES:
            problems.append((at("match"), f"match 只能是 {'、'.join(MATCH_MODES)}，收到 {raw!r}"))
        else:
            match = raw

    questions = _strings(fields["questions"], "questions", problems) if "questions" in fields else ()
    keywords = _strings(fields["keywords"], "keywords", problems) if "keywords" in fields else ()
    if match == "regex":
        if not keywords:
            problems.append((at("keywords"), "match: regex 需要在 keywords 里写正则表达式"))
        f = fields.get("keywords")
        for i, kw in enumerate(keywords):
            line = f.item_lines[i] if f and i < len(f.item_lines) else at("keywords")
            try:
                re.compile(kw)
            except re.error as exc:
                problems.append((line, f"正则表达式 {kw!r} 有误：{exc}"))
    elif match == "exact" and not questions and not keywords:
        problems.append((entry_line, "match: exact 需要 questions（要完全一致的说法）"))
    elif not questions and not keywords:
        problems.append((entry_line, "至少需要一个 questions 或 keywords"))

    answer = ""
    if "answer" not in fields or fields["answer"].value in (None, ""):
        problems.append((at("answer"), "缺少 answer（回答内容）"))
    elif not isinstance(fields["answer"].value, str):
        problems.append((at("answer"), f"answer 应是文字，收到{kind_of(fields['answer'].value)}"))
    else:
        answer = fields["answer"].value.strip()
        if len(answer) > MAX_TEXT:
            problems.append((at("answer"), f"answer 太长（{len(answer)} 字，最多 {MAX_TEXT} 字）"))
        bad = _template_problem(check, answer)
        if bad:
            f = fields["answer"]
            problems.append((f.text_line + bad[0] - 1 if f.text_line else f.line, f"answer 模板有误：{bad[1]}"))

    off_hours = ""
    if "off_hours" in fields and fields["off_hours"].value not in (None, ""):
        f = fields["off_hours"]
        if not isinstance(f.value, str):
            problems.append((f.line, f"off_hours 应是文字，收到{kind_of(f.value)}"))
        else:
            off_hours = f.value.strip()
            bad = _template_problem(check, off_hours)
            if bad:
                problems.append((f.text_line + bad[0] - 1 if f.text_line else f.line, f"off_hours 模板有误：{bad[1]}"))

    hours: ActiveHours | None = None
    if "active_hours" in fields and fields["active_hours"].value not in (None, ""):
        f = fields["active_hours"]
        if not isinstance(f.value, str):
            problems.append((f.line, f"active_hours 应是带引号的文字，例如 \"09:00-21:00\"，收到{kind_of(f.value)}"))
        else:
            try:
                hours = parse_hours(f.value)
            except ValueError as exc:
                problems.append((f.line, str(exc)))
    if off_hours and hours is None and not problems:
        problems.append((at("off_hours"), "off_hours 只在设置了 active_hours 时使用，请同时写 active_hours"))

    priority = 0
    if "priority" in fields and fields["priority"].value is not None:
        raw = fields["priority"].value
        if isinstance(raw, bool) or not isinstance(raw, int):
            problems.append((at("priority"), f"priority 应是整数，收到{kind_of(raw)}"))
        elif not -1000 <= raw <= 1000:
            problems.append((at("priority"), "priority 应在 -1000 到 1000 之间"))
        else:
            priority = raw

    group_auto = False
    if "group_auto" in fields and fields["group_auto"].value is not None:
        raw = fields["group_auto"].value
        if not isinstance(raw, bool):
            problems.append((at("group_auto"), f"group_auto 应是 true 或 false，收到{kind_of(raw)}"))
        else:
            group_auto = raw

    scope = Scope()
    if "scope" in fields and fields["scope"].value is not None:
        scope = _scope(fields["scope"], problems)

    if problems:
        return None, problems
    return Entry(id=eid, answer=answer, questions=questions, keywords=keywords, match=match, scope=scope,
                 priority=priority, active_hours=hours, off_hours=off_hours, group_auto=group_auto,
                 source=source), []


def _scope(f: Field, problems: list[tuple[int, str]]) -> Scope:
    raw = f.value
    if not isinstance(raw, dict):
        problems.append((f.line, f"scope 应是映射，例如 {{chat: group, groups: [], tiers: []}}，收到{kind_of(raw)}"))
        return Scope()
    for key in raw:
        if key not in SCOPE_FIELDS:
            problems.append((f.line, f"scope 里有未知字段 {key}（可用：chat、groups、tiers）"))
    chat = raw.get("chat") or "any"
    if chat not in CHAT_SCOPES:
        problems.append((f.line, f"scope.chat 只能是 any、group 或 single，收到 {chat!r}"))
        chat = "any"
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("groups", "tiers"):
        value = raw.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append((f.line, f"scope.{key} 应是文字列表"))
            value = []
        lists[key] = tuple(v.strip() for v in value)
    return Scope(chat=chat, groups=lists["groups"], tiers=lists["tiers"])


def entry_from_data(data: dict[str, Any], source: Source, *, check: TemplateCheck | None = None) -> Entry:
    """Build an entry from a plain mapping (database rows, chat forms); raise EntryInvalid."""
    if not isinstance(data, dict):
        raise EntryInvalid([Problem("", 0, "条目应是映射")])
    entry, problems = build_entry({k: Field(v) for k, v in data.items()}, source, check=check)
    if entry is None:
        raise EntryInvalid([Problem("", 0, msg) for _, msg in problems])
    return entry


# ── YAML files ────────────────────────────────────────────────────────────────


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _text_line(node: yaml.Node) -> int:
    # A block scalar ("|" or ">") starts its text on the line after the indicator.
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return node.start_mark.line + 2
    return node.start_mark.line + 1


def parse_text(text: str, path: str, *, check: TemplateCheck | None = None) -> FileLoad:
    """Parse and validate one file's text; ``path`` is how problems name the file."""
    out = FileLoad(path=path)
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            what = exc.problem or exc.context or "无法解析"
            out.problems.append(Problem(path, line, f"YAML 语法错误：{what}"))
            return out
        except yaml.YAMLError as exc:
            out.problems.append(Problem(path, 0, f"YAML 语法错误：{exc}"))
            return out
        if root is None or (isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null")):
            return out  # an empty file holds no entries
        if not isinstance(root, yaml.SequenceNode):
            out.problems.append(Problem(path, _line(root), "文件应是条目列表：每条以「- id: …」开头"))
            return out
        for item in root.value:
            _parse_item(loader, item, path, out, check)
    finally:
        loader.dispose()
    seen: dict[str, int] = {}
    for e in out.entries:
        if e.id in seen:
            out.problems.append(Problem(path, e.source.line, f"id {e.id} 重复了（第 {seen[e.id]} 行已经用过）"))
        else:
            seen[e.id] = e.source.line
    if out.problems:
        out.entries = []
    return out


def _parse_item(loader: yaml.SafeLoader, item: yaml.Node, path: str, out: FileLoad,
                check: TemplateCheck | None) -> None:
    line = _line(item)
    if not isinstance(item, yaml.MappingNode):
        out.problems.append(Problem(path, line, "每条知识应是「字段: 值」的映射，例如 - id: refund-policy"))
        return
    fields: dict[str, Field] = {}
    bad = False
    for key_node, value_node in item.value:
        if not isinstance(key_node, yaml.ScalarNode):
            out.problems.append(Problem(path, _line(key_node), "字段名应是文字"))
            bad = True
            continue
        name = key_node.value
        if name in fields:
            out.problems.append(Problem(path, _line(key_node), f"字段 {name} 重复了（第 {fields[name].line} 行）"))
            bad = True
            continue
        try:
            value = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as exc:
            out.problems.append(Problem(path, _line(value_node), f"{name} 的值无法解析：{exc}"))
            bad = True
            continue
        items = [_line(n) for n in value_node.value] if isinstance(value_node, yaml.SequenceNode) else []
        fields[name] = Field(value, _line(key_node), _text_line(value_node), items)
    entry, problems = build_entry(fields, Source("file", path, line), check=check, entry_line=line)
    label = f"条目 {fields['id'].value}：" if "id" in fields and isinstance(fields["id"].value, str) else ""
    for pline, msg in problems:
        out.problems.append(Problem(path, pline or line, label + msg))
    if entry is not None and not bad:
        out.entries.append(entry)


def load_file(path: Path, *, check: TemplateCheck | None = None, name: str | None = None) -> FileLoad:
    shown = name or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return FileLoad(path=shown, problems=[Problem(shown, 0, f"文件不是 UTF-8 编码（第 {exc.start} 字节）")])
    except OSError as exc:
        return FileLoad(path=shown, problems=[Problem(shown, 0, f"无法读取：{exc.strerror}")])
    return parse_text(text, shown, check=check)


def entry_files(directory: Path) -> list[Path]:
    """The knowledge files of a directory: ``*.yaml`` / ``*.yml`` at its top level, sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


def cross_check(loads: Iterable[FileLoad]) -> list[Problem]:
    """Problems between files: the same id in two files (reported on the later one)."""
    owner: dict[str, Problem] = {}
    problems: list[Problem] = []
    for load in loads:
        for e in load.entries:
            if e.id in owner:
                first = owner[e.id]
                problems.append(Problem(load.path, e.source.line,
                                        f"id {e.id} 与 {first.path}:{first.line} 重复"))
            else:
                owner[e.id] = Problem(load.path, e.source.line, "")
    return problems
