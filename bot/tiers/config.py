"""The ``[tiers]`` config section: the ladder file, who hears of tier changes and lost customers, the daily
review, the churn notice and the weekly silence digest."""

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
    churn_notify: list[str] = Field(default_factory=list)   # told of lost customers nobody owns ([]: notify_users)
    churn_notify_cron: str = "*/10 * * * *"                  # when the batched churn notices go out
    silence_days: int = Field(14, ge=1, le=365)              # the weekly digest lists customers quiet this long
    silence_digest: str = ""                                 # crontab of the weekly digest; "" = off

    @field_validator("daily_review", "churn_notify_cron")
    @classmethod
    def _crontab(cls, v: str) -> str:
        return check_crontab(v)

    @field_validator("silence_digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        return check_crontab(v) if v.strip() else ""
