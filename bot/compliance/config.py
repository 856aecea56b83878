"""The ``[moderation]`` config section: lexicons, who is alerted, dedup, escalation, the digest, the archive."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bot.configbase import Section
from moderation.lexicon import DEFAULT_IN_APP_CONTACT

Level = Literal["reject", "review", "info"]
BehaviourLevel = Literal["reject", "review", "info", "off"]
# what a staff member sends a customer, seen in the message archive (msgtype → level); "off": not watched
BEHAVIOURS = ("redpacket", "external_redpacket", "transfer", "card", "weapp", "file")
DEFAULT_BEHAVIOUR_LEVELS: dict[str, str] = {"redpacket": "review", "external_redpacket": "review",
                                            "transfer": "reject", "card": "review", "weapp": "info", "file": "info"}


class ModerationRoute(Section):
    """Where alerts of some categories and levels go (every matching route receives them)."""

    categories: list[str] = Field(default_factory=list, description="empty = every category")
    levels: list[Level] = Field(default_factory=lambda: ["reject", "review"])
    robot: str = Field("", description="group robot name or chat id in group_robot.keys")
    users: list[str] = Field(default_factory=list, description="user ids that get an app message")


class ModerationConfig(Section):
    lexicon_dir: str = "moderation/lexicons"
    reload_interval_s: float = Field(5.0, gt=0)
    max_gap: int = Field(3, ge=0, le=10, description="separators skipped between two characters of a term")
    staff_categories: list[str] = Field(default_factory=list)
    customer_categories: list[str] = Field(default_factory=lambda: ["广告", "垃圾链接", "辱骂", "联系方式", "链接"])
    customer_only_categories: list[str] = Field(default_factory=lambda: ["广告", "垃圾链接"])
    reviewers: list[str] = Field(default_factory=list)
    robot: str = "compliance"
    routes: list[ModerationRoute] = Field(default_factory=list)
    dedup_window_min: int = Field(30, ge=0)
    repeat_notify_after: int = Field(3, ge=0, description="repeats of an alert within the dedup window after which "
                                     "the reviewers are told once (an acknowledged alert is reopened); 0 = never")
    escalate_after_h: float = Field(4.0, gt=0)
    escalate_to: list[str] = Field(default_factory=list)
    escalate_robot: str = ""
    group_owner_fallback: list[str] = Field(default_factory=list)
    digest_time: str = "09:00"
    digest_top: int = Field(5, ge=1, le=50)
    context_messages: int = Field(5, ge=0, le=20)
    retention_days: int = Field(90, ge=1)
    page_size: int = Field(10, ge=1, le=50)
    allowed_domains: list[str] = Field(default_factory=list)
    detector_levels: dict[str, Level] = Field(default_factory=dict)
    behaviour_levels: dict[str, BehaviourLevel] = Field(
        default_factory=lambda: dict(DEFAULT_BEHAVIOUR_LEVELS),
        description="archive msgtypes a staff member sends a customer (red packet, transfer, contact card, "
                    "mini-program, file) and the level of their alert; keys left out keep their default")
    in_app_contact: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_IN_APP_CONTACT.items()},
        description="per category, phrases that ask for contact inside WeCom (a private chat there): allowed, "
                    "no hit; an empty list makes them violations again")
    archive_secret: SecretStr = SecretStr("")

    @field_validator("digest_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError("must be a local time HH:MM such as \"09:00\"")
        return v

    @field_validator("behaviour_levels")
    @classmethod
    def _behaviours(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if k not in BEHAVIOURS:
                raise ValueError(f"unknown message type {k!r}; one of {', '.join(BEHAVIOURS)}")
        return {**DEFAULT_BEHAVIOUR_LEVELS, **v}

    @field_validator("detector_levels")
    @classmethod
    def _detectors(cls, v: dict[str, str]) -> dict[str, str]:
        known = ("phone", "qq", "wechat_id", "email", "url")
        for k in v:
            if k not in known:
                raise ValueError(f"unknown detector {k!r}; one of {', '.join(known)}")
        return v
