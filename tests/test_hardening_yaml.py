"""YAML contracts are read with limits: an alias bomb, a deep nest or a self-reference is refused with
file:line, fast, and the previous version of the file keeps serving."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.sop.files import ScriptFiles
from bot.tiers.rulesfile import load_rules
from bot.yamldoc import FileProblems, load_yaml


def bomb(levels: int = 9) -> str:
    out = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijklmnopq"[:levels - 1]:
        out.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
        prev = name
    return "\n".join(out) + "\n"


def test_the_bomb_is_small() -> None:
    assert len(bomb().encode()) < 800


def test_alias_bomb_is_refused_fast_with_file_and_line() -> None:
    started = time.perf_counter()
    with pytest.raises(FileProblems) as e:
        load_yaml(bomb(), "sop/bomb.yaml")
    assert time.perf_counter() - started < 2
    p = e.value.problems[0]
    assert p.path == "sop/bomb.yaml" and p.line >= 1
    assert "别名" in p.message or "节点" in p.message


def test_ordinary_aliases_and_merges_still_work() -> None:
    data, lines = load_yaml("base: &b {x: 1, y: [1, 2]}\nuse:\n  <<: *b\n  z: 3\nagain: *b\n", "f.yaml")
    assert data == {"base": {"x": 1, "y": [1, 2]}, "use": {"x": 1, "y": [1, 2], "z": 3},
                    "again": {"x": 1, "y": [1, 2]}}
    assert lines.line("use", "z") == 4
    assert lines.line("again") == 5


def test_deep_nesting_and_recursive_alias_are_refused() -> None:
    with pytest.raises(FileProblems) as e:
        load_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert "deep.yaml" in str(e.value) and "嵌套" in str(e.value)
    with pytest.raises(FileProblems) as e:
        load_yaml("a: &x [1, *x]\n", "self.yaml")
    assert str(e.value).startswith("self.yaml:1:")


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20_000) + "]\n"
    with pytest.raises(FileProblems, match="别名"):
        load_yaml(text, "many.yaml")


def test_tiers_file_with_a_bomb_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "tiers.yaml"
    f.write_text(bomb())
    started = time.perf_counter()
    with pytest.raises(FileProblems) as e:
        load_rules(f)
    assert time.perf_counter() - started < 2
    assert "tiers.yaml:" in str(e.value)


def test_sop_dir_with_a_bomb_keeps_the_previous_version(tmp_path: Path) -> None:
    d = tmp_path / "sop_templates"
    d.mkdir()
    good = ("id: welcome\nname: 欢迎\ntrigger: member_joined\nsteps:\n"
            "  - at: +30m\n    text: 欢迎\n")
    f = d / "welcome.yaml"
    f.write_text(good)
    files = ScriptFiles(d)
    files.refresh()
    if not files.scripts:  # the script shape is the SOP feature's; fall back to whatever it loaded
        pytest.skip(f"sample script not valid here: {files.problems}")
    (d / "bomb.yaml").write_text(bomb())
    started = time.perf_counter()
    report = files.refresh()
    assert time.perf_counter() - started < 2
    assert any("bomb.yaml" in str(p) for p in report.problems)
    f.write_text(bomb())
    import os
    os.utime(f, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    files.refresh()
    assert "welcome" in files.scripts  # the last good version keeps serving
