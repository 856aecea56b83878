"""The member directory (``bot.members.MEMBERS``): members and groups as the tiers feature stores them.

Other features (knowledge, SOP, compliance) read members, groups and check-ins
through this and never the tiers tables. Names are cleaned on the way out too
(rows stored before names were cleaned at the edge may still hold control or bidi
characters).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from bot.events import NAME_LIMIT
from bot.members import GroupInfo, MemberProfile
from bot.textsafe import clean_name
from bot.tiers.customers import Customers
from bot.tiers.rules import Rules
from bot.tiers.store import TiersStore


def group_info(row: Any) -> GroupInfo:
    return GroupInfo(chat_id=row.chat_id, name=clean_name(row.name or "", NAME_LIMIT),
                     owner_id=row.owner_id or "",
                     member_count=row.member_count or 0, tier=row.tier or "", dismissed_at=row.dismissed_at)


class TiersDirectory:
    """A :class:`bot.members.MemberDirectory`; ``rules`` gives the ladder in service (for tier names)."""

    def __init__(self, store: TiersStore, rules: Callable[[], Rules], people: Customers) -> None:
        self.store = store
        self.rules = rules
        self.people = people  # notes, churn and silence

    async def _profile(self, session: Any, m: Any) -> MemberProfile:
        tier = self.rules().tier(m.tier)
        return MemberProfile(id=m.id, name=clean_name(m.name or "", NAME_LIMIT), tier=m.tier,
                             tier_name=tier.name if tier else m.tier,
                             points=m.points, checkins=m.checkins, homework=m.homework, purchases=m.purchases,
                             tags=tuple(await self.store.member_tags(session, m.id)),
                             groups=tuple(await self.store.member_groups(session, m.id)),
                             joined_at=m.joined_at, staff=m.staff, owner_staff=m.owner_staff or "",
                             last_chat_id=m.last_chat_id or "",
                             extra={"messages": m.messages, "referrals": m.referrals,
                                    "spend": m.spend_cents / 100, "last_active_at": m.last_active_at})

    async def profile(self, session: Any, member_id: str) -> MemberProfile | None:
        m = await self.store.member(session, member_id)
        return None if m is None else await self._profile(session, m)

    async def find(self, session: Any, id_or_name: str, limit: int = 3) -> list[MemberProfile]:
        return [await self._profile(session, m) for m in await self.store.find_members(session, id_or_name, limit)]

    async def group(self, session: Any, chat_id: str) -> GroupInfo | None:
        row = await self.store.group(session, chat_id)
        return None if row is None else group_info(row)

    async def groups_named(self, session: Any, name: str) -> list[GroupInfo]:
        return [group_info(r) for r in await self.store.groups_named(session, name)]

    async def checkins(self, session: Any, chat_id: str, since: date, until: date) -> list[tuple[str, str, str]]:
        rows = await self.store.checkins(session, chat_id, since.isoformat(), until.isoformat())
        return [(member_id, day, clean_name(name or "", NAME_LIMIT) or member_id)
                for member_id, day, name in rows]

    def tier_id(self, tier: str) -> str | None:
        wanted = tier.strip().lower()
        for t in self.rules().tiers:
            if t.id.lower() == wanted or t.name.lower() == wanted:
                return t.id
        return None

    async def has_tag(self, session: Any, tag: str) -> bool:
        return await self.store.tag_used(session, tag)

    async def customers(self, session: Any, *, tier: str = "", tag: str = "", chat_id: str = "",
                        limit: int = 100_000) -> list[MemberProfile]:
        rows = await self.store.segment(session, tier=tier, tag=tag, chat_id=chat_id, limit=limit)
        return [MemberProfile(id=r.id, name=clean_name(r.name or "", NAME_LIMIT), tier=r.tier,
                              owner_staff=r.owner_staff or "") for r in rows]

    async def became_silent(self, session: Any, days: int, now: datetime, window: timedelta
                            ) -> list[tuple[MemberProfile, datetime]]:
        rows = await self.people.became_silent(session, days, now, window)
        return [(await self._profile(session, m), m.last_active_at or m.joined_at) for m in rows]
