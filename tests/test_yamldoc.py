from pathlib import Path

import pytest

from bot.yamldoc import FileProblems, load_yaml, load_yaml_file


def test_lines_of_nested_values() -> None:
    data, lines = load_yaml("a:\n  b:\n    - x\n    - {c: 1}\nd: 2\n", "f.yaml")
    assert data == {"a": {"b": ["x", {"c": 1}]}, "d": 2}
    assert lines.line("a", "b", 1, "c") == 4
    assert lines.line("d") == 5
    assert lines.line("a", "missing") == 1  # the nearest ancestor
    assert str(lines.problem("bad", "a", "b", 0)) == "f.yaml:3: bad"


def test_syntax_errors_and_duplicates_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(FileProblems) as e:
        load_yaml("a: [1, 2\nb: 3\n", "x.yaml")
    assert e.value.problems[0].line >= 1 and "YAML 语法错误" in e.value.problems[0].message
    with pytest.raises(FileProblems) as e:
        load_yaml("a: 1\nb: 2\na: 3\n", "x.yaml")
    assert str(e.value.problems[0]).startswith("x.yaml:3: a 重复了")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(FileProblems, match="UTF-8"):
        load_yaml_file(bad)
