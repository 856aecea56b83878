"""Knowledge-base tables: operator entries, unanswered questions, group switches, "did you mean", cooldowns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.db import JSONType
from bot.storage.models import big_id, utc_column


class KbEntryRow(SQLModel, table=True):
    """An entry made or changed in chat. Rows are never deleted, only given another state,
    so ``(count, sum(version))`` changes with every write and tells replicas to reload.

    state: ``active`` (serves; replaces a file entry of the same id), ``deleted`` (hides
    the id, file entry included), ``reset`` (inert: the file entry, if any, serves again).
    """

    __tablename__ = "kb_entry"

    id: int | None = big_id()
    entry_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    state: str = Field(default="active", sa_column=Column(String(12), nullable=False, server_default="active"))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    overrides: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = utc_column()
    updated_by: str = Field(sa_column=Column(String(128), nullable=False))
    updated_at: datetime = utc_column()


class KbMiss(SQLModel, table=True):
    """A question the knowledge base could not answer outright (outcome ``none`` or ``suggested``)."""

    __tablename__ = "kb_miss"

    id: int | None = big_id()
    text: str = Field(sa_column=Column(Text, nullable=False))
    norm: str = Field(sa_column=Column(String(500), nullable=False))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False))
    chat_type: str = Field(default="", sa_column=Column(String(8), nullable=False))
    member_id: str = Field(default="", sa_column=Column(String(128), nullable=False))
    member_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    outcome: str = Field(default="none", sa_column=Column(String(12), nullable=False))
    best_entry: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    best_score: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    picked_entry: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    at: datetime = utc_column(index=True)


class KbGroup(SQLModel, table=True):
    """Per-group switch of the knowledge base (absent = on)."""

    __tablename__ = "kb_group"

    chat_id: str = Field(sa_column=Column(String(160), primary_key=True))
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    changed_by: str = Field(sa_column=Column(String(128), nullable=False))
    changed_at: datetime = utc_column()


class KbSuggestion(SQLModel, table=True):
    """The "did you mean" list last offered to a member in a chat; a number picks from it until it expires."""

    __tablename__ = "kb_suggestion"
    __table_args__ = (UniqueConstraint("chat_id", "member_id", name="uq_kb_suggestion_chat_member"),)

    id: int | None = big_id()
    chat_id: str = Field(sa_column=Column(String(160), nullable=False))
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    question: str = Field(sa_column=Column(Text, nullable=False))
    entries: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    miss_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column(index=True)


class KbCooldown(SQLModel, table=True):
    """When an entry was last answered in a group (the same answer is not repeated within the cooldown)."""

    __tablename__ = "kb_cooldown"
    __table_args__ = (
        UniqueConstraint("chat_id", "entry_id", name="uq_kb_cooldown_chat_entry"),
        Index("ix_kb_cooldown_answered_at", "answered_at"),
    )

    id: int | None = big_id()
    chat_id: str = Field(sa_column=Column(String(160), nullable=False))
    entry_id: str = Field(sa_column=Column(String(64), nullable=False))
    answered_at: datetime = utc_column()


class KbOutcomeDay(SQLModel, table=True):
    """How the knowledge base met the questions of one local day in one chat (``chat_id`` "" for 1:1 chats).

    ``outcome``: ``answered`` (a clear match answered), ``suggested`` (numbered suggestions offered),
    ``missed`` (no answer, no suggestion), ``picked`` (a member picked one of the suggestions).
    Unlike ``kb_miss`` these counts are never pruned.
    """

    __tablename__ = "kb_outcome_day"

    day: str = Field(sa_column=Column(String(10), primary_key=True))
    chat_id: str = Field(sa_column=Column(String(160), primary_key=True))
    outcome: str = Field(sa_column=Column(String(12), primary_key=True))
    count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
