"""The script file contract: what loads, what is refused with file:line, and the old version staying live."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotApp
from bot.sop import SOP
from bot.sop.files import ScriptFiles
from bot.sop.script import Script, parse_script
from bot.templates import Templates
from bot.testing import Harness
from bot.yamldoc import FileProblems
from tests.sop_support import REPO, SH, runs, sop_config, sop_sent, started, write_scripts

GOOD = """\
id: hello
name: 你好
trigger: member_joined
steps:
  - at: "+0m"
    via: reply
    text: "欢迎 {{ member.name }}"
  - at: "day 1 09:30"
    template: day1.j2
"""


def problems_of(text: str, tmp_path: Path, templates: dict[str, str] | None = None) -> list[str]:
    d = write_scripts(tmp_path / "scripts", {"s.yaml": text}, templates)
    files = ScriptFiles(d, templates=Templates(SH))
    return [str(p) for p in files.refresh().problems]


def test_the_shipped_scripts_load_without_problems() -> None:
    files = ScriptFiles(REPO / "sop_templates", templates=Templates(SH), exclude=("moments.yaml",))
    report = files.refresh()
    assert report.problems == []
    assert set(files.scripts) == {"newcomer-7d", "checkin-21d", "live-weekly", "lifecycle-7", "vip-welcome",
                                  "first-order-care"}
    lifecycle = files.scripts["lifecycle-7"]
    stages = [s.stage for s in lifecycle.steps]
    assert list(dict.fromkeys(stages)) == ["引导", "帮助", "教育", "协同解决问题", "帮助使用", "自传播", "流失挽留"]
    assert lifecycle.steps[0].via == "welcome" and lifecycle.trigger == "contact_added"
    checkin = files.scripts["checkin-21d"]
    assert [s.repeat.times if s.repeat else None for s in checkin.steps] == [None, 21, 21, None]


def test_a_good_script_parses_with_its_template_inside_the_version(tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"hello.yaml": GOOD}, {"day1.j2": "早上好 {{ member.name }}"})
    files = ScriptFiles(d, templates=Templates(SH))
    files.refresh()
    script = files.scripts["hello"]
    assert [s.key for s in script.steps] == ["1", "2"]
    assert script.steps[1].source == "早上好 {{ member.name }}" and script.steps[1].template == "day1.j2"
    assert script.quiet is not None and script.quiet.text == "22:00-08:00"  # the configured default
    again = Script.from_body(script.body)
    assert again.version == script.version and again.steps == script.steps and again.late == script.late


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("trigger:", "tirgger:"), "s.yaml:3: 未知字段 tirgger（是不是 trigger？）"),
    (GOOD.replace('"+0m"', '"+5s"'), "s.yaml:5: at '+5s' 应写成"),
    (GOOD.replace("via: reply", "via: sms"), "s.yaml:6: via 只能是"),
    (GOOD.replace("trigger: member_joined", "trigger: joined"), "s.yaml:3: trigger 只能是"),
    (GOOD.replace("template: day1.j2", "template: missing.j2"), "s.yaml:9: 模板 templates/missing.j2 不存在"),
    (GOOD.replace('text: "欢迎 {{ member.name }}"', 'text: "欢迎 {{ member.name "'), "s.yaml:7: text 模板有误"),
    (GOOD.replace("    via: reply\n", '    via: reply\n    when: "member.pionts < 10"\n'),
     "s.yaml:7: 条件里用到了不存在的字段"),
    (GOOD.replace("    via: reply\n", '    via: reply\n    when: "member.points <"\n'), "s.yaml:7: 条件写法有误"),
    (GOOD + 'quiet_hours: "22:00"\n', "s.yaml:10: quiet_hours："),
    (GOOD + "late: {grace: soon, then: later}\n", "s.yaml:10: late.grace"),
    (GOOD + "per: group\nstop_on: [member_gone]\n", "s.yaml:11: stop_on 只能包含"),
    (GOOD.replace("trigger: member_joined", "trigger: contact_added"), "s.yaml:6: via: reply 要发到群里"),
    (GOOD.replace("trigger: member_joined", "trigger: group_created\nper: member"),
     "s.yaml:4: trigger: group_created 只能 per: group"),
    (GOOD.replace("    via: reply\n", "    via: welcome\n"), "s.yaml:6: via: welcome 只能用于 trigger: contact_added"),
    (GOOD.replace("  - at: \"+0m\"\n    via: reply", "  - at: \"+0m\"\n    id: a\n    via: reply")
     .replace("  - at: \"day 1 09:30\"", "  - id: a\n    at: \"day 1 09:30\""), "s.yaml:9: 步骤 id a 和第 1 步重复"),
    ("id: x\nsteps: [\n", "s.yaml:3: YAML 语法错误"),
    ("id: Bad Id\nname: x\ntrigger: manual\nsteps: []\n", "s.yaml:1: id 应是小写字母"),
    (GOOD.replace("    template: day1.j2\n", "    template: day1.j2\n    repeat: {every: 10m}\n"),
     "s.yaml:10: repeat.every 至少 1h"),
    (GOOD.replace("    via: reply\n", "    via: reply\n    txet: x\n"),
     "s.yaml:7: 第 1 步：未知字段 txet（是不是 text？）"),
    (GOOD.replace('    text: "欢迎 {{ member.name }}"', "    text: null"),
     "s.yaml:5: 第 1 步需要 text（直接写内容）或 template（模板文件名）"),
    (GOOD + "where: {groups: ['*'], tag: [vip]}\n", "s.yaml:10: where：未知字段 tag（是不是 tags？）"),
])
def test_problems_name_the_file_line_and_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    found = problems_of(text, tmp_path, {"day1.j2": "早上好"})
    assert any(p.startswith("scripts/" + expected) for p in found), found


def test_welcome_only_right_after_the_contact_is_added(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        id: w
        trigger: contact_added
        steps:
          - at: "+5m"
            via: welcome
            text: 您好
        """)
    (problem,) = problems_of(text, tmp_path)
    assert problem == "scripts/s.yaml:4: via: welcome 只能在 at: \"+0m\" 发送：欢迎语码 20 秒内有效"


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("via: reply", "via: sms").replace("trigger: member_joined", "trigger: joined")
    assert len(problems_of(text, tmp_path, {"day1.j2": "x"})) == 2


def test_a_broken_edit_keeps_the_old_version_and_a_fix_replaces_it(tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"hello.yaml": GOOD}, {"day1.j2": "早上好"})
    files = ScriptFiles(d, templates=Templates(SH))
    files.refresh()
    old = files.scripts["hello"].version
    path = d / "hello.yaml"
    path.write_text(GOOD.replace("via: reply", "via: sms"), encoding="utf-8")
    report = files.refresh()
    assert report.rejected == ["s/hello.yaml"] and files.scripts["hello"].version == old
    assert [str(p) for p in files.problems] == [
        "s/hello.yaml:6: via 只能是 reply | group_robot | appchat | mass_send | remind_staff | app_message | "
        "welcome | mark_tag | survey，收到 'sms'"]
    path.write_text(GOOD.replace("欢迎", "热烈欢迎"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    report = files.refresh()
    assert report.reloaded == ["s/hello.yaml"] and files.problems == []
    assert files.scripts["hello"].version != old and "热烈欢迎" in files.scripts["hello"].steps[0].source


def test_a_template_edit_is_a_new_version(tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"hello.yaml": GOOD}, {"day1.j2": "早上好"})
    files = ScriptFiles(d, templates=Templates(SH))
    files.refresh()
    old = files.scripts["hello"].version
    (d / "templates" / "day1.j2").write_text("早上好呀 {{ member.name }}", encoding="utf-8")
    files.refresh()
    assert files.scripts["hello"].version != old
    assert files.scripts["hello"].steps[1].source == "早上好呀 {{ member.name }}"


def test_two_files_with_one_id_and_removed_files(tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"a.yaml": GOOD, "b.yaml": GOOD}, {"day1.j2": "x"})
    files = ScriptFiles(d, templates=Templates(SH))
    report = files.refresh()
    assert [str(p) for p in report.problems] == ["s/b.yaml:1: 脚本 id hello 已在 s/a.yaml 中使用"]
    assert files.scripts["hello"].file == "s/a.yaml"
    (d / "a.yaml").unlink()
    files.refresh()
    files.refresh()  # the refused file is looked at again once the clash is gone
    assert files.scripts["hello"].file == "s/b.yaml" and files.problems == []
    (d / "b.yaml").unlink()
    assert files.refresh().removed == ["s/b.yaml"] and files.scripts == {}


def test_parse_script_raises_with_every_problem() -> None:
    with pytest.raises(FileProblems) as exc:
        parse_script("id: x\ntrigger: nope\nsteps: 3\n", "x.yaml")
    assert [str(p) for p in exc.value.problems] == [
        "x.yaml:2: trigger 只能是 member_joined | contact_added | group_created | tag_added | tier_changed | churned | "
        "silent | manual，收到 'nope'", "x.yaml:3: steps 应是非空的步骤列表"]


async def test_live_reload_new_runs_get_the_new_version_running_runs_keep_theirs(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"hello.yaml": GOOD}, {"day1.j2": "第一天 {{ member.name }}"})
    app = await started(make_bot, sop_config(make_config, d))
    h = Harness(app)
    await h.join("wmBob", "Bob")
    (d / "hello.yaml").write_text(GOOD.replace("欢迎", "热烈欢迎"), encoding="utf-8")
    (d / "templates" / "day1.j2").write_text("第一天（新） {{ member.name }}", encoding="utf-8")
    app.clock.advance(timedelta(seconds=app.config.sop.reload_interval_s))  # type: ignore[attr-defined]
    await h.settle()
    engine = app.get(SOP)
    assert "热烈欢迎" in engine.scripts["hello"].steps[0].source
    sent = sop_sent(await h.join("wmCarol", "Carol"))
    assert [d.text for d in sent] == ["热烈欢迎 Carol"]
    bob, carol = await runs(app)
    assert bob.version != carol.version == engine.scripts["hello"].version
    app.clock.advance(timedelta(days=1, hours=1))  # type: ignore[attr-defined]
    later = sop_sent(await h.settle())
    assert sorted(d.text for d in later) == ["第一天 Bob", "第一天（新） Carol"]


async def test_a_broken_file_at_runtime_keeps_serving_and_sop_reload_names_the_line(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    d = write_scripts(tmp_path / "s", {"hello.yaml": GOOD}, {"day1.j2": "第一天"})
    app = await started(make_bot, sop_config(make_config, d))
    h = Harness(app)
    (d / "hello.yaml").write_text(GOOD.replace("at: \"day 1 09:30\"", "at: tomorrow"), encoding="utf-8")
    (text,) = await h.admin("/sop reload", group=False)
    assert "s/hello.yaml:8: at 'tomorrow' 应写成" in text and "旧版本继续生效" in text
    assert [d.text for d in sop_sent(await h.join("wmBob", "Bob"))] == ["欢迎 Bob"]
    (text,) = await h.admin("/sop list", group=False)
    assert "hello — 你好" in text and "s/hello.yaml:8" in text
