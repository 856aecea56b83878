"""Members, groups, tags and the points ledger behind the tier ladder.

``PointsEntry`` is append-only and keyed by its source event, so an event never
counts twice. ``Member`` carries running totals of the ledger (points, check-ins,
homework, referrals, purchases, spend) for fast evaluation; ``tiers recompute``
rebuilds them from the ledger and reports any difference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.models import big_id, utc_column


class Member(SQLModel, table=True):
    __tablename__ = "member"
    __table_args__ = (Index("ix_member_tier", "tier"), Index("ix_member_last_active", "last_active_at"),
                      Index("ix_member_joined_at", "joined_at"),
                      Index("ix_member_staff_tier_joined", "staff", "tier", "joined_at"))  # the report's counts

    id: str = Field(sa_column=Column(String(128), primary_key=True))  # WeCom external or user id
    name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    staff: bool = Field(default=False)
    joined_at: datetime = utc_column()
    source_state: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    inviter_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    owner_staff: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))  # who added them
    tier: str = Field(default="", sa_column=Column(String(40), nullable=False, server_default=""))
    tier_override: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    tier_since: datetime | None = utc_column(nullable=True)
    points: int = Field(default=0)
    messages: int = Field(default=0)
    checkins: int = Field(default=0)
    homework: int = Field(default=0)
    referrals: int = Field(default=0)
    purchases: int = Field(default=0)
    spend_cents: int = Field(default=0)
    last_active_at: datetime | None = utc_column(nullable=True)
    last_chat_id: str | None = Field(default=None, sa_column=Column(String(160), nullable=True))


# the member search: customers by last activity, the most recent first (never active last), then by id;
# and a candidate's place in that order without reading its row
Index("ix_member_activity_order", Member.__table__.c.staff, Member.__table__.c.last_active_at.desc(),
      Member.__table__.c.id)
Index("ix_member_search_key", "id", "staff", "last_active_at", _table=Member.__table__)


class Group(SQLModel, table=True):
    """A customer group and the tier it serves (量型 / 质型 / VIP …)."""

    __tablename__ = "member_group"

    chat_id: str = Field(sa_column=Column(String(160), primary_key=True))
    name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    tier: str | None = Field(default=None, sa_column=Column(String(40), nullable=True, index=True))
    capacity: int | None = Field(default=None)
    owner_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    member_count: int = Field(default=0)
    created_at: datetime = utc_column()
    dismissed_at: datetime | None = utc_column(nullable=True)


class GroupMembership(SQLModel, table=True):
    __tablename__ = "group_membership"
    # a member's memberships, earliest first, without reading the rows (the report's channel of a new member)
    __table_args__ = (Index("ix_group_membership_member_joined", "member_id", "joined_at", "chat_id", "join_scene"),
                      Index("ix_group_membership_joined_at", "joined_at"),
                      Index("ix_group_membership_chat_present", "chat_id", "joined_at", "left_at"))  # group sizes

    chat_id: str = Field(sa_column=Column(String(160), primary_key=True))
    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    joined_at: datetime = utc_column()
    join_scene: str = Field(default="other", sa_column=Column(String(16), nullable=False, server_default="other"))
    inviter_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    left_at: datetime | None = utc_column(nullable=True)


class Tag(SQLModel, table=True):
    __tablename__ = "tag"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(default="static", sa_column=Column(String(16), nullable=False, server_default="static"))
    created_at: datetime = utc_column()


class MemberTag(SQLModel, table=True):
    __tablename__ = "member_tag"
    __table_args__ = (Index("ix_member_tag_tag", "tag"),)

    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    tag: str = Field(sa_column=Column(String(64), primary_key=True))
    source: str = Field(default="operator", sa_column=Column(String(32), nullable=False, server_default="operator"))
    added_at: datetime = utc_column()


class PointsEntry(SQLModel, table=True):
    """The append-only ledger. ``source_event`` is unique: an event never counts twice."""

    __tablename__ = "points_entry"
    __table_args__ = (
        UniqueConstraint("source_event", name="uq_points_entry_source_event"),
        Index("ix_points_entry_member_action_day", "member_id", "action", "day"),
        Index("ix_points_entry_at", "at"),
        Index("ix_points_entry_action_day", "action", "day", "member_id"),  # the report's daily counts
    )

    id: int | None = big_id()
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    action: str = Field(sa_column=Column(String(24), nullable=False))  # message checkin homework referral …
    points: int = Field(default=0)
    amount_cents: int = Field(default=0)  # purchases only
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    source_event: str = Field(sa_column=Column(String(255), nullable=False))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    day: str = Field(sa_column=Column(String(10), nullable=False))  # local date, for daily caps
    at: datetime = utc_column()


class TierChange(SQLModel, table=True):
    __tablename__ = "tier_change"
    # the report reads a member's changes in time order, and the changes of a period, without the rows
    __table_args__ = (Index("ix_tier_change_member_at", "member_id", "at", "direction", "to_tier"),
                      Index("ix_tier_change_at_member", "at", "member_id", "direction", "from_tier"))

    id: int | None = big_id()
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    from_tier: str = Field(sa_column=Column(String(40), nullable=False))
    to_tier: str = Field(sa_column=Column(String(40), nullable=False))
    direction: str = Field(sa_column=Column(String(8), nullable=False))  # up | down | same
    rule: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))  # or "operator"
    operator: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    source_event: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    at: datetime = utc_column()


class Purchase(SQLModel, table=True):
    __tablename__ = "purchase"
    __table_args__ = (UniqueConstraint("source", name="uq_purchase_source"), Index("ix_purchase_at", "at"))

    id: int | None = big_id()
    member_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    amount_cents: int = Field(sa_column=Column(Integer, nullable=False))
    sku: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    recorded_by: str = Field(sa_column=Column(String(128), nullable=False))
    source: str = Field(sa_column=Column(String(255), nullable=False))  # event key or import id
    at: datetime = utc_column()


class MemberActivity(SQLModel, table=True):
    """How many messages a member sent in one chat on one local day (``chat_id`` "" for 1:1 chats).

    One row per (day, chat, member), counted up by the message handler — every customer (never staff)
    message that is not a command, whatever the ledger's daily cap; the report's activity, messages and
    silence come from it.
    """

    __tablename__ = "member_activity"
    # rows of a day lie together (the report reads them by day); by member for "did they speak since"
    __table_args__ = (Index("ix_member_activity_member", "member_id", "day"), {"sqlite_with_rowid": False})

    day: str = Field(sa_column=Column(String(10), primary_key=True))  # local date
    chat_id: str = Field(sa_column=Column(String(160), primary_key=True))
    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    messages: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class MemberNote(SQLModel, table=True):
    """An operator's note on a customer (``/note``), shown on the profile (``/member``)."""

    __tablename__ = "member_note"
    __table_args__ = (Index("ix_member_note_member", "member_id", "id"),)

    id: int | None = big_id()
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    author_id: str = Field(sa_column=Column(String(128), nullable=False))
    author_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = utc_column()


class ChurnEvent(SQLModel, table=True):
    """A customer lost: deleted the staff member, deleted by them, left or removed from a group, group dismissed.

    Stored whether or not the bot knows the member yet; ``notified_at`` is set when the batched notice
    (``tiers.churn_notify_cron``) that lists it was queued.
    """

    __tablename__ = "churn_event"
    __table_args__ = (UniqueConstraint("source_event", name="uq_churn_event_source_event"),
                      Index("ix_churn_event_pending", "notified_at", "id"),
                      Index("ix_churn_event_member", "member_id"))

    id: int | None = big_id()
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    kind: str = Field(sa_column=Column(String(24), nullable=False))  # see bot.tiers.churn.KINDS
    staff_id: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    source_event: str = Field(sa_column=Column(String(255), nullable=False))
    at: datetime = utc_column()
    notified_at: datetime | None = utc_column(nullable=True)


class MemberSearchGram(SQLModel, table=True):
    """The member search's index: every position of a member's name, tags and notes (A–Z folded to a–z),
    the characters from there on, up to three, as one integer (:func:`bot.tiers.store.gram_code`).

    ``source`` is the text it came from: ``n`` the name, ``t<tag>`` a tag, ``o<note id>`` a note. Written
    only by the triggers of migration ``0405_member_search`` on ``member``, ``member_tag`` and ``member_note``.
    """

    __tablename__ = "member_search_gram"
    __table_args__ = ({"sqlite_with_rowid": False},)

    gram: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    source: str = Field(sa_column=Column(String(80), primary_key=True))


class MemberSearchPosition(SQLModel, table=True):
    """The numbers 1…1024: the positions the search triggers take grams at (SQLite allows no WITH in a trigger)."""

    __tablename__ = "member_search_position"

    n: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
