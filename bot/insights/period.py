"""Periods of local days: ``--since/--until``, 「今天」「本周」「本月」「7天」, and the period before.

A period runs from the start of local day ``since`` to the start of the local day after
``until`` (both days included; the end instant excluded), in the bot's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 366
DAYS_RX = re.compile(r"(?:近|最近)?\s*(\d{1,3})\s*(?:天|日|d)?")


@dataclass(frozen=True, slots=True)
class Period:
    since: date
    until: date
    tz: ZoneInfo

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def midnight(self, day: date) -> datetime:
        """The start of local ``day``, in UTC."""
        return datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.midnight(self.since)

    @property
    def end(self) -> datetime:
        return self.midnight(self.until + timedelta(days=1))

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        return Period(self.since - timedelta(days=self.days), self.since - timedelta(days=1), self.tz)

    def to_json(self) -> dict[str, str | int]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "days": self.days,
                "timezone": str(self.tz)}


def local_today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def period_of_days(until: date, days: int, tz: ZoneInfo) -> Period:
    return Period(until - timedelta(days=days - 1), until, tz)


def parse_span(text: str, today: date, tz: ZoneInfo) -> Period | None:
    """「今天」「昨天」「本周」(Monday to today)「本月」(the 1st to today)「7天」「近30天」「30」; None if not one."""
    t = text.strip().lower()
    if t in ("今天", "今日", "today"):
        return Period(today, today, tz)
    if t in ("昨天", "昨日", "yesterday"):
        return Period(today - timedelta(days=1), today - timedelta(days=1), tz)
    if t in ("本周", "这周", "week"):
        return Period(today - timedelta(days=today.weekday()), today, tz)
    if t in ("本月", "这个月", "month"):
        return Period(today.replace(day=1), today, tz)
    m = DAYS_RX.fullmatch(t)
    if m and 1 <= int(m.group(1)) <= MAX_DAYS:
        return period_of_days(today, int(m.group(1)), tz)
    return None
