"""The ``[campaigns]`` config section: segment sends (quiet hours, result polling) and channel codes."""

from __future__ import annotations

from pydantic import Field, field_validator

from bot.configbase import Section
from bot.hours import QuietHours, parse_quiet


class CampaignsConfig(Section):
    quiet_hours: str = Field("22:00-08:00", description="a send confirmed inside these local hours is queued for "
                                                        "their end (several comma-separated; \"off\" = none)")
    sample_chars: int = Field(60, ge=10, le=500, description="characters of the text shown in a send's preview")
    poll_after_s: float = Field(600.0, gt=0, description="the first look at a task's results, after it was sent "
                                                         "(staff confirm 群发 tasks in WeCom first)")
    poll_interval_s: float = Field(1800.0, gt=0, description="the next looks, while customers are still unsent")
    poll_max_hours: float = Field(72.0, gt=0, description="stop looking at a task after this many hours")
    status_limit: int = Field(10, ge=1, le=100, description="sends listed by /sends")
    channel_scene_qr: bool = Field(True, description="channels are QR codes (scene 2); false: a 联系我 button "
                                                     "(scene 1, no qr_code)")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        parse_quiet(v)
        return v

    @property
    def quiet(self) -> QuietHours | None:
        return parse_quiet(self.quiet_hours)
