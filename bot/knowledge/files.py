"""The knowledge directory, watched: entry files, synonyms and stop words, each with its last good version.

Built on :mod:`bot.watched` (stamp → digest → parse → keep the last good
version → problems with file and line). A file that fails validation is
reported and its previous version — if it ever loaded — stays in service; a
file that is fixed replaces it; deleted files drop their entries. An entry file
may not use an id that another file in service uses (:func:`ids_in_two_files`).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from bot.knowledge.chatter import Sections, parse_sections
from bot.knowledge.entry import Entry
from bot.knowledge.loader import Problem, TemplateCheck, is_entry_file, parse_entries
from bot.knowledge.text import Synonyms, word_list
from bot.watched import CrossCheck, Refresh, WatchedDir, WatchedFile, shown_name
from bot.yamldoc import FileProblems

log = logging.getLogger("siyu.knowledge")

SYNONYMS = "synonyms.txt"
STOPWORDS = "stopwords.txt"
CHATTER = "chatter.txt"

__all__ = ["KnowledgeFiles", "Refresh", "ids_in_two_files"]


def ids_in_two_files() -> CrossCheck[list[Entry]]:
    """The cross-file check: an id a new file uses and a file in service (or an earlier new one) already uses
    is a problem of the new file, at the entry's line: ``id a 与 kb/a.yaml:1 重复``."""

    def check(fresh: dict[Path, list[Entry]], kept: dict[Path, list[Entry]]) -> dict[Path, list[Problem]]:
        owner: dict[str, Entry] = {e.id: e for entries in kept.values() for e in entries}
        out: dict[Path, list[Problem]] = {}
        for path, entries in sorted(fresh.items()):
            clashes = [Problem(e.source.path, e.source.line,
                               f"id {e.id} 与 {owner[e.id].source.path}:{owner[e.id].source.line} 重复")
                       for e in entries if e.id in owner]
            if clashes:
                out[path] = clashes
            else:
                owner.update({e.id: e for e in entries})
        return out

    return check


def _synonyms(text: str, shown: str) -> Synonyms:
    synonyms, problems = Synonyms.parse(text, shown)
    if problems:
        raise FileProblems(problems)
    return synonyms


def _stopwords(text: str, shown: str) -> list[str]:
    return word_list(text)


def _chatter(text: str, shown: str) -> Sections:
    sections, problems = parse_sections(text, shown)
    if problems:
        raise FileProblems(problems)
    return sections


class KnowledgeFiles:
    """The entry files of a directory with its ``synonyms.txt``, ``stopwords.txt`` and ``chatter.txt``."""

    def __init__(self, directory: Path, *, check: TemplateCheck | None = None) -> None:
        self.directory = directory
        self.check = check
        base = directory.parent
        self.dir = WatchedDir(directory, partial(parse_entries, check=check), pattern="*", select=is_entry_file,
                              base=base, missing="知识库目录不存在", check=ids_in_two_files())
        self._synonyms = WatchedFile(directory / SYNONYMS, _synonyms, shown=shown_name(directory / SYNONYMS, base))
        self._stopwords = WatchedFile(directory / STOPWORDS, _stopwords,
                                      shown=shown_name(directory / STOPWORDS, base))
        self._chatter = WatchedFile(directory / CHATTER, _chatter, shown=shown_name(directory / CHATTER, base))
        self.synonyms = Synonyms()
        self.stopwords: list[str] = []
        self.chatter: Sections = {}

    def name(self, path: Path) -> str:
        """How problems name a file: relative to the directory's parent (``knowledge_base/faq.yaml``)."""
        return self.dir.name(path)

    @property
    def entries(self) -> list[Entry]:
        return [e for entries in self.dir.values() for e in entries]

    @property
    def problems(self) -> list[Problem]:
        out = [*self.dir.problems, *self._synonyms.problems, *self._stopwords.problems, *self._chatter.problems]
        return sorted(out, key=lambda p: (p.path, p.line))

    @property
    def file_count(self) -> int:
        return len(self.dir.good)

    def refresh(self, *, force: bool = False) -> Refresh:
        """Look at every file (re-read them all with ``force``); ``changed`` when what serves changed."""
        before = (self.entries, self.synonyms.content, self.stopwords, self.chatter)
        report = self.dir.refresh(force=force)
        if self.directory.is_dir():
            words = self._synonyms.refresh(force=force)
            self._stopwords.refresh(force=force)
            said = self._chatter.refresh(force=force)
            report.rejected += said.rejected
            report.new_problems += said.new_problems
            report.rejected += words.rejected
            report.new_problems += words.new_problems
            self.synonyms = self._synonyms.good or (Synonyms() if self.synonyms.content else self.synonyms)
            self.stopwords = self._stopwords.good or []
            self.chatter = self._chatter.good or {}
            if self.synonyms.content != before[1] and self._synonyms.good is not None:
                report.reloaded.append(self._synonyms.shown)
        report.problems = self.problems
        report.changed = (self.entries, self.synonyms.content, self.stopwords, self.chatter) != before
        for p in report.new_problems:
            log.error("knowledge file refused (previous version stays): %s", p)
        return report
