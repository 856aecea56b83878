"""What features may know about a member, whoever stores it.

The tiers feature owns members (points, tier, tags, groups) and provides a
:class:`MemberDirectory` under :data:`MEMBERS`. The knowledge base (scopes by
tier, answer templates), the SOP engine (``when: member.points < 10``, targets,
check-in tallies, who fell silent for ``trigger: silent``), compliance (group
owners) and the handoff (whom to tell) read members and groups through it —
never the tiers tables; without the tiers feature they fall back to what
the event says (:func:`profile_from_actor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from bot.events import Actor
from bot.services import ServiceKey


@dataclass(frozen=True, slots=True)
class MemberProfile:
    id: str
    name: str = ""
    tier: str = ""            # tier id, e.g. "quality"
    tier_name: str = ""       # display name, e.g. "质量成员"
    points: int = 0
    checkins: int = 0
    homework: int = 0
    purchases: int = 0
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()   # chat ids
    joined_at: datetime | None = None
    staff: bool = False
    owner_staff: str = ""     # the staff member who added them (a contact), if known
    last_chat_id: str = ""    # the group they last spoke or joined in, if any
    extra: dict[str, Any] = field(default_factory=dict)

    def for_template(self) -> dict[str, Any]:
        """The ``member`` object templates and conditions see."""
        return {
            "id": self.id, "name": self.name or "朋友", "tier": self.tier, "tier_name": self.tier_name,
            "points": self.points, "checkins": self.checkins, "homework": self.homework,
            "purchases": self.purchases, "tags": list(self.tags), "groups": list(self.groups),
            "joined_at": self.joined_at, "staff": self.staff, **self.extra,
        }


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What features may know about a customer group."""

    chat_id: str
    name: str = ""
    owner_id: str = ""            # the staff member who runs it (``/group owner``)
    member_count: int = 0
    tier: str = ""                # the ladder step the group belongs to (``/group tier``), if any
    dismissed_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.dismissed_at is None


class MemberDirectory(Protocol):
    """Members and groups as the tiers feature stores them; every other feature reads them through this."""

    async def profile(self, session: Any, member_id: str) -> MemberProfile | None:
        """The member's profile, or None if the bot has never seen them."""
        ...

    async def find(self, session: Any, id_or_name: str, limit: int = 3) -> list[MemberProfile]:
        """Members whose id is ``id_or_name``, else whose name is (at most ``limit``)."""
        ...

    async def group(self, session: Any, chat_id: str) -> GroupInfo | None:
        ...

    async def groups_named(self, session: Any, name: str) -> list[GroupInfo]:
        """The active groups called ``name``."""
        ...

    async def checkins(self, session: Any, chat_id: str, since: date, until: date) -> list[tuple[str, str, str]]:
        """(member id, ISO day, member name) of every check-in in ``chat_id`` from ``since`` to ``until``,
        in order of day and then of check-in."""
        ...

    def tier_id(self, tier: str) -> str | None:
        """The id of the tier ``tier`` names (its id or its display name), or None when the ladder has none."""
        ...

    async def has_tag(self, session: Any, tag: str) -> bool:
        """Whether any member carries ``tag`` now."""
        ...

    async def customers(self, session: Any, *, tier: str = "", tag: str = "", chat_id: str = "",
                        limit: int = 100_000) -> list[MemberProfile]:
        """The customers (not staff) of a segment — in tier ``tier`` (an id), carrying ``tag``, in the group
        ``chat_id`` now — by id. Only ``id``, ``name``, ``tier`` and ``owner_staff`` are filled."""
        ...


    async def became_silent(self, session: Any, days: int, now: datetime, window: timedelta
                            ) -> list[tuple[MemberProfile, datetime]]:
        """(profile, quiet since) of the customers whose silence — no message since their last one, or since the
        bot first saw them — reached ``days`` days within the ``window`` before ``now``."""
        ...


MEMBERS: ServiceKey[MemberDirectory] = ServiceKey("members")


class ChannelNames(Protocol):
    """The name of the channel (渠道活码) a contact way's ``state`` stands for; provided by the campaigns
    feature, read by the tiers feature to tag a customer added through it."""

    async def channel_name(self, session: Any, state: str) -> str | None:
        ...


CHANNEL_NAMES: ServiceKey[ChannelNames] = ServiceKey("channel_names")


def profile_from_actor(actor: Actor) -> MemberProfile:
    return MemberProfile(id=actor.id, name=actor.name, staff=actor.staff)


async def profile_of(app: Any, session: Any, actor: Actor) -> MemberProfile:
    """The directory's profile when there is one, else what the event knows (name from the event wins)."""
    directory = app.maybe(MEMBERS)
    if directory is not None:
        found = await directory.profile(session, actor.id)
        if found is not None:
            if actor.name and actor.name != found.name:  # the name the member goes by now
                from dataclasses import replace

                return replace(found, name=actor.name)
            return found
    return profile_from_actor(actor)
