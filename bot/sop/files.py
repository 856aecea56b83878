"""The script directory: every ``*.yaml`` script with its last good version.

:meth:`ScriptFiles.refresh` looks at modification times and sizes (of the
scripts and of ``templates/``), re-reads what changed and validates it. A file
with problems is reported (file, line, problem) and its previous version — if it
ever loaded — stays live; a fixed file replaces it; a deleted file's script goes.
Two files may not declare the same script id: the later one is refused.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.sop.script import Defaults, Script, parse_script
from bot.yamldoc import FileProblems, Problem, file_stamp, read_text, tree_stamp

if TYPE_CHECKING:
    from bot.templates import Templates

log = logging.getLogger("siyu.sop")

TEMPLATES_DIR = "templates"


@dataclass(slots=True)
class _Tracked:
    stamp: tuple[int, int] | None = None
    digest: str = ""
    good: Script | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class Refresh:
    changed: bool = False
    reloaded: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class ScriptFiles:
    def __init__(self, directory: Path, *, templates: Templates | None = None, defaults: Defaults | None = None,
                 exclude: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.templates = templates
        self.defaults = defaults or Defaults()
        self.exclude = {e for e in exclude if e}
        self._files: dict[Path, _Tracked] = {}
        self._templates_stamp: tuple[tuple[str, int, int], ...] | None = None
        self.missing_dir = False

    @property
    def templates_dir(self) -> Path:
        return self.directory / TEMPLATES_DIR

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.directory.parent))
        except ValueError:
            return str(path)

    def script_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.yaml") if p.is_file() and p.name not in self.exclude
                      and p.resolve() not in self.exclude)

    @property
    def scripts(self) -> dict[str, Script]:
        out: dict[str, Script] = {}
        for _, t in sorted(self._files.items()):
            if t.good is not None and t.good.id not in out:
                out[t.good.id] = t.good
        return out

    @property
    def problems(self) -> list[Problem]:
        out = [p for t in self._files.values() for p in t.problems]
        if self.missing_dir:
            out.insert(0, Problem(str(self.directory), 0, "SOP 脚本目录不存在"))
        return sorted(out, key=lambda p: (p.path, p.line))

    def refresh(self, *, force: bool = False) -> Refresh:
        report = Refresh()
        self.missing_dir = not self.directory.is_dir()
        tstamp = tree_stamp(self.templates_dir)
        if tstamp != self._templates_stamp:
            force = force or self._templates_stamp is not None
            self._templates_stamp = tstamp
        present = self.script_files()
        for gone in [p for p in self._files if p not in present]:
            tracked = self._files.pop(gone)
            if tracked.good is not None:
                report.changed = True
            report.removed.append(self.name(gone))
        for path in present:
            tracked = self._files.setdefault(path, _Tracked())
            stamp = file_stamp(path)
            if not force and stamp == tracked.stamp:
                continue
            tracked.stamp = stamp
            try:
                text = read_text(path, self.name(path))
            except FileProblems as exc:
                self._reject(tracked, path, exc.problems, report)
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            if not force and digest == tracked.digest:
                continue
            tracked.digest = digest
            try:
                script = parse_script(text, self.name(path), templates=self.templates,
                                      templates_dir=self.templates_dir, defaults=self.defaults)
            except FileProblems as exc:
                self._reject(tracked, path, exc.problems, report)
                continue
            owner = next((p for p, t in sorted(self._files.items())
                          if p != path and t.good is not None and t.good.id == script.id), None)
            if owner is not None:
                self._reject(tracked, path, [Problem(self.name(path), 1, f"脚本 id {script.id} 已在 "
                                                     f"{self.name(owner)} 中使用")], report)
                continue
            tracked.problems = []
            if tracked.good is None or tracked.good.version != script.version:
                report.changed = True
                report.reloaded.append(self.name(path))
            tracked.good = script
        if report.removed:
            # a file refused for reusing an id of a file now gone may load: look at it again next time
            for t in self._files.values():
                if t.problems:
                    t.stamp, t.digest = None, ""
        report.problems = self.problems
        return report

    def _reject(self, tracked: _Tracked, path: Path, problems: list[Problem], report: Refresh) -> None:
        tracked.problems = problems
        report.rejected.append(self.name(path))
        kept = " (the previous version stays live)" if tracked.good is not None else ""
        for p in problems:
            log.error("SOP script refused%s: %s", kept, p)
