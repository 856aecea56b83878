"""The ``[handoff]`` config section: what opens a handoff, working hours, whom to tell, when to escalate."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from bot.configbase import Section, check_duration
from bot.hours import Spans, parse_spans

REQUESTS = ["转人工", "人工客服", "找真人", "真人", "投诉", "客服呢", "没人回", "没人理"]
ANGER = ["垃圾", "骗子", "气死", "太差了", "坑人", "欺骗", "差评", "给我退钱", "赶紧退钱", "马上退钱"]


class HandoffConfig(Section):
    triggers: list[str] = Field(default_factory=lambda: list(REQUESTS),
                                description="words with which a customer asks for a person (contained in the message)")
    anger_words: list[str] = Field(default_factory=lambda: list(ANGER),
                                   description="words of an angry customer; they open a handoff too")
    working_hours: str = Field("09:00-21:00", description="when staff answer (local time, several comma-separated); "
                                                          "empty: always")
    hold: str = Field("4h", description="how long the bot leaves a member to staff after the handoff opened (counted "
                                        "from the next opening when off hours) or was taken, unless closed earlier")
    on_duty: list[str] = Field(default_factory=list, description="staff told of a handoff when the member's owner "
                                                                 "(group owner, or whoever added them) is not known")
    escalate_after_min: int = Field(15, ge=1, le=24 * 60, description="minutes of working time a handoff may wait "
                                                                      "untaken before escalate_to is told")
    escalate_to: list[str] = Field(default_factory=list, description="staff told when a handoff waits too long "
                                                                     "(empty: on_duty again)")
    context_messages: int = Field(5, ge=0, le=20, description="the member's latest messages kept with the handoff")
    page_size: int = Field(20, ge=1, le=50, description="handoffs listed by /handoff list")

    @field_validator("triggers", "anger_words")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        words = [w.strip() for w in v if w.strip()]
        if len(words) != len(v):
            raise ValueError("must not hold empty words")
        return words

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, v: str) -> str:
        parse_spans(v)
        return v

    @field_validator("hold")
    @classmethod
    def _hold(cls, v: str) -> str:
        return check_duration(v)

    @property
    def spans(self) -> Spans:
        return parse_spans(self.working_hours)

    @property
    def hold_for(self) -> timedelta:
        n, unit = int(self.hold[:-1].strip()), self.hold[-1]
        return timedelta(minutes=n) if unit == "m" else timedelta(hours=n) if unit == "h" else timedelta(days=n)

    @property
    def escalate_after(self) -> timedelta:
        return timedelta(minutes=self.escalate_after_min)
