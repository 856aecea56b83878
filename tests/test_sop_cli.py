"""``python -m bot sop preview|check`` and ``python -m bot moments week``: output shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.sop_support import REPO, write_scripts

CONFIG = str(REPO / "config.example.toml")

SCRIPT = """\
id: cli-demo
name: 命令行示例
trigger: member_joined
quiet_hours: "22:00-08:00"
steps:
  - at: "+0m"
    via: reply
    text: "欢迎 {{ member.name }} 加入{{ group.name }}！"
  - at: "day 1 09:30"
    template: day1.j2
  - at: "day 3 20:00"
    when: "member.points < 10"
    via: remind_staff
    text: "提醒 {{ member.name }} 打卡"
  - at: "+13h"
    via: reply
    text: "夜里的一步"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main([*argv, "--config", CONFIG])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIYU_DATABASE__URL", f"sqlite:///{tmp_path / 'absent.db'}")


def test_preview_json_one_object_per_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    day1 = "{{ member.name }} 早上好，今天第 {{ run.day }} 天"
    d = write_scripts(tmp_path / "s", {"demo.yaml": SCRIPT}, {"day1.j2": day1})
    code, lines, _ = run(capsys, "sop", "preview", str(d / "demo.yaml"), "--start", "2026-11-23 10:00", "--json",
                         "--group", "禾屿茶友会")
    assert code == 0
    rows = [json.loads(line) for line in lines]
    assert rows == [  # ordered by due time
        {"step": 1, "due": "2026-11-23T10:00:00+08:00", "via": "reply", "text": "欢迎 小明 加入禾屿茶友会！"},
        {"step": 4, "due": "2026-11-24T08:00:00+08:00", "via": "reply", "text": "夜里的一步",
         "moved_from": "2026-11-23T23:00:00+08:00"},
        {"step": 2, "due": "2026-11-24T09:30:00+08:00", "via": "reply", "text": "小明 早上好，今天第 1 天"},
        {"step": 3, "due": "2026-11-26T20:00:00+08:00", "via": "remind_staff", "text": "提醒 小明 打卡",
         "when": "member.points < 10", "would_send": True},
    ]


def test_preview_by_id_from_the_shipped_scripts_with_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "sop", "preview", "checkin-21d", "--start", "2026-11-23 10:00", "--json")
    assert code == 0
    rows = [json.loads(line) for line in lines]
    evenings = [r for r in rows if r["step"] == 2]
    tallies = [r for r in rows if r["step"] == 3]
    assert len(evenings) == len(tallies) == 21
    assert evenings[0]["due"] == "2026-11-23T20:30:00+08:00" and evenings[-1]["due"] == "2026-12-13T20:30:00+08:00"
    assert tallies[0]["due"] == "2026-11-24T08:30:00+08:00" and tallies[0]["occurrence"] == 1
    assert rows[-1]["step"] == 4 and rows[-1]["due"] == "2026-12-14T21:00:00+08:00"
    code, lines, _ = run(capsys, "sop", "preview", "newcomer-7d", "--start", "2026-11-23 10:00")
    assert code == 0 and lines[0].startswith("newcomer-7d — 新人7天激活 (version ")
    assert lines[1] == "2026-11-23 Mon 10:00  step 1  reply (群内回复)  [进群欢迎]"


def test_preview_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "sop", "preview", "nope")
    assert code == 1 and "no script 'nope'" in err and "newcomer-7d" in err
    code, _, err = run(capsys, "sop", "preview", "newcomer-7d", "--start", "tomorrow")
    assert code == 2 and "--start must look like 2026-11-23 10:00" in err
    bad = write_scripts(tmp_path / "b", {"bad.yaml": SCRIPT.replace("via: reply", "via: sms", 1)})
    code, _, err = run(capsys, "sop", "preview", str(bad / "bad.yaml"))
    assert code == 1 and "bad.yaml:7: via 只能是" in err


def test_check_exit_codes_and_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines, _ = run(capsys, "sop", "check", str(REPO / "sop_templates"))
    assert code == 0 and lines[-1].endswith("6 script(s) valid, calendar sop_templates/moments.yaml, 0 problem(s)")
    bad = write_scripts(tmp_path / "bad", {"a.yaml": SCRIPT.replace('"day 1 09:30"', '"day x"'),
                                           "moments.yaml": "week:\n  funday: []\n"}, {"day1.j2": "x"})
    code, lines, _ = run(capsys, "sop", "check", str(bad))
    assert code == 1
    assert "✗ bad/a.yaml:9: at 'day x' 应写成 +30m / +2h / +1d（触发后多久）、day 1 09:30（触发后第几天的几点）" \
           "或 wed 19:30（触发后的第一个周三）" in lines
    assert any(line.startswith("✗ bad/moments.yaml:2: week：未知字段 funday") for line in lines)
    code, lines, _ = run(capsys, "sop", "check", str(bad), "--json")
    (report,) = [json.loads(line) for line in lines]
    assert report["ok"] is False and {p["file"] for p in report["problems"]} == {"bad/a.yaml", "bad/moments.yaml"}
    code, _, err = run(capsys, "sop", "check", str(tmp_path / "missing"))
    assert code == 2 and "directory does not exist" in err


def test_moments_week_one_json_object_per_slot(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "moments", "week", "--from", "2026-11-23", "--json")
    assert code == 0
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 11 and {r["date"] for r in rows} == {f"2026-11-{d}" for d in range(23, 30)}
    first = rows[0]
    assert {k: first[k] for k in ("date", "weekday", "time", "slot", "theme", "via", "staff", "tags", "tiers",
                                  "source", "status")} == {
        "date": "2026-11-23", "weekday": "周一", "time": "08:30", "slot": "monday-0830", "theme": "早安茶语",
        "via": "moment_task", "staff": ["ahe", "xiaoyu"], "tags": [], "tiers": [], "source": "weekly",
        "status": "planned"}
    assert first["text"].startswith("周一早安☀️") and first["attachments"][0]["msgtype"] == "image"
    vip = next(r for r in rows if r["slot"] == "friday-2030")
    assert vip["tiers"] == ["vip", "seed"]
    tuesday = next(r for r in rows if r["date"] == "2026-11-24")
    assert tuesday["text"].startswith("【周二茶知识】")


def test_moments_week_over_holidays_and_a_campaign(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "moments", "week", "--from", "2026-12-10", "--days", "3", "--json")
    rows = [json.loads(line) for line in lines]
    assert [r["slot"] for r in rows if r["source"] == "campaign"] == ["double12-noon"] * 3
    code, lines, _ = run(capsys, "moments", "week", "--from", "2026-12-25", "--days", "8")
    assert code == 0
    assert "2026-12-25 周五  圣诞节" in lines and "2027-01-01 周五  元旦休息" in lines
    assert "  (nothing: the calendar skips this day)" in lines


def test_every_new_subcommand_has_help() -> None:
    for argv in (["sop", "--help"], ["sop", "preview", "--help"], ["sop", "check", "--help"], ["moments", "--help"],
                 ["moments", "week", "--help"]):
        out = subprocess.run([sys.executable, "-m", "bot", *argv], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
        assert "usage: siyu" in out and ("examples:" in out or "SUBCOMMAND" in out)
