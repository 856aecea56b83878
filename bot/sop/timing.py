"""When a step is due: its ``at``, its repetition, quiet hours (``bot.hours.QuietHours``) and the late rule.

Every calendar computation happens in the bot's time zone (``bot.timezone``):
``day 1 09:30`` is 09:30 local time on the local calendar day after the trigger,
``+2h`` is two hours of elapsed time. Times are stored and compared in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.hours import QuietHours, at_local

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_ALIASES: dict[str, int] = {}
for _i, _names in enumerate((
    ("monday", "mon", "周一", "星期一", "礼拜一"), ("tuesday", "tue", "周二", "星期二", "礼拜二"),
    ("wednesday", "wed", "周三", "星期三", "礼拜三"), ("thursday", "thu", "周四", "星期四", "礼拜四"),
    ("friday", "fri", "周五", "星期五", "礼拜五"), ("saturday", "sat", "周六", "星期六", "礼拜六"),
    ("sunday", "sun", "周日", "星期日", "星期天", "周天", "礼拜天", "礼拜日"),
)):
    for _n in _names:
        WEEKDAY_ALIASES[_n] = _i
WEEKDAY_CN = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

_DURATION_RX = re.compile(r"(\d+)\s*(m|h|d|min|分钟|小时|天)")
_UNITS = {"m": 60, "min": 60, "分钟": 60, "h": 3600, "小时": 3600, "d": 86400, "天": 86400}
_OFFSET_RX = re.compile(r"\+\s*(\d+)\s*([mhd])")
_DAY_RX = re.compile(r"day\s+(\d{1,3})\s+(\d{1,2})[:：](\d{2})", re.IGNORECASE)
_WEEKDAY_RX = re.compile(r"(\S+)\s+(\d{1,2})[:：](\d{2})")
_CLOCK_RX = re.compile(r"(\d{1,2})[:：](\d{2})")


def parse_duration(text: str) -> timedelta:
    """``30m`` / ``2h`` / ``1d`` (also 分钟 / 小时 / 天) → a timedelta; ValueError otherwise."""
    raw = str(text).strip().lower()
    m = _DURATION_RX.fullmatch(raw)
    if not m:
        raise ValueError(f"时长 {text!r} 应写成 30m、2h 或 1d")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def parse_clock(text: str) -> time:
    m = _CLOCK_RX.fullmatch(str(text).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"时刻 {text!r} 应写成 HH:MM，例如 09:30")
    return time(int(m.group(1)), int(m.group(2)))


def format_duration(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s and s % 86400 == 0:
        return f"{s // 86400}d"
    if s and s % 3600 == 0:
        return f"{s // 3600}h"
    return f"{s // 60}m"


@dataclass(frozen=True, slots=True)
class At:
    """A step's ``at``: ``+Nm|+Nh|+Nd``, ``day N HH:MM`` or ``<weekday> HH:MM``."""

    kind: str                     # offset | day | weekday
    text: str
    offset: timedelta = timedelta(0)
    day: int = 0
    weekday: int = 0
    clock: time = time(0, 0)

    @property
    def calendar(self) -> bool:
        return self.kind != "offset"

    def nominal(self, anchor: datetime, tz: ZoneInfo) -> datetime:
        """The time this ``at`` names for a run triggered at ``anchor`` (aware, UTC)."""
        if self.kind == "offset":
            return anchor + self.offset
        local = anchor.astimezone(tz)
        if self.kind == "day":
            return at_local(local.date() + timedelta(days=self.day), self.clock, tz)
        # the first such weekday at that time strictly after the trigger
        ahead = (self.weekday - local.weekday()) % 7
        candidate = at_local(local.date() + timedelta(days=ahead), self.clock, tz)
        if candidate <= anchor:
            candidate = at_local(local.date() + timedelta(days=ahead + 7), self.clock, tz)
        return candidate


def parse_at(text: str) -> At:
    raw = str(text).strip()
    m = _OFFSET_RX.fullmatch(raw)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return At("offset", raw, offset=timedelta(seconds=n * _UNITS[unit]))
    m = _DAY_RX.fullmatch(raw)
    if m:
        clock = parse_clock(f"{m.group(2)}:{m.group(3)}")
        return At("day", raw, day=int(m.group(1)), clock=clock)
    m = _WEEKDAY_RX.fullmatch(raw)
    if m and m.group(1).lower() in WEEKDAY_ALIASES:
        clock = parse_clock(f"{m.group(2)}:{m.group(3)}")
        return At("weekday", raw, weekday=WEEKDAY_ALIASES[m.group(1).lower()], clock=clock)
    raise ValueError(f"at {raw!r} 应写成 +30m / +2h / +1d（触发后多久）、day 1 09:30（触发后第几天的几点）"
                     f"或 wed 19:30（触发后的第一个周三）")


@dataclass(frozen=True, slots=True)
class Repeat:
    """``repeat: {every: 1d, times: 21}``; ``times`` absent = until the run is stopped."""

    every: timedelta
    times: int | None = None

    def allows(self, occurrence: int) -> bool:
        return self.times is None or occurrence < self.times


def occurrence_nominal(at: At, anchor: datetime, tz: ZoneInfo, repeat: Repeat | None, n: int) -> datetime:
    """The nominal time of occurrence ``n`` (0 = first). Whole days repeat on the local calendar."""
    first = at.nominal(anchor, tz)
    if n == 0 or repeat is None:
        return first
    seconds = int(repeat.every.total_seconds())
    if seconds % 86400 == 0:
        local = first.astimezone(tz)
        return at_local(local.date() + timedelta(days=n * seconds // 86400), local.time().replace(tzinfo=None), tz)
    return first + repeat.every * n


@dataclass(frozen=True, slots=True)
class Late:
    """``late: {grace: 2h, then: send|skip}``: what to do with a step found overdue by more than grace."""

    grace: timedelta
    then: str  # send | skip

    def verdict(self, due: datetime, now: datetime) -> str:
        """``on_time``, ``late_send`` or ``late_skip``."""
        if now - due <= self.grace:
            return "on_time"
        return "late_send" if self.then == "send" else "late_skip"


def due_time(at: At, anchor: datetime, tz: ZoneInfo, repeat: Repeat | None, n: int,
             quiet: QuietHours | None) -> tuple[datetime, datetime]:
    """(nominal, due) of occurrence ``n``: due is nominal moved out of quiet hours."""
    nominal = occurrence_nominal(at, anchor, tz, repeat, n)
    due = quiet.release(nominal, tz) if quiet is not None else nominal
    return nominal, due
