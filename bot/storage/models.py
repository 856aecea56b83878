"""Foundation tables. Feature modules add their own SQLModel tables beside this one.

Conventions every table follows:
- datetimes are ``UTCDateTime`` (aware UTC in Python on both databases);
- every side effect has a natural idempotency key under a unique constraint;
- JSON goes in ``JSONType`` columns (JSONB on PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.db import BigId, JSONType, UTCDateTime

# Deterministic constraint names on both databases, so migrations can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def big_id() -> Any:
    """A 64-bit autoincrement key (INTEGER PRIMARY KEY on SQLite, which is 64-bit there)."""
    return Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class InboxRow(SQLModel, table=True):
    """One inbound event, committed before the channel answers 200."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_status_id", "status", "id"),)

    id: int | None = big_id()
    dedup_key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    channel: str = Field(sa_column=Column(String(16), nullable=False))
    kind: str = Field(sa_column=Column(String(48), nullable=False))
    chat_key: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    raw: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = utc_column()
    status: str = Field(default="pending", sa_column=Column(String(12), nullable=False, server_default="pending"))
    attempts: int = Field(default=0)
    locked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    locked_until: datetime | None = utc_column(nullable=True)
    processed_at: datetime | None = utc_column(nullable=True)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class OutboxRow(SQLModel, table=True):
    """One outbound delivery; ``key`` makes retries, restarts and replicas send it once."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_outbox_rate", "rate_key", "dispatched_at"),
        Index("ix_outbox_source", "source"),
    )

    id: int | None = big_id()
    key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(24), nullable=False))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    destination: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    rate_key: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    status: str = Field(default="pending", sa_column=Column(String(12), nullable=False, server_default="pending"))
    attempts: int = Field(default=0)
    source: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    created_at: datetime = utc_column()
    next_attempt_at: datetime = utc_column()
    dispatched_at: datetime | None = utc_column(nullable=True)
    locked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    locked_until: datetime | None = utc_column(nullable=True)
    sent_at: datetime | None = utc_column(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))


class RoleGrant(SQLModel, table=True):
    """Operators and reviewers; admins come from config (``bot.admins``)."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("user_id", "role", name="uq_role_grant_user_role"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    role: str = Field(sa_column=Column(String(24), nullable=False))
    granted_by: str = Field(sa_column=Column(String(128), nullable=False))
    granted_at: datetime = utc_column()


class AuditLog(SQLModel, table=True):
    """One row per privileged command, whatever its outcome."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False))
    command: str = Field(sa_column=Column(String(64), nullable=False))
    args: str = Field(default="", sa_column=Column(Text, nullable=False))
    outcome: str = Field(sa_column=Column(String(24), nullable=False))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    event_key: str = Field(default="", sa_column=Column(String(255), nullable=False))
    at: datetime = utc_column(index=True)


class PendingConfirmation(SQLModel, table=True):
    """A side-effecting command waiting for ``/confirm <code>`` from the same person."""

    __tablename__ = "pending_confirmation"
    __table_args__ = (UniqueConstraint("actor", "code", name="uq_pending_confirmation_actor_code"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False))
    code: str = Field(sa_column=Column(String(12), nullable=False))
    command_text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    used_at: datetime | None = utc_column(nullable=True)


class KeyValue(SQLModel, table=True):
    """Small durable state: cursors (archive seq), toggles, last-run marks."""

    __tablename__ = "kv_state"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    value: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    updated_at: datetime = utc_column()


class ScheduledTask(SQLModel, table=True):
    """A one-off piece of work due at a time (the "due jobs" poller runs it once)."""

    __tablename__ = "scheduled_task"
    __table_args__ = (Index("ix_scheduled_task_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(64), nullable=False))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    due_at: datetime = utc_column()
    status: str = Field(default="pending", sa_column=Column(String(12), nullable=False, server_default="pending"))
    attempts: int = Field(default=0)
    locked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    locked_until: datetime | None = utc_column(nullable=True)
    done_at: datetime | None = utc_column(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CronRun(SQLModel, table=True):
    """Marks a cron job's fire time as taken so several replicas run it once."""

    __tablename__ = "cron_run"
    __table_args__ = (UniqueConstraint("job_id", "slot", name="uq_cron_run_job_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(sa_column=Column(String(100), nullable=False))
    slot: str = Field(sa_column=Column(String(40), nullable=False))
    replica: str = Field(sa_column=Column(String(64), nullable=False))
    started_at: datetime = utc_column()
    finished_at: datetime | None = utc_column(nullable=True)
    outcome: str = Field(default="", sa_column=Column(String(24), nullable=False, server_default=""))


class HandledEvent(SQLModel, table=True):
    """A receipt: this handler has committed its effects for this event.

    Written in the handler's own transaction, so a redelivered or reprocessed
    event never runs the same handler's effects twice.
    """

    __tablename__ = "handled_event"

    event_key: str = Field(sa_column=Column(String(255), primary_key=True))
    handler: str = Field(sa_column=Column(String(100), primary_key=True))
    at: datetime = utc_column(index=True)
