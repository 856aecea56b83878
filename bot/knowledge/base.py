"""The live knowledge base: file entries (the seed) merged with database entries, one matcher in service.

Merging: a file entry serves unless the database has a row for its id. An
``active`` row replaces it (that is what ``/kb edit`` of a file entry makes,
and it survives reloads of the file); a ``deleted`` row hides it; a ``reset``
row is inert, so the file version serves again. Ids only in the database are
entries made with ``/kb add``.

:meth:`KnowledgeBase.refresh` re-reads what changed (files by modification
time, the database by a fingerprint of its rows) and, when anything did,
builds a complete new :class:`Matcher` off the event loop and swaps it in with
one assignment; questions in flight keep the matcher they started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.knowledge import store
from bot.knowledge.contract import TemplateCheck
from bot.knowledge.entry import Entry
from bot.knowledge.files import KnowledgeFiles, Refresh
from bot.knowledge.matcher import Matcher, MatchSettings
from bot.knowledge.text import Analyzer, Synonyms
from bot.yamldoc import Problem

log = logging.getLogger("siyu.knowledge")


def user_words(entries: Iterable[Entry]) -> list[str]:
    return [k for e in entries if e.match != "regex" for k in e.keywords]


def build_matcher(entries: list[Entry], synonyms: Synonyms, stopwords: list[str], settings: MatchSettings,
                  analyzer: Analyzer | None = None, chatter: Mapping[str, list[str]] | None = None) -> Matcher:
    """A matcher for ``entries``; reuses ``analyzer`` when its dictionary would be the same.
    ``chatter``: the knowledge directory's additions to the chatter lists (:mod:`bot.knowledge.chatter`)."""
    words = user_words(entries)
    extra = dict(chatter or {})
    if analyzer is None or analyzer.synonyms is not synonyms or analyzer.extra_stopwords != tuple(stopwords) \
            or analyzer.source_words != frozenset(words) or analyzer.extra_chatter != extra:
        analyzer = Analyzer(synonyms, stopwords, words, extra)
    return Matcher(entries, analyzer, settings)


@dataclass(slots=True)
class Reload:
    """What one refresh did, for logs and the ``/kb reload`` answer."""

    rebuilt: bool = False
    files: Refresh = field(default_factory=Refresh)
    db_changed: bool = False
    entries: int = 0
    file_entries: int = 0
    db_entries: int = 0
    problems: list[Problem] = field(default_factory=list)


class KnowledgeBase:
    def __init__(self, directory: Path | None, *, settings: MatchSettings | None = None,
                 check: TemplateCheck | None = None, use_db: bool = True,
                 db_check: TemplateCheck | None = None) -> None:
        self.directory = directory
        self.settings = settings or MatchSettings()
        self.check = check
        # Database rows were tried with ``check`` when they were added; on every reload (on the event loop)
        # they are only compiled (``db_check``, default ``check``).
        self.db_check = db_check or check
        self.use_db = use_db
        self.files = KnowledgeFiles(directory, check=check) if directory is not None else None
        self.db: dict[str, store.DbEntry] = {}
        self.db_fingerprint: tuple[int, int] | None = None
        self.matcher = Matcher([], Analyzer(), self.settings)
        self._lock = asyncio.Lock()

    # ── the merged view ──
    def merged(self) -> list[Entry]:
        out: dict[str, Entry] = {}
        if self.files is not None:
            for e in self.files.entries:
                out[e.id] = e
        for eid, row in self.db.items():
            if row.state == "active" and row.entry is not None:
                out[eid] = row.entry
            elif row.state == "deleted":
                out.pop(eid, None)
        return list(out.values())

    def file_entry(self, entry_id: str) -> Entry | None:
        if self.files is None:
            return None
        return next((e for e in self.files.entries if e.id == entry_id), None)

    @property
    def problems(self) -> list[Problem]:
        out = list(self.files.problems) if self.files is not None else []
        out += [Problem("数据库", 0, f"条目 {r.entry_id}：{r.problem}") for r in self.db.values() if r.problem]
        return out

    # ── reloading ──
    def _rebuild(self) -> Matcher:
        synonyms = self.files.synonyms if self.files is not None else Synonyms()
        stopwords = self.files.stopwords if self.files is not None else []
        chatter = self.files.chatter if self.files is not None else {}
        return build_matcher(self.merged(), synonyms, stopwords, self.settings, self.matcher.analyzer, chatter)

    async def refresh(self, db: Any = None, *, force: bool = False, files: bool = True) -> Reload:
        """Re-read changed files (all of them with ``force``) and database rows; swap in a new matcher if needed."""
        async with self._lock:
            out = Reload()
            changed = False
            if self.files is not None and (files or force):
                out.files = await asyncio.to_thread(self.files.refresh, force=force)
                changed = out.files.changed
            if db is not None and self.use_db:
                async with db.read() as s:
                    fp = await store.fingerprint(s)
                    if force or fp != self.db_fingerprint:
                        self.db = await store.load_entries(s, self.db_check)
                        out.db_changed = fp != self.db_fingerprint
                        self.db_fingerprint = fp
                        changed = changed or out.db_changed or force
            if changed or force:
                self.matcher = await asyncio.to_thread(self._rebuild)
                out.rebuilt = True
            out.entries = len(self.matcher.entries)
            out.file_entries = len(self.files.entries) if self.files is not None else 0
            out.db_entries = sum(1 for r in self.db.values() if r.state == "active" and r.entry is not None)
            out.problems = self.problems
            if out.rebuilt:
                log.info("knowledge base loaded: %d entries (%d from files, %d from the database), %d problems",
                         out.entries, out.file_entries, out.db_entries, len(out.problems))
            return out

    def load_now(self) -> Reload:
        """Files only, synchronously (the CLI)."""
        out = Reload()
        if self.files is not None:
            out.files = self.files.refresh(force=True)
        self.matcher = self._rebuild()
        out.rebuilt = True
        out.entries = len(self.matcher.entries)
        out.file_entries = len(self.files.entries) if self.files is not None else 0
        out.problems = self.problems
        return out

    def load_db_rows(self, rows: dict[str, store.DbEntry]) -> None:
        self.db = rows
        self.matcher = self._rebuild()
