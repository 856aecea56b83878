"""The ``[sop]`` and ``[moments]`` config sections (assembled into the one Config by bot.config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bot.configbase import Section, check_crontab, check_duration


class SopConfig(Section):
    dir: str = "sop_templates"
    reload_interval_s: float = Field(2.0, gt=0, description="how often the script files are checked for changes")
    poll_batch: int = Field(200, ge=1, le=5000, description="due steps claimed per round")
    lease_s: float = Field(120.0, gt=0, description="a step claimed by a replica that died is taken after this")
    quiet_hours: str = "22:00-08:00"
    late_grace: str = "2h"
    late_then: Literal["send", "skip"] = "send"
    staff: list[str] = Field(default_factory=list, description="who gets remind_staff steps when nobody else is known")
    preview_occurrences: int = Field(3, ge=1, le=100)
    status_limit: int = Field(20, ge=1, le=200)
    silent_check: str = "0 10 * * *"  # when the daily check for trigger: silent runs
    survey_window: str = Field("48h", description="how long a member's reply counts as the answer to a survey step "
                               "that gives no window")
    survey_alert_to: list[str] = Field(default_factory=list, description="who hears of a detractor (0–6) with no "
                                       "owner, nor a group owner where asked (default: bot.ops_users)")

    mass_poll_after_s: float = Field(600.0, gt=0, description="the first look at a merged mass_send task's "
                                     "results, after it was made (staff confirm 群发 tasks in WeCom first)")
    mass_poll_interval_s: float = Field(1800.0, gt=0, description="the next looks, while customers are unsent")
    mass_poll_max_hours: float = Field(72.0, gt=0, description="then the unsent customers' steps are unconfirmed")

    @field_validator("silent_check")
    @classmethod
    def _silent_check(cls, v: str) -> str:
        return check_crontab(v, "0 10 * * *")

    @field_validator("late_grace", "survey_window")
    @classmethod
    def _grace(cls, v: str) -> str:
        return check_duration(v)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        from bot.hours import parse_quiet

        try:
            parse_quiet(v)
        except ValueError as exc:
            raise ValueError(f"{exc} (or \"off\")") from None
        return v


class MomentsConfig(Section):
    calendar: str = "sop_templates/moments.yaml"
    enabled: bool = True
    approval: bool = False
    delivery: Literal["moment_task", "remind_staff"] = "moment_task"
    staff: list[str] = Field(default_factory=list)
    tag_ids: dict[str, str] = Field(default_factory=dict)
    late_grace: str = "2h"
    poll_interval_s: float = Field(60.0, gt=0)
    poll_max_hours: float = Field(24.0, gt=0)
    approvers: list[str] = Field(default_factory=list)
    approval_reminder: str = "0 18 * * *"

    @field_validator("late_grace")
    @classmethod
    def _grace(cls, v: str) -> str:
        return check_duration(v)

    @field_validator("approval_reminder")
    @classmethod
    def _crontab(cls, v: str) -> str:
        return check_crontab(v, "0 18 * * *")
