"""Console sign-in tables: one-time links and sessions. Tokens are stored only as SHA-256 digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from bot.storage.models import big_id, utc_column


class ConsoleInvite(SQLModel, table=True):
    """A one-time sign-in link an admin issued for one person."""

    __tablename__ = "console_invite"

    id: int | None = big_id()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    user_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    created_by: str = Field(sa_column=Column(String(128), nullable=False))
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    used_at: datetime | None = utc_column(nullable=True)


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds the session id; this row decides whether it is still valid."""

    __tablename__ = "console_session"

    id: int | None = big_id()
    sid_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    user_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    via: str = Field(sa_column=Column(String(16), nullable=False))   # invite | wecom
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    last_seen_at: datetime = utc_column()
    revoked_at: datetime | None = utc_column(nullable=True)
    ip: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
