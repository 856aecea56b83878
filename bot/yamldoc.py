"""YAML files operators edit, read with the line of every value so problems can name it.

``load_yaml(text, path)`` gives the plain data and a :class:`Lines` map from a
path of keys/indices (``("tiers", 2, "requires")``) to its line in the file.
Validators report :class:`Problem` (``file:line: problem``); a file with any
problem is refused whole and the previous version stays live.

Limits: a file may hold at most ``MAX_ALIASES`` aliases, nest ``MAX_DEPTH`` levels
and expand to ``MAX_NODES`` values (an alias counts the values it stands for), so a
few hundred bytes of "billion laughs" cannot take the memory or the time of the
process. Each aliased node is built once and shared, and lines are recorded for
the nodes as written, not for every copy an alias makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Key = str | int

MAX_ALIASES = 1_000
MAX_DEPTH = 50
MAX_NODES = 500_000


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


class _TooBig(Exception):
    """A limit was crossed; ``line`` and ``message`` say where and which."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing and caps merged mappings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _TooBig(mark.line + 1, f"别名（*引用）太多：最多 {MAX_ALIASES} 个")
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooBig(mark.line + 1, f"嵌套太深：最多 {MAX_DEPTH} 层")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: Any) -> None:
        super().flatten_mapping(node)
        if len(node.value) > MAX_NODES:
            raise _TooBig(_line(node), f"合并（<<）展开后的键太多：最多 {MAX_NODES} 个节点")


@dataclass(slots=True)
class _Builder:
    """Builds plain data from the node graph: every node once (an alias reuses the value built for its
    anchor), counting the values the document expands to."""

    loader: _Loader
    lines: Lines
    problems: list[Problem]
    built: dict[int, tuple[Any, int]] = field(default_factory=dict)
    open: set[int] = field(default_factory=set)
    count: int = 0

    def _add(self, n: int, node: yaml.Node) -> None:
        self.count += n
        if self.count > MAX_NODES:
            raise _TooBig(_line(node), f"展开后的节点太多（别名层层引用？）：最多 {MAX_NODES} 个")

    def build(self, node: yaml.Node, where: tuple[Key, ...], depth: int = 0) -> Any:
        self.lines.by_key.setdefault(where, _line(node))
        ident = id(node)
        if ident in self.built:
            value, size = self.built[ident]
            self._add(size, node)
            return value
        if ident in self.open:
            raise _TooBig(_line(node), "别名引用了包含它自己的节点（循环引用）")
        if depth > MAX_DEPTH:
            raise _TooBig(_line(node), f"嵌套太深：最多 {MAX_DEPTH} 层")
        before = self.count
        self._add(1, node)
        self.open.add(ident)
        try:
            value = self._build(node, where, depth)
        finally:
            self.open.discard(ident)
        self.built[ident] = (value, self.count - before)
        return value

    def _build(self, node: yaml.Node, where: tuple[Key, ...], depth: int) -> Any:
        loader, lines, problems = self.loader, self.lines, self.problems
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(Problem(lines.path, _line(key_node), "键应是文字，收到映射或列表"))
                    continue
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    problems.append(Problem(lines.path, _line(key_node), f"键应是文字，收到 {key!r}"))
                    continue
                if key in out:
                    problems.append(Problem(lines.path, _line(key_node),
                                            f"{key} 重复了（第 {lines.by_key.get((*where, key), 0)} 行已有）"))
                    continue
                lines.by_key[(*where, key)] = _line(key_node)
                out[key] = self.build(value_node, (*where, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*where, i), depth + 1) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)


def load_yaml(text: str, path: str) -> tuple[Any, Lines]:
    """Parse one document; raise FileProblems on a syntax error, duplicate keys or a crossed limit."""
    lines = Lines(path)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character anywhere in the text
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise FileProblems([Problem(path, line, f"文件里有不允许的控制字符 U+{exc.character:04X}")]) from None
    problems: list[Problem] = []
    try:
        try:
            root = loader.get_single_node()
        except _TooBig as exc:
            raise FileProblems([Problem(path, exc.line, exc.message)]) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or exc.context or "无法解析"
            raise FileProblems([Problem(path, mark.line + 1 if mark else 0, f"YAML 语法错误：{what}")]) from None
        except yaml.YAMLError as exc:
            raise FileProblems([Problem(path, 0, f"YAML 语法错误：{exc}")]) from None
        except RecursionError:
            raise FileProblems([Problem(path, 0, f"嵌套太深：最多 {MAX_DEPTH} 层")]) from None
        if root is None:
            return None, lines
        try:
            data = _Builder(loader, lines, problems).build(root, ())
        except _TooBig as exc:
            raise FileProblems([Problem(path, exc.line, exc.message)]) from None
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
