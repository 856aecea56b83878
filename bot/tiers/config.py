"""The ``[tiers]`` config section: where the ladder file is, who hears of tier changes, the daily review."""

from __future__ import annotations

from pydantic import Field, field_validator

from bot.configbase import Section, check_crontab


class TiersConfig(Section):
    rules: str = "tiers.yaml"
    reload_interval_s: float = Field(5.0, gt=0)
    notify_users: list[str] = Field(default_factory=list)
    wecom_tag_ids: dict[str, str] = Field(default_factory=dict)
    leaderboard_size: int = Field(10, ge=1, le=50)
    daily_review: str = "30 3 * * *"

    @field_validator("daily_review")
    @classmethod
    def _crontab(cls, v: str) -> str:
        return check_crontab(v)
