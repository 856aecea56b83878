"""Who checked in (打卡) in a group: read through the member directory (bot.members).

The tiers feature records every counted check-in (one a member a day under its
daily cap) and answers :meth:`~bot.members.MemberDirectory.checkins`; the tally
works on those. Without a member directory nobody has checked in.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bot.members import MemberDirectory

STREAK_LOOKBACK_DAYS = 60


async def tally(directory: MemberDirectory | None, session: Any, chat_id: str, today: date) -> dict[str, Any]:
    """``today`` and ``yesterday`` (count, names) in ``chat_id``, streaks of yesterday's, and the group size."""
    since = today - timedelta(days=STREAK_LOOKBACK_DAYS)
    rows = await directory.checkins(session, chat_id, since, today) if directory is not None else []
    days: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for member_id, day, name in rows:
        names[member_id] = name or member_id
        if member_id not in days.setdefault(day, []):
            days[day].append(member_id)
    by_member: dict[str, set[str]] = {}
    for day, members in days.items():
        for m in members:
            by_member.setdefault(m, set()).add(day)

    def streak(member_id: str, last: date) -> int:
        n, d = 0, last
        while d.isoformat() in by_member.get(member_id, set()):
            n += 1
            d -= timedelta(days=1)
        return n

    yesterday = today - timedelta(days=1)
    y_members = days.get(yesterday.isoformat(), [])
    t_members = days.get(today.isoformat(), [])
    streaks = sorted(({"name": names[m], "days": streak(m, yesterday)} for m in y_members),
                     key=lambda s: (-s["days"], s["name"]))
    group = await directory.group(session, chat_id) if directory is not None else None
    return {
        "yesterday": {"date": yesterday.isoformat(), "count": len(y_members), "names": [names[m] for m in y_members],
                      "streaks": streaks},
        "today": {"date": today.isoformat(), "count": len(t_members), "names": [names[m] for m in t_members]},
        "group_size": int(group.member_count if group is not None else 0),
    }
