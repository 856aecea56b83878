"""Operator-written templates render within a budget: nothing they write can hang the bot or flood a chat."""

from __future__ import annotations

import threading
from zoneinfo import ZoneInfo

import pytest

from bot.templates import TemplateProblem, Templates

T = Templates(ZoneInfo("Asia/Shanghai"))

HOSTILE = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * 1000000 }}",
    "{{ 10 ** 10 ** 10 }}",
    "{{ 9 ** 999999 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x' | center(999999999) }}",
    "{{ range(10**9) | list }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% for c in 'x' * 90000 %}{% for d in 'x' * 90000 %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_a_hostile_template_is_refused(source: str) -> None:
    outcome: list[BaseException | str] = []

    def render() -> None:
        try:
            outcome.append(T.render_string(source, member={"name": "小王"}))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    worker.join(60)  # a hang detector, not a speed check: the budget ends a render in well under a second
    assert not worker.is_alive(), "the render did not end"
    assert isinstance(outcome[0], TemplateProblem), outcome[0]


@pytest.mark.parametrize("source", HOSTILE[:4])
def test_trial_names_the_reason_in_chinese(source: str) -> None:
    with pytest.raises(TemplateProblem) as exc:
        T.trial(source, member={"name": "小王"})
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(exc.value))


def test_ordinary_templates_still_render() -> None:
    text = T.render_string("{{ member.name }}您好～{% for t in tags %}#{{ t }} {% endfor %}{{ '-' * 10 }}"
                           "{{ range(3) | list }}{{ 2 ** 10 }}{{ '%05.1f' % 3.14159 }}",
                           member={"name": "小王"}, tags=["白茶", "岩茶"])
    assert text == "小王您好～#白茶 #岩茶 ----------[0, 1, 2]1024003.1"


def test_trial_refuses_an_answer_longer_than_the_limit() -> None:
    with pytest.raises(TemplateProblem, match="超过上限"):
        T.trial("{% for i in range(500) %}好{% endfor %}", limit=100)
    assert T.trial("好", limit=100) == "好"
