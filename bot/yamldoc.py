"""YAML files operators edit, read with the line of every value so problems can name it.

``load_yaml(text, path)`` gives the plain data and a :class:`Lines` map from a
path of keys/indices (``("tiers", 2, "requires")``) to its line in the file.
Validators report :class:`Problem` (``file:line: problem``); a file with any
problem is refused whole and the previous version stays live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Key = str | int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file; ``str()`` is ``file:line: problem``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}" if where else self.message

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "problem": self.message}


class FileProblems(ValueError):
    """A file that cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(slots=True)
class Lines:
    """Where each value of a YAML document sits."""

    path: str
    by_key: dict[tuple[Key, ...], int] = field(default_factory=dict)

    def line(self, *keys: Key) -> int:
        """The line of ``keys`` or of its nearest ancestor that has one."""
        k = tuple(keys)
        while k:
            if k in self.by_key:
                return self.by_key[k]
            k = k[:-1]
        return self.by_key.get((), 0)

    def problem(self, message: str, *keys: Key) -> Problem:
        return Problem(self.path, self.line(*keys), message)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _build(loader: yaml.SafeLoader, node: yaml.Node, where: tuple[Key, ...], lines: Lines,
           problems: list[Problem]) -> Any:
    lines.by_key.setdefault(where, _line(node))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int) or isinstance(key, bool):
                problems.append(Problem(lines.path, _line(key_node), f"键应是文字，收到 {key!r}"))
                continue
            if key in out:
                problems.append(Problem(lines.path, _line(key_node),
                                        f"{key} 重复了（第 {lines.by_key.get((*where, key), 0)} 行已有）"))
                continue
            lines.by_key[(*where, key)] = _line(key_node)
            out[key] = _build(loader, value_node, (*where, key), lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*where, i), lines, problems) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, path: str) -> tuple[Any, Lines]:
    """Parse one document; raise FileProblems on a syntax error or duplicate keys."""
    lines = Lines(path)
    loader = yaml.SafeLoader(text)
    problems: list[Problem] = []
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or exc.context or "无法解析"
            raise FileProblems([Problem(path, mark.line + 1 if mark else 0, f"YAML 语法错误：{what}")]) from None
        except yaml.YAMLError as exc:
            raise FileProblems([Problem(path, 0, f"YAML 语法错误：{exc}")]) from None
        if root is None:
            return None, lines
        try:
            data = _build(loader, root, (), lines, problems)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise FileProblems([Problem(path, mark.line + 1 if mark else 0, f"无法解析：{exc}")]) from None
    finally:
        loader.dispose()
    if problems:
        raise FileProblems(problems)
    return data, lines


def read_text(path: Path, shown: str | None = None) -> str:
    """A file's UTF-8 text, or FileProblems naming why it cannot be read."""
    name = shown or str(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblems([Problem(name, 0, f"文件不是 UTF-8 编码（第 {exc.start} 字节）")]) from None
    except OSError as exc:
        raise FileProblems([Problem(name, 0, f"无法读取：{exc.strerror}")]) from None


def load_yaml_file(path: Path, shown: str | None = None) -> tuple[Any, Lines]:
    return load_yaml(read_text(path, shown), shown or str(path))


def kind_of(value: Any) -> str:
    """What a YAML value is, as a problem message names it (收到数字 3, 收到列表 …)."""
    if isinstance(value, bool):
        return "布尔值"
    if isinstance(value, int | float):
        return f"数字 {value}"
    if value is None:
        return "空值"
    if isinstance(value, list):
        return "列表"
    if isinstance(value, dict):
        return "映射"
    return "文字" if isinstance(value, str) else type(value).__name__


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of an operator-edited file, or None when it cannot be read: the cheap look
    a live reload takes before it reads the file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def tree_stamp(directory: Path, pattern: str = "*.j2") -> tuple[tuple[str, int, int], ...]:
    """The stamps of every file matching ``pattern`` under ``directory`` (e.g. the templates of scripts)."""
    if not directory.is_dir():
        return ()
    return tuple((str(p), *s) for p in sorted(directory.rglob(pattern)) if (s := file_stamp(p)) is not None)
