"""Operator-edited files, watched: the one mechanism every feature's reload uses.

A :class:`WatchedFile` is looked at cheaply (modification time and size — the
*stamp*); when the stamp moved it is read and hashed (the *digest*); when the
content really changed it is parsed. A file that parses becomes the version in
service; a file with problems is reported (``file:line: problem``) and the
previous good version — if there ever was one — stays in service until the file
is fixed. A :class:`WatchedDir` does the same for every matching file of a
folder, drops the version of a deleted file, and lets the feature refuse a file
for a reason that needs the other files (an id used twice).

Parsers take ``(text, shown_name)`` and return the parsed value, or raise
:class:`~bot.yamldoc.FileProblems`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from bot.yamldoc import FileProblems, Problem, file_stamp, read_text

T = TypeVar("T")
Parse = Callable[[str, str], T]
# A check across files: the candidates that parsed this time and the versions kept from before →
# the problems of each candidate that must be refused.
CrossCheck = Callable[[dict[Path, T], dict[Path, T]], dict[Path, list[Problem]]]


@dataclass(slots=True)
class Refresh:
    """What one look at the files found (names as problems show them)."""

    changed: bool = False                                   # what is in service changed
    reloaded: list[str] = field(default_factory=list)       # a new version went into service
    rejected: list[str] = field(default_factory=list)       # a new version was refused
    removed: list[str] = field(default_factory=list)        # a file went away
    problems: list[Problem] = field(default_factory=list)   # every current problem, old and new
    new_problems: list[Problem] = field(default_factory=list)


def shown_name(path: Path, base: Path | None) -> str:
    """How problems name a file: relative to ``base`` (``knowledge_base/faq.yaml``) when it is inside."""
    if base is not None:
        try:
            return str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)


class WatchedFile(Generic[T]):
    """One file and its version in service."""

    def __init__(self, path: Path, parse: Parse[T], *, shown: str | None = None,
                 missing: str | None = None) -> None:
        self.path = path
        self.parse = parse
        self.shown = shown or str(path)
        self.missing = missing          # the problem to report when the file does not exist (None: no problem)
        self.stamp: tuple[int, int] | None = None
        self.digest = ""
        self.good: T | None = None
        self.problems: list[Problem] = []

    def forget(self) -> None:
        """Look at the content again next time even if it did not change (e.g. a dependency changed)."""
        self.stamp, self.digest = None, ""

    def read(self, force: bool = False) -> tuple[bool, T | None, list[Problem]]:
        """(content changed, parsed value or None, problems) — without putting anything in service."""
        stamp = file_stamp(self.path)
        if stamp is None:
            self.stamp, self.digest = None, ""
            return True, None, [Problem(self.shown, 0, self.missing)] if self.missing else []
        if not force and stamp == self.stamp:
            return False, None, []
        self.stamp = stamp
        try:
            text = read_text(self.path, self.shown)
        except FileProblems as exc:
            return True, None, exc.problems
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if not force and digest == self.digest:
            return False, None, []
        self.digest = digest
        try:
            return True, self.parse(text, self.shown), []
        except FileProblems as exc:
            return True, None, exc.problems

    def accept(self, value: T) -> None:
        self.good, self.problems = value, []

    def refuse(self, problems: list[Problem]) -> None:
        self.problems = list(problems)

    def refresh(self, *, force: bool = False) -> Refresh:
        report = Refresh()
        before = list(self.problems)
        changed, value, problems = self.read(force)
        if changed:
            if value is not None:
                self.accept(value)
                report.changed = True
                report.reloaded.append(self.shown)
            elif problems:
                self.refuse(problems)
                report.rejected.append(self.shown)
            elif not self.path.exists():
                self.problems = []
                if self.good is not None:
                    self.good = None
                    report.changed = True
                    report.removed.append(self.shown)
        report.problems = list(self.problems)
        report.new_problems = [p for p in self.problems if p not in before]
        return report


class WatchedDir(Generic[T]):
    """Every file of a folder that ``select`` picks, each with its version in service."""

    def __init__(self, directory: Path, parse: Parse[T], *, pattern: str = "*.yaml",
                 select: Callable[[Path], bool] | None = None, base: Path | None = None,
                 missing: str | None = None, check: CrossCheck[T] | None = None) -> None:
        self.directory = directory
        self.parse = parse
        self.pattern = pattern
        self.select = select or (lambda p: True)
        self.base = base if base is not None else directory.parent
        self.missing = missing
        self.check = check
        self.files: dict[Path, WatchedFile[T]] = {}
        self._dir_problem: list[Problem] = []

    def name(self, path: Path) -> str:
        return shown_name(path, self.base)

    def paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob(self.pattern) if p.is_file() and self.select(p))

    @property
    def good(self) -> dict[Path, T]:
        """The versions in service, by path (sorted)."""
        return {p: w.good for p, w in sorted(self.files.items()) if w.good is not None}

    def values(self) -> list[T]:
        return list(self.good.values())

    @property
    def problems(self) -> list[Problem]:
        out = [*self._dir_problem, *(p for w in self.files.values() for p in w.problems)]
        return sorted(out, key=lambda p: (p.path, p.line))

    def forget(self) -> None:
        for w in self.files.values():
            w.forget()

    def refresh(self, *, force: bool = False) -> Refresh:
        report = Refresh()
        before = self.problems
        missing = not self.directory.is_dir()
        self._dir_problem = [Problem(str(self.directory), 0, self.missing)] if missing and self.missing else []
        present = self.paths()
        for gone in [p for p in self.files if p not in present]:
            watched = self.files.pop(gone)
            if watched.good is not None:
                report.changed = True
            report.removed.append(self.name(gone))
        fresh: dict[Path, T] = {}
        for path in present:
            watched = self.files.setdefault(path, WatchedFile(path, self.parse, shown=self.name(path)))
            changed, value, problems = watched.read(force)
            if not changed:
                continue
            if value is None:
                watched.refuse(problems)
                report.rejected.append(watched.shown)
            else:
                fresh[path] = value
        refused = self.check(fresh, {p: v for p, v in self.good.items() if p not in fresh}) if (
            self.check and fresh) else {}
        for path, value in fresh.items():
            watched = self.files[path]
            if refused.get(path):
                watched.refuse(refused[path])
                report.rejected.append(watched.shown)
                continue
            watched.accept(value)
            report.changed = True
            report.reloaded.append(watched.shown)
        if report.removed and any(w.problems for w in self.files.values()):
            # a file refused because of another file (an id used twice) may load once that one is gone
            for w in self.files.values():
                if w.problems:
                    w.forget()
        report.problems = self.problems
        report.new_problems = [p for p in report.problems if p not in before]
        return report


def ids_used_twice(id_of: Callable[[T], Iterable[str]], names: Callable[[Path], str],
                   what: str = "id", says: str = "{what} {id} 已在 {other} 中使用") -> CrossCheck[T]:
    """A cross-file check: a new file may not declare an id that another file in service declares
    (``says``: the problem, with ``{what}``, ``{id}`` and ``{other}``, the file that has it)."""

    def check(fresh: dict[Path, T], kept: dict[Path, T]) -> dict[Path, list[Problem]]:
        owners: dict[str, Path] = {i: p for p, v in kept.items() for i in id_of(v)}
        out: dict[Path, list[Problem]] = {}
        for path, value in sorted(fresh.items()):
            problems = [Problem(names(path), 1, says.format(what=what, id=i, other=names(owners[i])))
                        for i in id_of(value) if i in owners and owners[i] != path]
            if problems:
                out[path] = problems
            else:
                owners.update({i: path for i in id_of(value)})
        return out

    return check
