"""Daily local-time windows written by operators: "09:00-21:00", "22:00-08:00" (overnight), several comma-separated.

Read the same way for a knowledge entry's ``active_hours``, an SOP script's ``quiet_hours``, the
handoff's ``working_hours`` and the quiet hours of segment sends (:class:`QuietHours`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

SPAN_RX = re.compile(r"(\d{1,2})[:：](\d{2})\s*[-~～至到]\s*(\d{1,2})[:：](\d{2})")

Spans = tuple[tuple[time, time], ...]


def parse_spans(raw: str, example: str = "09:00-21:00") -> Spans:
    """The windows of ``raw`` (empty for an empty text); ValueError naming the bad part otherwise."""
    spans = []
    for part in re.split(r"[,，;；]", raw):
        part = part.strip()
        if not part:
            continue
        m = SPAN_RX.fullmatch(part)
        if not m:
            raise ValueError(f"时间段 {part!r} 应写成 HH:MM-HH:MM，例如 {example}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"时间段 {part!r} 里有不存在的时刻")
        start, end = time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2)
        if start == end:
            raise ValueError(f"时间段 {part!r} 的开始和结束相同")
        spans.append((start, end))
    return tuple(spans)


def spans_text(spans: Spans) -> str:
    """The canonical text of some windows ("09:00-12:00,14:00-21:00")."""
    return ",".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in spans)


def contains(spans: Spans, t: time) -> bool:
    """Whether the local time of day ``t`` falls in one of the windows (an overnight window wraps)."""
    for start, end in spans:
        if start < end:
            if start <= t < end:
                return True
        elif t >= start or t < end:
            return True
    return False


def next_open(spans: Spans, when: datetime, tz: tzinfo) -> datetime:
    """``when`` if it falls in a window (or there are none), else the start of the next window, in ``tz``."""
    local = when.astimezone(tz)
    if not spans or contains(spans, local.time().replace(tzinfo=None)):
        return local
    starts = []
    for day in (0, 1):
        for start, _ in spans:
            at = datetime.combine(local.date() + timedelta(days=day), start, tzinfo=tz)
            if at > local:
                starts.append(at)
    return min(starts)


def at_local(day: date, clock: time, tz: tzinfo) -> datetime:
    """Local wall-clock ``day clock`` as an aware UTC datetime."""
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Daily local windows in which nothing is sent ("22:00-08:00" runs overnight)."""

    spans: tuple[tuple[time, time], ...]

    @property
    def text(self) -> str:
        return spans_text(self.spans)

    def release(self, when: datetime, tz: tzinfo) -> datetime:
        """``when`` if it is outside the window, else the end of the window it falls in."""
        moved = when
        for _ in range(len(self.spans) + 1):
            local = moved.astimezone(tz)
            t = local.time().replace(tzinfo=None)
            end_at = None
            for start, end in self.spans:
                if start < end and start <= t < end:
                    end_at = at_local(local.date(), end, tz)
                elif start > end and t >= start:
                    end_at = at_local(local.date() + timedelta(days=1), end, tz)
                elif start > end and t < end:
                    end_at = at_local(local.date(), end, tz)
                if end_at is not None:
                    break
            if end_at is None:
                return moved
            moved = end_at
        return moved


def parse_quiet(text: str) -> QuietHours | None:
    """``"22:00-08:00"`` (several comma-separated) → QuietHours; ``""`` / ``off`` → None."""
    raw = str(text).strip()
    if raw.lower() in ("", "off", "none", "无"):
        return None
    spans = parse_spans(raw, "22:00-08:00")
    return QuietHours(spans) if spans else None
