"""Knowledge files: YAML lists of entries, checked against the entry contract with file, line and problem.

The contract (docs/knowledge.md) is declared in :mod:`bot.knowledge.contract`; this module reads a
file (``bot.yamldoc``: data and the line of every value), checks each entry and
names the entry in each problem (``条目 refund：…``). :func:`entry_from_data`
checks a plain mapping — a database row or a chat form — against the same model.

A file with any problem is refused as a whole, so that a half-edited file never
serves half its entries; :class:`bot.knowledge.files.KnowledgeFiles` keeps the
previous version of that file live instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.knowledge.contract import EntryModel, TemplateCheck, parse_hours
from bot.knowledge.entry import Entry, Source
from bot.yamldoc import FileProblems, Lines, Problem, load_yaml, read_text
from bot.yamlmodel import problems_of

__all__ = ["EntryInvalid", "FileLoad", "Problem", "TemplateCheck", "entry_from_data", "is_entry_file",
           "load_file", "parse_entries", "parse_hours", "parse_text"]

# bot.yamldoc's wording for a key written twice, in the words of the entry contract ("字段 answer 重复了").
_KEY_TWICE = re.compile(r"^(.+) 重复了（第 (\d+) 行已有）$")
_BLOCK = re.compile(r"\s*[|>][-+0-9]*\s*(#.*)?$")


class EntryInvalid(ValueError):
    """An entry that breaks the contract; ``problems`` says what, with lines where known."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(slots=True)
class FileLoad:
    path: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_from_data(data: dict[str, Any], source: Source, *, check: TemplateCheck | None = None) -> Entry:
    """Build an entry from a plain mapping (database rows, chat forms); raise EntryInvalid."""
    if not isinstance(data, dict):
        raise EntryInvalid([Problem("", 0, "条目应是映射")])
    try:
        return EntryModel.model_validate(data, context={"check": check}).to_entry(source)
    except ValidationError as exc:
        raise EntryInvalid(problems_of(EntryModel, exc, Lines(""))) from None


def parse_text(text: str, path: str, *, check: TemplateCheck | None = None) -> FileLoad:
    """Parse and check one file's text; ``path`` is how problems name the file."""
    out = FileLoad(path=path)
    try:
        data, lines = load_yaml(text, path)
    except FileProblems as exc:
        out.problems = [_contract_words(p) for p in exc.problems]
        return out
    if data is None:
        return out  # an empty file holds no entries
    if not isinstance(data, list):
        out.problems.append(lines.problem("文件应是条目列表：每条以「- id: …」开头"))
        return out
    source_lines = text.splitlines()
    for i, item in enumerate(data):
        _check_item(item, i, lines, source_lines, out, check)
    seen: dict[str, int] = {}
    for e in out.entries:
        if e.id in seen:
            out.problems.append(Problem(path, e.source.line, f"id {e.id} 重复了（第 {seen[e.id]} 行已经用过）"))
        else:
            seen[e.id] = e.source.line
    if out.problems:
        out.entries = []
    return out


def _check_item(item: Any, i: int, lines: Lines, source_lines: list[str], out: FileLoad,
                check: TemplateCheck | None) -> None:
    line = lines.line(i)
    if not isinstance(item, dict):
        out.problems.append(Problem(lines.path, line, "每条知识应是「字段: 值」的映射，例如 - id: refund-policy"))
        return

    def text_line(name: str) -> int:
        """The file line where the text of ``name`` starts (a block scalar starts on the next line)."""
        key = lines.by_key.get((i, name), 0)
        if not key or key > len(source_lines):
            return key
        rest = source_lines[key - 1].split(f"{name}:", 1)[-1]
        return key + 1 if _BLOCK.fullmatch(rest) or not rest.strip() else key

    try:
        model = EntryModel.model_validate(item, context={"check": check, "text_line": text_line})
    except ValidationError as exc:
        label = f"条目 {item['id']}：" if isinstance(item.get("id"), str) else ""
        out.problems += [Problem(p.path, p.line or line, label + p.message)
                         for p in problems_of(EntryModel, exc, lines, at=(i,))]
        return
    out.entries.append(model.to_entry(Source("file", lines.path, line)))


def _contract_words(p: Problem) -> Problem:
    m = _KEY_TWICE.match(p.message)
    return Problem(p.path, p.line, f"字段 {m.group(1)} 重复了（第 {m.group(2)} 行）") if m else p


def parse_entries(text: str, shown: str, *, check: TemplateCheck | None = None) -> list[Entry]:
    """One file's entries, or FileProblems (the parser a watched knowledge directory uses)."""
    load = parse_text(text, shown, check=check)
    if load.problems:
        raise FileProblems(load.problems)
    return load.entries


def load_file(path: Path, *, check: TemplateCheck | None = None, name: str | None = None) -> FileLoad:
    shown = name or str(path)
    try:
        text = read_text(path, shown)
    except FileProblems as exc:
        return FileLoad(path=shown, problems=exc.problems)
    return parse_text(text, shown, check=check)


def is_entry_file(path: Path) -> bool:
    """A knowledge file: ``*.yaml`` / ``*.yml`` at the directory's top level, not hidden."""
    return path.suffix in (".yaml", ".yml") and not path.name.startswith(".")
