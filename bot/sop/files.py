"""The script directory: every ``*.yaml`` script with its last good version (a :class:`bot.watched.WatchedDir`).

:meth:`ScriptFiles.refresh` looks at the scripts and at ``templates/`` (a changed
template re-reads every script: a script carries the text of its templates). A
file with problems is reported (file, line, problem) and its previous version —
if it ever loaded — stays live; a fixed file replaces it; a deleted file's
script goes. Two files may not declare the same script id: the later one is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot.sop.script import Defaults, Script, parse_script
from bot.watched import Refresh, WatchedDir, ids_used_twice, shown_name
from bot.yamldoc import Problem, tree_stamp

if TYPE_CHECKING:
    from bot.templates import Templates
    from bot.textcheck import TextCheck

log = logging.getLogger("siyu.sop")

TEMPLATES_DIR = "templates"


class ScriptFiles:
    def __init__(self, directory: Path, *, templates: Templates | None = None, defaults: Defaults | None = None,
                 exclude: tuple[str, ...] = (), lexicon: TextCheck | None = None) -> None:
        self.directory = directory
        self.lexicon = lexicon  # ``sop check``: a step text with a reject term of the compliance lexicon is refused
        self.templates = templates
        self.defaults = defaults or Defaults()
        self.exclude = {e for e in exclude if e}
        self._templates_stamp: tuple[tuple[str, int, int], ...] | None = None
        self.watched: WatchedDir[Script] = WatchedDir(
            directory, self._parse, select=self._wanted, missing="SOP 脚本目录不存在",
            check=ids_used_twice(lambda s: [s.id], self.name, "脚本 id"))

    @property
    def templates_dir(self) -> Path:
        return self.directory / TEMPLATES_DIR

    def name(self, path: Path) -> str:
        return shown_name(path, self.directory.parent)

    def _wanted(self, path: Path) -> bool:
        return path.name not in self.exclude and path.resolve() not in self.exclude

    def _parse(self, text: str, shown: str) -> Script:
        return parse_script(text, shown, templates=self.templates, templates_dir=self.templates_dir,
                            defaults=self.defaults, lexicon=self.lexicon)

    @property
    def scripts(self) -> dict[str, Script]:
        out: dict[str, Script] = {}
        for script in self.watched.values():
            out.setdefault(script.id, script)
        return out

    @property
    def problems(self) -> list[Problem]:
        return self.watched.problems

    def refresh(self, *, force: bool = False) -> Refresh:
        """Look at the files; ``reloaded`` names the files whose script version changed."""
        tstamp = tree_stamp(self.templates_dir)
        if tstamp != self._templates_stamp:
            if self._templates_stamp is not None:
                self.watched.forget()
            self._templates_stamp = tstamp
        before = {p: s.version for p, s in self.watched.good.items()}
        report = self.watched.refresh(force=force)
        after = self.watched.good
        report.reloaded = [self.name(p) for p, s in after.items()
                           if self.name(p) in report.reloaded and before.get(p) != s.version]
        report.changed = bool(report.reloaded) or any(p not in after for p in before)
        for p in report.new_problems:
            log.error("SOP script refused: %s", p)
        return report
