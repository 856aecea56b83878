"""Checking what the bot itself will say against the compliance lexicon, before it is published.

Knowledge answers (``/kb add``, ``/kb edit``, the entry files, ``kb check``), SOP texts
(``sop check``) and the Moments calendar (``/moments set``, the calendar's slots) are
scanned, rendered with their sample values, with the same lexicon that watches staff.
The compliance feature provides a :class:`TextCheck` under :data:`TEXT_CHECK` (its live
matcher, with the words added in chat); other features look it up with
``app.maybe(TEXT_CHECK)`` and check nothing when compliance is not installed. The
command-line checks, which run without the bot, build one from the lexicon files
(:func:`files_check`).

A ``reject`` finding refuses the text (a Moments slot from the calendar file is held
for approval instead); a ``review`` finding is a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.services import ServiceKey
from moderation.lexicon import Lexicon, LexiconFiles, with_allow
from moderation.matcher import Hit, Matcher, first_of_each_term

WARNED = ("reject", "review")  # info hits are no finding


@dataclass(frozen=True, slots=True)
class TextFinding:
    """One lexicon hit in a text the bot will send; ``line`` counts from 1 within the text."""

    line: int
    term: str
    category: str
    level: str
    matched: str

    @property
    def refuses(self) -> bool:
        return self.level == "reject"

    def __str__(self) -> str:
        kind = "违规词" if self.refuses else "敏感词"
        return f"第 {self.line} 行：文案含{kind}“{self.term}”（{self.category}，{self.level}）"


class TextCheck(Protocol):
    def findings(self, text: str) -> list[TextFinding]:
        """The ``reject`` and ``review`` hits of ``text`` (one per term), in the order of the text."""
        ...


TEXT_CHECK: ServiceKey[TextCheck] = ServiceKey("text_check")


class TextRefused(ValueError):
    """A text with a ``reject`` finding. ``lineno`` and ``message`` as a template error has them, so the
    file checks name the line inside a block text."""

    def __init__(self, finding: TextFinding) -> None:
        super().__init__(str(finding))
        self.finding = finding
        self.lineno = finding.line
        self.message = str(finding)


def refuse(findings: list[TextFinding]) -> None:
    """Raise :class:`TextRefused` for the first ``reject`` finding."""
    first = next((f for f in findings if f.refuses), None)
    if first is not None:
        raise TextRefused(first)


def warnings_of(findings: list[TextFinding]) -> list[str]:
    return [str(f) for f in findings if not f.refuses]


class LexiconCheck:
    """A :class:`TextCheck` over a matcher (the live one is swapped on every lexicon reload, so it is read
    at each check) and the categories that apply to staff."""

    def __init__(self, matcher: Callable[[], Matcher], applies: Callable[[Hit], bool] = lambda _h: True) -> None:
        self.matcher = matcher
        self.applies = applies

    def findings(self, text: str) -> list[TextFinding]:
        hits = [h for h in self.matcher().scan(text) if h.level in WARNED and self.applies(h)]
        return [TextFinding(line=text.count("\n", 0, h.start) + 1, term=h.term, category=h.category, level=h.level,
                            matched=h.matched) for h in first_of_each_term(hits)]


def matcher_for(cfg: Any, lexicon: Lexicon) -> Matcher:
    """The engine as the ``[moderation]`` section configures it (the live service, ``siyu moderate`` and the
    command-line checks)."""
    return Matcher(with_allow(lexicon, cfg.in_app_contact), max_gap=cfg.max_gap, allowed_domains=cfg.allowed_domains,
                   detector_levels=cfg.detector_levels)


def staff_categories(cfg: Any) -> Callable[[Hit], bool]:
    """Whether a hit's category is checked in what staff write (``staff_categories``; empty: all but
    ``customer_only_categories``)."""
    if cfg.staff_categories:
        chosen = set(cfg.staff_categories)
        return lambda h: h.category in chosen
    excluded = set(cfg.customer_only_categories)
    return lambda h: h.category not in excluded


def files_check(config: Any) -> LexiconCheck | None:
    """The check the command line uses: the lexicon files of ``moderation.lexicon_dir`` (not the words added in
    chat); None when the directory does not exist."""
    directory = Path(config.resolve(config.moderation.lexicon_dir))
    if not directory.is_dir():
        return None
    files = LexiconFiles(directory)
    files.refresh(force=True)
    matcher = matcher_for(config.moderation, files.build())
    return LexiconCheck(lambda: matcher, staff_categories(config.moderation))
