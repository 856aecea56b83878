"""Who checked in (打卡) in a group: read from the tiers feature's points ledger.

The tiers feature records every counted check-in as a ``points_entry`` row with
action ``checkin``, the chat and the local day (one a member a day under its
daily cap), so the ledger is the one record of check-ins; the tally reads it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, select

from bot.tiers.models import Group, Member, PointsEntry

LEDGER = PointsEntry.__table__
MEMBER = Member.__table__
GROUP = Group.__table__
STREAK_LOOKBACK_DAYS = 60


async def tally(session: Any, chat_id: str, today: date) -> dict[str, Any]:
    """``today`` and ``yesterday`` (count, names) in ``chat_id``, streaks of yesterday's, and the group size."""
    since = (today - timedelta(days=STREAK_LOOKBACK_DAYS)).isoformat()
    rows = (await session.execute(
        select(LEDGER.c.member_id, LEDGER.c.day, MEMBER.c.name)
        .select_from(LEDGER.outerjoin(MEMBER, MEMBER.c.id == LEDGER.c.member_id))
        .where(and_(LEDGER.c.chat_id == chat_id, LEDGER.c.action == "checkin", LEDGER.c.day >= since,
                    LEDGER.c.day <= today.isoformat()))
        .order_by(LEDGER.c.day, LEDGER.c.id))).all()
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
    size = (await session.execute(select(GROUP.c.member_count).where(GROUP.c.chat_id == chat_id))).scalar()
    return {
        "yesterday": {"date": yesterday.isoformat(), "count": len(y_members), "names": [names[m] for m in y_members],
                      "streaks": streaks},
        "today": {"date": today.isoformat(), "count": len(t_members), "names": [names[m] for m in t_members]},
        "group_size": int(size or 0),
    }
