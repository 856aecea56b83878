"""The handoff table: one row per time a customer was handed to a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bot.storage.db import JSONType
from bot.storage.models import big_id, utc_column


class Handoff(SQLModel, table=True):
    """status: ``open`` (waiting for a person), ``taken`` (a person has it), ``closed`` (back with the bot).

    ``open_key`` is the member id while the handoff is open or taken and NULL once closed: the
    unique index on it keeps one live handoff per member, whichever replica opens it.
    """

    __tablename__ = "handoff"
    __table_args__ = (Index("ix_handoff_status_opened", "status", "opened_at"),)

    id: int | None = big_id()
    open_key: str | None = Field(default=None, sa_column=Column(String(128), nullable=True, unique=True))
    member_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    member_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    chat_id: str = Field(sa_column=Column(String(200), nullable=False))
    chat_type: str = Field(default="single", sa_column=Column(String(8), nullable=False, server_default="single"))
    chat_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    reason: str = Field(default="request", sa_column=Column(String(12), nullable=False, server_default="request"))
    trigger: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    event_key: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    status: str = Field(default="open", sa_column=Column(String(8), nullable=False, server_default="open"))
    notified: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    messages: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    follow_ups: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    opened_at: datetime = utc_column()
    hold_until: datetime = utc_column()
    escalated_at: datetime | None = utc_column(nullable=True)
    taken_by: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    taken_at: datetime | None = utc_column(nullable=True)
    closed_by: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    closed_at: datetime | None = utc_column(nullable=True)
    close_reason: str = Field(default="", sa_column=Column(String(12), nullable=False, server_default=""))
