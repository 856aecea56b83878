"""A script's timeline for a start time: real due dates and rendered texts, before anything runs.

Shared by ``/sop preview`` and ``python -m bot sop preview``. Texts render with a
sample member (no points, no tags) unless one is given, so a ``when:`` shows
whether that member would get the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.sop.render import Renderer, StepView
from bot.sop.script import Script, sample_context
from bot.sop.timing import due_time
from bot.templates import Templates


@dataclass(frozen=True, slots=True)
class PreviewItem:
    number: int
    key: str
    occurrence: int          # 1-based
    of: int | None           # how many occurrences in all (None: until stopped)
    stage: str
    at: str
    via: str
    nominal: datetime        # local
    due: datetime            # local
    moved: bool              # moved out of quiet hours
    when: str
    would_send: bool | None  # None: no condition
    text: str
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.number, "due": self.due.isoformat(), "via": self.via, "text": self.text}
        if self.key != str(self.number):
            out["id"] = self.key
        if self.of != 1:
            out["occurrence"] = self.occurrence
        if self.stage:
            out["stage"] = self.stage
        if self.moved:
            out["moved_from"] = self.nominal.isoformat()
        if self.when:
            out["when"] = self.when
            out["would_send"] = self.would_send
        if self.error:
            out["error"] = self.error
        return out


def _sample_checkins(due: datetime) -> dict[str, Any]:
    today = due.date()
    yesterday = today - timedelta(days=1)
    return {"yesterday": {"date": yesterday.isoformat(), "count": 0, "names": [], "streaks": []},
            "today": {"date": today.isoformat(), "count": 0, "names": []}, "group_size": 0}


def timeline(script: Script, anchor: datetime, templates: Templates, tz: ZoneInfo, *, member: dict[str, Any] | None
             = None, group: dict[str, Any] | None = None, max_occurrences: int = 30, horizon_days: int = 60
             ) -> list[PreviewItem]:
    """Every occurrence due within ``horizon_days`` of ``anchor`` (at most ``max_occurrences`` per step), by time."""
    renderer = Renderer(templates, tz)
    base = sample_context()
    member_ctx = {**base["member"], **(member or {})}
    group_ctx = {**base["group"], **(group or {})}
    end = anchor + timedelta(days=horizon_days)
    items: list[PreviewItem] = []
    anchor_local = anchor.astimezone(tz)
    for step in script.steps:
        total = 1 if step.repeat is None else step.repeat.times
        n = 0
        while n < max_occurrences and ((step.repeat is None and n == 0) or (step.repeat is not None
                                       and step.repeat.allows(n))):
            nominal, due = due_time(step.at, anchor, tz, step.repeat, n, script.quiet_for(step))
            if n and due > end:
                break
            due_local = due.astimezone(tz)
            view = StepView(member=member_ctx, group=group_ctx, staff={"id": ""},
                            run={"id": 0, "script": script.id, "name": script.name, "started_at": anchor_local,
                                 "day": (due_local.date() - anchor_local.date()).days, "occurrence": n + 1},
                            step={"number": step.number, "stage": step.stage, "at": step.at.text, "key": step.key},
                            trigger={"type": script.trigger}, due=due_local, checkins=_sample_checkins(due_local))
            ctx = view.context(tz)
            would: bool | None = None
            error = ""
            text = ""
            try:
                if step.when:
                    would = renderer.condition(step.when, ctx)
                text = renderer.text(step.source, ctx)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if step.via == "mark_tag" and not text:
                text = " ".join([*(f"+{t}" for t in step.add_tag), *(f"-{t}" for t in step.remove_tag)])
            items.append(PreviewItem(number=step.number, key=step.key, occurrence=n + 1, of=total, stage=step.stage,
                                     at=step.at.text, via=step.via, nominal=nominal.astimezone(tz), due=due_local,
                                     moved=due != nominal, when=step.when, would_send=would, text=text, error=error))
            n += 1
    return sorted(items, key=lambda i: (i.due, i.number, i.occurrence))
