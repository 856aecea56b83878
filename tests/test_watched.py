"""The one watched-file mechanism: stamp, digest, last good version, file:line problems."""

from __future__ import annotations

import os
from pathlib import Path

from bot.watched import WatchedDir, WatchedFile, ids_used_twice
from bot.yamldoc import FileProblems, Problem, load_yaml

parses: list[str] = []


def parse(text: str, shown: str) -> dict[str, str]:
    parses.append(shown)
    data, lines = load_yaml(text, shown)
    if not isinstance(data, dict) or "id" not in data:
        raise FileProblems([Problem(shown, lines.line(), "缺少 id")])
    return data


def touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new stamp even within one tick


def test_a_broken_edit_keeps_the_last_good_version_until_it_is_fixed(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    touch(f, "id: one\n")
    w = WatchedFile(f, parse, shown="a.yaml")
    r = w.refresh()
    assert r.reloaded == ["a.yaml"] and w.good == {"id": "one"}
    touch(f, "name: x\n")
    r = w.refresh()
    assert r.rejected == ["a.yaml"] and [str(p) for p in r.new_problems] == ["a.yaml:1: 缺少 id"]
    assert w.good == {"id": "one"}
    touch(f, "id: two\n")
    r = w.refresh()
    assert w.good == {"id": "two"} and r.problems == []


def test_an_unchanged_file_is_not_parsed_again_and_the_same_bytes_are_not_reparsed(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    touch(f, "id: one\n")
    w = WatchedFile(f, parse, shown="a.yaml")
    w.refresh()
    parses.clear()
    assert not w.refresh().changed
    touch(f, "id: one\n")  # a new stamp, the same content
    assert not w.refresh().changed
    assert parses == []
    assert w.refresh(force=True).changed and parses == ["a.yaml"]


def test_a_folder_drops_deleted_files_and_refuses_an_id_used_twice(tmp_path: Path) -> None:
    d = tmp_path / "scripts"
    d.mkdir()
    touch(d / "a.yaml", "id: x\n")
    touch(d / "b.yaml", "id: x\n")
    w: WatchedDir[dict[str, str]] = WatchedDir(d, parse, missing="目录不存在")
    w.check = ids_used_twice(lambda v: [v["id"]], w.name)
    r = w.refresh()
    assert r.reloaded == ["scripts/a.yaml"] and r.rejected == ["scripts/b.yaml"]
    assert [str(p) for p in r.problems] == ["scripts/b.yaml:1: id x 已在 scripts/a.yaml 中使用"]
    (d / "a.yaml").unlink()
    r = w.refresh()
    assert r.removed == ["scripts/a.yaml"]
    r = w.refresh()  # the refused file is looked at again now that the id is free
    assert r.reloaded == ["scripts/b.yaml"] and w.values() == [{"id": "x"}]


def test_a_missing_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    w: WatchedDir[dict[str, str]] = WatchedDir(tmp_path / "nope", parse, missing="目录不存在")
    assert [p.message for p in w.refresh().problems] == ["目录不存在"]
