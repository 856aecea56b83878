"""Moderation tables: the message log (context), alerts, words added in chat, false positives.

Every watched message is logged once by its key (``moderation_message.msg_key``:
the event key of a live callback, ``archive:<msgid>`` for the message archive),
so an archive imported twice never raises an alert twice. An alert's own key is
the message key plus category and term. The archive cursor (highest ``seq``)
lives in ``kv_state`` under ``moderation:archive_seq``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.db import JSONType
from bot.storage.models import big_id, utc_column


class ModerationMessage(SQLModel, table=True):
    """A message the moderation feature saw (for the context of later alerts, recalls, keyword analysis)."""

    __tablename__ = "moderation_message"
    __table_args__ = (Index("ix_moderation_message_chat_at", "chat_id", "at"),
                      Index("ix_moderation_message_sender_at", "sender_id", "at"))

    id: int | None = big_id()
    msg_key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    msg_id: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default="", index=True))
    source: str = Field(default="live", sa_column=Column(String(12), nullable=False, server_default="live"))
    chat_id: str = Field(sa_column=Column(String(200), nullable=False))
    chat_type: str = Field(default="group", sa_column=Column(String(8), nullable=False, server_default="group"))
    chat_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    sender_id: str = Field(sa_column=Column(String(128), nullable=False))
    sender_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    staff: bool = Field(default=False)
    msgtype: str = Field(default="text", sa_column=Column(String(24), nullable=False, server_default="text"))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    at: datetime = utc_column()
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoke_of: str | None = Field(default=None, sa_column=Column(String(255), nullable=True, index=True))
    revoked_at: datetime | None = utc_column(nullable=True)


class ModerationAlert(SQLModel, table=True):
    """One hit in one message, with everything a reviewer needs to act on it."""

    __tablename__ = "moderation_alert"
    __table_args__ = (Index("ix_moderation_alert_dedup", "sender_id", "term", "chat_id", "created_at"),
                      Index("ix_moderation_alert_status", "status", "created_at"),
                      Index("ix_moderation_alert_msg", "msg_key"))

    id: int | None = big_id()
    dedup_key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    msg_key: str = Field(sa_column=Column(String(255), nullable=False))
    msg_id: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    source: str = Field(default="live", sa_column=Column(String(12), nullable=False, server_default="live"))
    audience: str = Field(default="staff", sa_column=Column(String(12), nullable=False, server_default="staff"))
    chat_id: str = Field(sa_column=Column(String(200), nullable=False))
    chat_type: str = Field(default="group", sa_column=Column(String(8), nullable=False, server_default="group"))
    chat_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    sender_id: str = Field(sa_column=Column(String(128), nullable=False))
    sender_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    message_at: datetime = utc_column()
    created_at: datetime = utc_column()
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    term: str = Field(sa_column=Column(String(64), nullable=False))
    category: str = Field(sa_column=Column(String(64), nullable=False))
    level: str = Field(sa_column=Column(String(8), nullable=False))
    matched: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    span_start: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    span_end: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    normalised: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    stage: str = Field(sa_column=Column(String(16), nullable=False))
    cut: bool = Field(default=False)
    term_source: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    lexicon_version: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    context: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # open → acked → resolved | false_positive; info hits are "noted" (kept for the analysis, never sent)
    status: str = Field(default="open", sa_column=Column(String(16), nullable=False, server_default="open"))
    notified: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    repeats: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_seen_at: datetime | None = utc_column(nullable=True)
    acked_by: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    acked_at: datetime | None = utc_column(nullable=True)
    resolved_by: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    resolved_at: datetime | None = utc_column(nullable=True)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    escalated_at: datetime | None = utc_column(nullable=True)
    recalled_at: datetime | None = utc_column(nullable=True)


class ModerationWord(SQLModel, table=True):
    """A word added with /word (kind term | allow), or a file term hidden with /word del (kind hide)."""

    __tablename__ = "moderation_word"
    __table_args__ = (UniqueConstraint("category", "form", "kind", name="uq_moderation_word_category_form_kind"),)

    id: int | None = big_id()
    term: str = Field(sa_column=Column(String(64), nullable=False))
    form: str = Field(sa_column=Column(String(64), nullable=False))
    category: str = Field(sa_column=Column(String(64), nullable=False))
    level: str = Field(default="review", sa_column=Column(String(8), nullable=False, server_default="review"))
    kind: str = Field(default="term", sa_column=Column(String(8), nullable=False, server_default="term"))
    active: bool = Field(default=True)
    added_by: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    updated_at: datetime = utc_column()


class ModerationFalsePositive(SQLModel, table=True):
    """A reviewer's "this was not a violation", with the allow term it suggests."""

    __tablename__ = "moderation_false_positive"

    id: int | None = big_id()
    alert_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    term: str = Field(sa_column=Column(String(64), nullable=False))
    category: str = Field(sa_column=Column(String(64), nullable=False))
    matched: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    proposed_allow: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    by: str = Field(sa_column=Column(String(128), nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    at: datetime = utc_column()
