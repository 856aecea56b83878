"""The knowledge directory: entry files, synonyms and stop words, each with its last good version.

:meth:`KnowledgeFiles.refresh` looks at modification times and sizes, re-reads
what changed and validates it. A file that fails validation is reported (file,
line, problem) and its previous version — if it ever loaded — stays in
service; a file that is fixed replaces it. Deleted files drop their entries.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge.entry import Entry
from bot.knowledge.loader import FileLoad, Problem, TemplateCheck, cross_check, entry_files, load_file
from bot.knowledge.text import Synonyms, read_word_list
from bot.yamldoc import file_stamp

log = logging.getLogger("siyu.knowledge")

SYNONYMS = "synonyms.txt"
STOPWORDS = "stopwords.txt"


@dataclass(slots=True)
class _Tracked:
    stamp: tuple[int, int] | None = None   # (mtime_ns, size) last looked at
    digest: str = ""                       # content hash last parsed
    good: FileLoad | None = None           # the version in service
    problems: list[Problem] = field(default_factory=list)  # why the current content is not in service


@dataclass(slots=True)
class Refresh:
    """What one refresh found."""

    changed: bool = False              # the set of entries, synonyms or stop words changed
    reloaded: list[str] = field(default_factory=list)   # files whose new version went into service
    rejected: list[str] = field(default_factory=list)   # files whose new version was refused
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # every current problem, old and new
    new_problems: list[Problem] = field(default_factory=list)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class KnowledgeFiles:
    def __init__(self, directory: Path, *, check: TemplateCheck | None = None) -> None:
        self.directory = directory
        self.check = check
        self._files: dict[Path, _Tracked] = {}
        self._synonyms = _Tracked()
        self._stopwords = _Tracked()
        self.synonyms = Synonyms()
        self.stopwords: list[str] = []

    def name(self, path: Path) -> str:
        """How problems name a file: relative to the directory's parent (``knowledge_base/faq.yaml``)."""
        try:
            return str(path.relative_to(self.directory.parent))
        except ValueError:
            return str(path)

    @property
    def entries(self) -> list[Entry]:
        return [e for t in self._files.values() if t.good is not None for e in t.good.entries]

    @property
    def problems(self) -> list[Problem]:
        out = [p for t in (self._synonyms, self._stopwords, *self._files.values()) for p in t.problems]
        return sorted(out, key=lambda p: (p.path, p.line))

    @property
    def file_count(self) -> int:
        return sum(1 for t in self._files.values() if t.good is not None)

    def refresh(self, *, force: bool = False) -> Refresh:
        report = Refresh()
        if not self.directory.is_dir():
            problem = Problem(str(self.directory), 0, "知识库目录不存在")
            if not any(p.message == problem.message for p in self._synonyms.problems):
                report.new_problems.append(problem)
            self._synonyms.problems = [problem]
            report.problems = self.problems
            return report
        self._refresh_words(report, force)
        present = entry_files(self.directory)
        for gone in [p for p in self._files if p not in present]:
            tracked = self._files.pop(gone)
            if tracked.good is not None and tracked.good.entries:
                report.changed = True
            report.removed.append(self.name(gone))
        fresh: dict[Path, FileLoad] = {}
        for path in present:
            tracked = self._files.setdefault(path, _Tracked())
            stamp = file_stamp(path)
            if not force and stamp == tracked.stamp:
                continue
            tracked.stamp = stamp
            digest = _digest(path)
            if not force and digest == tracked.digest:
                continue
            tracked.digest = digest
            fresh[path] = load_file(path, check=self.check, name=self.name(path))
        if fresh:
            self._accept(fresh, report)
        report.problems = self.problems
        return report

    def _accept(self, fresh: dict[Path, FileLoad], report: Refresh) -> None:
        # Unchanged files keep their ids; a changed file that reuses one of them is refused.
        kept = [t.good for p, t in sorted(self._files.items()) if p not in fresh and t.good is not None]
        candidates = [load for _, load in sorted(fresh.items()) if load.ok]
        clashes = cross_check([*kept, *candidates])
        for path, load in sorted(fresh.items()):
            tracked = self._files[path]
            problems = load.problems + [p for p in clashes if p.path == load.path]
            if problems:
                if tracked.problems != problems:
                    report.new_problems.extend(problems)
                tracked.problems = problems
                report.rejected.append(load.path)
                for p in problems:
                    log.error("knowledge file refused (previous version stays): %s", p)
                continue
            tracked.problems = []
            if tracked.good is None or tracked.good.entries != load.entries:
                report.changed = True
            tracked.good = load
            report.reloaded.append(load.path)

    def _refresh_words(self, report: Refresh, force: bool) -> None:
        for tracked, filename in ((self._synonyms, SYNONYMS), (self._stopwords, STOPWORDS)):
            path = self.directory / filename
            stamp = file_stamp(path)
            if not force and stamp == tracked.stamp and tracked.digest:
                continue
            tracked.stamp = stamp
            digest = _digest(path) if stamp else "absent"
            if not force and digest == tracked.digest:
                continue
            tracked.digest = digest
            if filename == SYNONYMS:
                synonyms, problems = Synonyms.load(path, self.name(path))
                if problems:
                    if tracked.problems != problems:
                        report.new_problems.extend(problems)
                    tracked.problems = problems
                    report.rejected.append(self.name(path))
                    for p in problems:
                        log.error("synonyms refused (previous version stays): %s", p)
                    continue
                tracked.problems = []
                if synonyms.content != self.synonyms.content:
                    report.changed = True
                    if stamp:
                        report.reloaded.append(self.name(path))
                self.synonyms = synonyms
            else:
                words = read_word_list(path)
                if words != self.stopwords:
                    report.changed = True
                self.stopwords = words
