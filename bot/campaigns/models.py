"""The campaigns tables: segment sends, their 群发 tasks (one per staff member), who got one on which day,
and channel codes with the customers added through them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bot.storage.db import BigId, JSONType
from bot.storage.models import big_id, utc_column


class CampaignSend(SQLModel, table=True):
    """One confirmed ``/send``: the segment, the text, how many customers it reached and skipped."""

    __tablename__ = "campaign_send"

    id: int | None = big_id()
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    segment: str = Field(sa_column=Column(String(200), nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    customers: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    staff: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    skipped_today: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    skipped_no_staff: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    day: str = Field(sa_column=Column(String(10), nullable=False))   # the local day it goes out
    created_at: datetime = utc_column()
    due_at: datetime = utc_column()


class CampaignTask(SQLModel, table=True):
    """One ``mass_send`` (add_msg_template) of a send: one staff member and their customers.

    ``state``: ``queued`` (waiting to be sent or polled), ``done`` (every customer sent or failed),
    ``failed`` (the task was not created), ``unpolled`` (no WeCom API or no msgid: not looked at),
    ``unknown`` (still unsent customers after ``poll_max_hours``).
    """

    __tablename__ = "campaign_task"
    __table_args__ = (Index("ix_campaign_task_poll", "state", "next_poll_at"),)

    id: int | None = big_id()
    send_id: int = Field(sa_column=Column(BigId, nullable=False,
                                          index=True))
    staff: str = Field(sa_column=Column(String(128), nullable=False))
    outbox_key: str = Field(sa_column=Column(String(255), nullable=False))
    customers: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    state: str = Field(default="queued", sa_column=Column(String(12), nullable=False, server_default="queued"))
    msgid: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    sent: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    failed: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    unsent: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    polls: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_poll_at: datetime | None = utc_column(nullable=True)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_column()


class CampaignRecipient(SQLModel, table=True):
    """A customer given a segment send on a local day: WeCom takes one 群发 per customer per day."""

    __tablename__ = "campaign_recipient"

    day: str = Field(sa_column=Column(String(10), primary_key=True))
    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    send_id: int = Field(sa_column=Column(BigId, nullable=False))


class Channel(SQLModel, table=True):
    """A channel code (渠道活码): a contact way whose ``state`` tells where a customer came from."""

    __tablename__ = "channel"

    id: int | None = big_id()
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    state: str = Field(sa_column=Column(String(30), nullable=False, unique=True))
    staff: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    config_id: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    qr_code: str = Field(default="", sa_column=Column(String(500), nullable=False, server_default=""))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = utc_column()


class ChannelContact(SQLModel, table=True):
    """A customer added through a channel (the ``State`` of add_external_contact), once per channel."""

    __tablename__ = "channel_contact"

    channel_id: int = Field(sa_column=Column(BigId, primary_key=True))
    member_id: str = Field(sa_column=Column(String(128), primary_key=True))
    staff: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    added_at: datetime = utc_column()
