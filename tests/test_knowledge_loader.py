"""Knowledge files: the YAML contract, problems with file and line, live refresh keeping the old version."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.knowledge.entry import Source, Where
from bot.knowledge.files import KnowledgeFiles
from bot.knowledge.loader import entry_from_data, parse_hours, parse_text
from bot.knowledge.text import Synonyms
from bot.templates import Templates

CHECK = Templates(ZoneInfo("Asia/Shanghai")).check

GOOD = """\
- id: refund
  questions: [怎么退款, 退款流程是什么]
  keywords: [退款]
  answer: |
    {{ member.name }}您好
    收到商品 7 天内可以退款
  scope: {chat: group, groups: [新人群], tiers: [vip]}
  priority: 3
  active_hours: "09:00-21:00"
  off_hours: 下班了
  group_auto: true
"""


def lines_of(text: str) -> list[tuple[int, str]]:
    load = parse_text(text, "kb/faq.yaml", check=CHECK)
    assert not load.entries, "a file with problems serves no entries"
    return [(p.line, p.message) for p in load.problems]


def test_a_valid_entry_keeps_every_field() -> None:
    load = parse_text(GOOD, "kb/faq.yaml", check=CHECK)
    assert load.ok
    (e,) = load.entries
    assert e.id == "refund" and e.questions == ("怎么退款", "退款流程是什么") and e.keywords == ("退款",)
    assert e.answer.startswith("{{ member.name }}您好\n")
    assert e.scope.chat == "group" and e.scope.groups == ("新人群",) and e.scope.tiers == ("vip",)
    assert e.priority == 3 and e.group_auto and e.off_hours == "下班了"
    assert e.active_hours is not None and e.active_hours.text == "09:00-21:00"
    assert e.source == Source("file", "kb/faq.yaml", 1)
    assert entry_from_data(e.to_data(), Source("db")).to_data() == e.to_data()


def test_yaml_syntax_error_names_the_line() -> None:
    text = "- id: a\n  questions: [怎么退款\n  answer: x\n"
    ((line, msg),) = lines_of(text)
    assert line == 3 and "YAML 语法错误" in msg


def test_top_level_must_be_a_list() -> None:
    ((line, msg),) = lines_of("id: a\nanswer: b\n")
    assert line == 1 and "条目列表" in msg


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("- id: a\n  questions: [q]\n  anwser: x\n  answer: y\n", 3, "未知字段 anwser（是不是 answer？）"),
    ("- questions: [q]\n  answer: y\n", 1, "缺少 id"),
    ("- id: 'a b'\n  questions: [q]\n  answer: y\n", 1, "只能用字母"),
    ("- id: a\n  questions: [q]\n", 1, "缺少 answer"),
    ("- id: a\n  answer: y\n", 1, "至少需要一个 questions 或 keywords"),
    ("- id: a\n  questions: [q]\n  match: fuzzy\n  answer: y\n", 3, "match 只能是"),
    ("- id: a\n  questions:\n    - q\n    - 18\n  answer: y\n", 4, "questions 第 2 项应是文字"),
    ("- id: a\n  match: regex\n  keywords: ['(unclosed']\n  answer: y\n", 3, "正则表达式"),
    ("- id: a\n  questions: [q]\n  active_hours: 9点到5点\n  answer: y\n", 3, "HH:MM-HH:MM"),
    ("- id: a\n  questions: [q]\n  priority: high\n  answer: y\n", 3, "priority 应是整数"),
    ("- id: a\n  questions: [q]\n  group_auto: maybe\n  answer: y\n", 3, "group_auto 应是 true 或 false"),
    ("- id: a\n  questions: [q]\n  scope: {chat: room}\n  answer: y\n", 3, "scope.chat 只能是"),
    ("- id: a\n  questions: [q]\n  scope: {team: x}\n  answer: y\n", 3, "scope 里有未知字段 team"),
    ("- id: a\n  questions: [q]\n  off_hours: 下班了\n  answer: y\n", 3, "请同时写 active_hours"),
    ("- id: a\n  questions: [q]\n  answer: y\n  answer: z\n", 4, "字段 answer 重复了"),
    ("- id: a\n  questions: [q]\n  answer: y\n- id: a\n  questions: [p]\n  answer: z\n", 4, "id a 重复了"),
])
def test_problems_name_line_and_problem(text: str, line: int, needle: str) -> None:
    problems = lines_of(text)
    assert any(pline == line and needle in msg for pline, msg in problems), problems


def test_a_template_error_points_into_the_block_answer() -> None:
    text = "- id: a\n  questions: [q]\n  answer: |\n    第一行\n    {{ member.name }\n"
    ((line, msg),) = lines_of(text)
    assert line == 5 and "answer 模板有误" in msg


def test_active_hours_overnight_and_several_ranges() -> None:
    from datetime import time

    h = parse_hours("21:00-02:00")
    assert h.contains(time(23, 30)) and h.contains(time(1, 0)) and not h.contains(time(12, 0))
    h = parse_hours("09:00-12:00, 13:30-18:00")
    assert h.contains(time(10)) and not h.contains(time(13)) and h.contains(time(14))


def test_scope_rules() -> None:
    e = parse_text(GOOD, "f", check=CHECK).entries[0]
    assert e.scope.allows(Where("group", "g1", "新人群", "vip"))
    assert not e.scope.allows(Where("single", "u1", "", "vip"))          # a group list never covers 1:1
    assert not e.scope.allows(Where("group", "g2", "别的群", "vip"))      # another group
    assert not e.scope.allows(Where("group", "g1", "新人群", "quality"))  # another tier
    assert e.scope.allows(Where("group", "新人群", "", "", "vip"))         # id or name; tier id or name


def test_synonyms_file_problems() -> None:
    syn, problems = Synonyms.parse("退款 退钱\n孤单\n发货 退钱\n", "kb/synonyms.txt")
    assert [(p.line, "至少要两个词" in p.message or "已经在第 1 行" in p.message) for p in problems] == \
        [(2, True), (3, True)]
    syn, problems = Synonyms.parse("# 注释\n退款 退钱、返款\n", "s")
    assert not problems and syn.apply("我要退钱") == "我要退款" and syn.apply("返款了吗") == "退款了吗"


def test_synonyms_file_near_synonym_and_dictionary_lines() -> None:
    text = "收到 签收\n~ 收到 到货 送达\n~ 到货 寄到\n+ 白茶 岩茶\n"
    syn, problems = Synonyms.parse(text, "s")
    assert not problems
    assert syn.groups == [("收到", "签收")]
    assert syn.related == [("收到", "到货", "送达"), ("到货", "寄到")]   # a word may be on several ~ lines
    assert syn.dictionary == ("白茶", "岩茶")
    assert {"白茶", "送达", "签收"} <= set(syn.words)
    # near-synonyms are written in their canonical form: 签收 on a ~ line counts as 收到
    syn2, _ = Synonyms.parse("收到 签收\n~ 签收 到货\n", "s")
    assert syn2.related == [("收到", "到货")]
    _, problems = Synonyms.parse("退款 退钱\n~ 孤单\n～ 到货 寄到\n", "kb/synonyms.txt")
    assert [(p.line, "近义词一行至少要两个词" in p.message) for p in problems] == [(2, True)]


def test_a_changed_near_synonym_line_reloads(tmp_path: Path) -> None:
    d = tmp_path / "kb"
    d.mkdir()
    _write(d / "a.yaml", "- id: a\n  questions: [甲]\n  answer: 甲\n")
    _write(d / "synonyms.txt", "退款 退钱\n")
    files = KnowledgeFiles(d, check=CHECK)
    files.refresh()
    _write(d / "synonyms.txt", "退款 退钱\n~ 收到 到货\n")
    again = files.refresh()
    assert again.changed and files.synonyms.related == [("收到", "到货")]


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visibly newer version


def test_refresh_keeps_the_previous_version_of_a_broken_file(tmp_path: Path) -> None:
    d = tmp_path / "kb"
    d.mkdir()
    _write(d / "a.yaml", "- id: a\n  questions: [甲]\n  answer: 第一版\n")
    _write(d / "b.yaml", "- id: b\n  questions: [乙]\n  answer: 乙\n")
    files = KnowledgeFiles(d, check=CHECK)
    first = files.refresh()
    assert first.changed and not first.problems and {e.id for e in files.entries} == {"a", "b"}
    assert not files.refresh().changed  # nothing changed on disk

    _write(d / "a.yaml", "- id: a\n  questions: [甲]\n  answer: 第二版\n  bogus: 1\n")
    broken = files.refresh()
    assert not broken.changed and broken.rejected == ["kb/a.yaml"]
    assert [str(p) for p in broken.new_problems] == ["kb/a.yaml:4: 条目 a：未知字段 bogus（可用字段：id, questions, "
                                                     "keywords, match, answer, scope, priority, active_hours, "
                                                     "off_hours, group_auto）"]
    assert next(e for e in files.entries if e.id == "a").answer == "第一版"
    assert files.problems  # still reported while the file stays broken

    _write(d / "b.yaml", "- id: a\n  questions: [乙]\n  answer: 抢 id\n")
    clash = files.refresh()
    assert "与 kb/a.yaml:1 重复" in str(clash.new_problems[0]) and next(
        e for e in files.entries if e.id == "b").answer == "乙"

    _write(d / "a.yaml", "- id: a\n  questions: [甲]\n  answer: 第三版\n")
    fixed = files.refresh()
    assert fixed.changed and next(e for e in files.entries if e.id == "a").answer == "第三版"
    (d / "a.yaml").unlink()
    gone = files.refresh()
    assert gone.changed and gone.removed == ["kb/a.yaml"] and all(e.id != "a" for e in files.entries)
