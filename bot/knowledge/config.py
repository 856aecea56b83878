"""The ``[knowledge]`` config section: where the entry files are, how sure an answer must be, and limits."""

from __future__ import annotations

from pydantic import Field, model_validator

from bot.configbase import Section


class KnowledgeConfig(Section):
    dir: str = "knowledge_base"
    reload_interval_s: float = Field(2.0, gt=0, description="how often entry files are checked for changes")
    threshold: float = Field(0.25, ge=0, le=1)
    suggest_floor: float = Field(0.12, ge=0, le=1)
    margin: float = Field(0.0, ge=0, le=1)
    ambiguity_margin: float = Field(0.15, ge=0, le=1)
    max_suggestions: int = Field(3, ge=0, le=9)
    suggestion_ttl_s: int = Field(300, ge=10, le=86400)
    group_cooldown_s: int = Field(600, ge=0)
    misses_days: int = Field(30, ge=1)
    misses_top: int = Field(10, ge=1, le=50)
    misses_retention_days: int = Field(180, ge=1)
    page_size: int = Field(10, ge=1, le=50)
    greeting: str = Field("", max_length=500,
                          description="reply to a member's greeting in a 1:1 chat, at most once a day (a template; "
                                      "empty: greetings, like all chatter, get no reply)")

    @model_validator(mode="after")
    def _floor_below_threshold(self) -> KnowledgeConfig:
        if self.suggest_floor > self.threshold:
            raise ValueError("suggest_floor must not be above threshold")
        return self
