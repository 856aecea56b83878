"""SOP runs and their step occurrences, script versions, and the Moments calendar's posts.

- ``SopScriptVersion``: every version of a script a run started on (its parsed body,
  templates included), so a run keeps its version while the file changes.
- ``SopRun``: one run of one script for one group or member. ``active_key`` is set
  while the run is running or paused and cleared when it ends; its unique
  constraint keeps one live run per script and subject.
- ``SopStep``: one occurrence of one step with its due time and state. Unique
  (run, step key, occurrence): a step is enqueued once; its outbox key is
  ``sop:<run>:<step>:<occurrence>``.
- ``SopMassTask``: one 群发 task merging the ``mass_send`` occurrences of one step, day, staff
  member and text (bot.masssend), with which occurrence is whose and its polled result.
- ``SopSurvey``: one ``via: survey`` question sent to one member, unique (run, step
  key, occurrence), with the state of its answer (``asked`` → ``reasked`` →
  ``commenting`` → ``done``), the score 0–10, the detractor's comment and their times.
- ``MomentPost``: one slot of the Moments calendar on one date, unique (date, slot):
  published (or recorded as skipped / missed) once, with the task's polled result.
- ``MomentOverride``: what operators changed from chat (``/moments skip|set|approve``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.db import BigId, JSONType
from bot.storage.models import big_id, utc_column


class SopScriptVersion(SQLModel, table=True):
    __tablename__ = "sop_script_version"
    __table_args__ = (UniqueConstraint("script_id", "version", name="uq_sop_script_version_script_version"),)

    id: int | None = big_id()
    script_id: str = Field(sa_column=Column(String(64), nullable=False))
    version: str = Field(sa_column=Column(String(16), nullable=False))
    name: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    file: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    loaded_at: datetime = utc_column()


class SopRun(SQLModel, table=True):
    __tablename__ = "sop_run"
    __table_args__ = (
        UniqueConstraint("active_key", name="uq_sop_run_active_key"),
        Index("ix_sop_run_status", "status"),
        Index("ix_sop_run_chat", "chat_id"),
        Index("ix_sop_run_member", "member_id"),
        Index("ix_sop_run_script_status", "script_id", "status"),
    )

    id: int | None = big_id()
    script_id: str = Field(sa_column=Column(String(64), nullable=False))
    version: str = Field(sa_column=Column(String(16), nullable=False))
    per: str = Field(sa_column=Column(String(8), nullable=False))  # member | group
    status: str = Field(default="running", sa_column=Column(String(12), nullable=False, server_default="running"))
    active_key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    chat_name: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    member_id: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    member_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    staff_id: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    trigger: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    started_by: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    anchor_at: datetime = utc_column()       # the trigger's time: every step's timing counts from here
    created_at: datetime = utc_column()
    paused_at: datetime | None = utc_column(nullable=True)
    ended_at: datetime | None = utc_column(nullable=True)
    end_reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    migrated_from: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))


class SopStep(SQLModel, table=True):
    __tablename__ = "sop_step"
    __table_args__ = (
        UniqueConstraint("run_id", "step_key", "occurrence", name="uq_sop_step_run_step_occurrence"),
        Index("ix_sop_step_state_due", "state", "due_at"),
    )

    id: int | None = big_id()
    run_id: int = Field(sa_column=Column(BigId, nullable=False))
    step_key: str = Field(sa_column=Column(String(40), nullable=False))
    step_index: int = Field(sa_column=Column(Integer, nullable=False))  # position in ``version``
    version: str = Field(sa_column=Column(String(16), nullable=False))
    occurrence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    nominal_at: datetime = utc_column()      # what the timing says
    due_at: datetime = utc_column()          # after quiet hours
    # pending → claimed → done; paused while the run is; cancelled when it stops or migrates
    state: str = Field(default="pending", sa_column=Column(String(12), nullable=False, server_default="pending"))
    outcome: str = Field(default="", sa_column=Column(String(24), nullable=False, server_default=""))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    lease_until: datetime | None = utc_column(nullable=True)
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    done_at: datetime | None = utc_column(nullable=True)


class SopMassTask(SQLModel, table=True):
    """One 群发 task (add_msg_template) made of the ``mass_send`` occurrences of one script step that fell due
    the same local day for customers of one staff member with the same text: its outbox key, which
    occurrence each customer's is (``recipients``: member id → step ids) and what polling found
    (the columns of bot.masssend.TASK_COLUMNS; ``state`` queued → done | failed | unpolled | unknown)."""

    __tablename__ = "sop_mass_task"
    __table_args__ = (
        UniqueConstraint("outbox_key", name="uq_sop_mass_task_outbox_key"),
        Index("ix_sop_mass_task_poll", "state", "next_poll_at"),
    )

    id: int | None = big_id()
    outbox_key: str = Field(sa_column=Column(String(255), nullable=False))
    script_id: str = Field(sa_column=Column(String(64), nullable=False))
    step_key: str = Field(sa_column=Column(String(40), nullable=False))
    day: str = Field(sa_column=Column(String(10), nullable=False))      # the local day its steps fell due
    staff: str = Field(sa_column=Column(String(128), nullable=False))
    recipients: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    customers: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    state: str = Field(default="queued", sa_column=Column(String(12), nullable=False, server_default="queued"))
    msgid: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    sent: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    failed: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    unsent: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    polls: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_poll_at: datetime | None = utc_column(nullable=True)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = utc_column()


class SopSurvey(SQLModel, table=True):
    __tablename__ = "sop_survey"
    __table_args__ = (
        UniqueConstraint("run_id", "step_key", "occurrence", name="uq_sop_survey_run_step_occurrence"),
        Index("ix_sop_survey_member_open", "member_id", "open_until"),
        Index("ix_sop_survey_answered", "answered_at"),
    )

    id: int | None = big_id()
    run_id: int = Field(sa_column=Column(BigId, nullable=False))
    step_key: str = Field(sa_column=Column(String(40), nullable=False))
    occurrence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    script_id: str = Field(sa_column=Column(String(64), nullable=False))
    member_id: str = Field(sa_column=Column(String(128), nullable=False))
    member_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    chat_id: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    # where the question went and the answer is read: the member's 1:1 chat (their id) or the run's group
    asked_in: str = Field(default="", sa_column=Column(String(160), nullable=False, server_default=""))
    # asked → (reasked) → done, or → commenting → done for a detractor; the answer is awaited until open_until
    state: str = Field(default="asked", sa_column=Column(String(12), nullable=False, server_default="asked"))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # a detractor's question
    window_s: int = Field(sa_column=Column(Integer, nullable=False))
    asked_at: datetime = utc_column()
    open_until: datetime | None = utc_column(nullable=True)   # None once nothing more is awaited
    score: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    answer: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the score reply
    answered_at: datetime | None = utc_column(nullable=True)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    commented_at: datetime | None = utc_column(nullable=True)


class MomentPost(SQLModel, table=True):
    __tablename__ = "moment_post"
    __table_args__ = (
        UniqueConstraint("date", "slot_id", name="uq_moment_post_date_slot"),
        Index("ix_moment_post_poll", "state", "next_poll_at"),
    )

    id: int | None = big_id()
    date: str = Field(sa_column=Column(String(10), nullable=False))      # local date YYYY-MM-DD
    slot_id: str = Field(sa_column=Column(String(64), nullable=False))
    slot_at: datetime = utc_column()
    theme: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    via: str = Field(sa_column=Column(String(16), nullable=False))         # moment_task | remind_staff | none
    # queued (moment task waiting for its result) | reminded | done | failed | skipped | missed | unpolled
    state: str = Field(sa_column=Column(String(12), nullable=False))
    outbox_key: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    jobid: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    task_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    polls: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_poll_at: datetime | None = utc_column(nullable=True)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()


class MomentOverride(SQLModel, table=True):
    """``skip:<date>:<slot|*>``, ``set:<weekday>:<HH:MM>`` and ``approve:<date>`` made in chat."""

    __tablename__ = "moment_override"

    key: str = Field(sa_column=Column(String(120), primary_key=True))
    kind: str = Field(sa_column=Column(String(12), nullable=False))       # skip | set | approve
    date: str = Field(default="", sa_column=Column(String(10), nullable=False, server_default=""))
    weekday: str = Field(default="", sa_column=Column(String(10), nullable=False, server_default=""))
    time: str = Field(default="", sa_column=Column(String(5), nullable=False, server_default=""))
    slot_id: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    active: bool = Field(default=True)
    at: datetime = utc_column()
