"""Declared file contracts report Chinese problems at the value's line, with did-you-mean hints."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field, field_validator

from bot.yamldoc import FileProblems, load_yaml
from bot.yamlmodel import FileModel, validate


class Step(FileModel):
    at: str
    text: str = Field(min_length=1, max_length=20)
    via: Literal["reply", "group_robot"] = "reply"

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not v.startswith("+"):
            raise ValueError(f"at 应写成 +10m 或 +1d，收到 {v!r}")
        return v


class Script(FileModel):
    id: str
    priority: int = Field(default=0, ge=0)
    steps: list[Step]


def problems(text: str) -> list[str]:
    data, lines = load_yaml(text, "s.yaml")
    with pytest.raises(FileProblems) as exc:
        validate(Script, data, lines)
    return [str(p) for p in exc.value.problems]


def test_a_good_file_gives_the_model() -> None:
    data, lines = load_yaml("id: a\nsteps:\n  - at: +1m\n    text: 你好\n", "s.yaml")
    script = validate(Script, data, lines)
    assert script.steps[0].via == "reply" and script.steps[0].text == "你好"


def test_a_misspelt_key_names_its_line_and_the_key_it_meant() -> None:
    assert problems("id: a\nsteps:\n  - at: +1m\n    txt: 你好\n") == [
        "s.yaml:3: 缺少 text", "s.yaml:4: 未知字段 txt（是不是 text？）"]


def test_wrong_types_ranges_choices_and_validator_messages_are_chinese() -> None:
    got = problems("id: 3\npriority: -1\nsteps:\n  - at: 1m\n    text: hi\n    via: email\n")
    assert got == [
        "s.yaml:1: id 应是文字，收到数字 3（数字或 yes/no 请加引号）",
        "s.yaml:2: priority 不能小于 0，收到 -1",
        "s.yaml:4: at 应写成 +10m 或 +1d，收到 '1m'",
        "s.yaml:6: via 只能是 'reply' or 'group_robot'，收到 'email'",
    ]


def test_a_missing_list_and_a_too_long_text() -> None:
    assert problems("id: a\n") == ["s.yaml:1: 缺少 steps"]
    assert problems("id: a\nsteps:\n  - at: +1m\n    text: " + "长" * 21 + "\n") == [
        "s.yaml:4: text 太长（最多 20 字）"]


class Labelled(FileModel):
    key_label = "时段："

    time: str


class Plan(FileModel):
    slots: list[Labelled]


def test_a_model_names_the_mapping_an_unknown_key_is_in() -> None:
    data, lines = load_yaml("slots:\n  - time: '08:30'\n    tim: x\nslot: []\n", "p.yaml")
    with pytest.raises(FileProblems) as exc:
        validate(Plan, data, lines)
    assert [str(p) for p in exc.value.problems] == [
        "p.yaml:3: 时段：未知字段 tim（是不是 time？）", "p.yaml:4: 未知字段 slot（是不是 slots？）"]
