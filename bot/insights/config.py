"""The ``[report]`` config section: what the report calls silent, and its default period."""

from __future__ import annotations

from pydantic import Field

from bot.configbase import Section


class ReportConfig(Section):
    silent_days: int = Field(14, ge=1, le=365, description="a customer is silent after this many local days "
                             "without a message (the report's behaviour.silent)")
    default_days: int = Field(30, ge=1, le=366, description="the period of `siyu report` without --since "
                              "(days up to --until, today by default)")
    nps_comments: int = Field(5, ge=1, le=50, description="how many of the latest detractors (with their comments) "
                              "/nps lists")
