"""The lexicon file contract (moderation/lexicon.py: CategoryModel, TermModel): every problem of a file,
in Chinese, at its line; a good file's terms take the file's level and scope unless they say their own."""

from __future__ import annotations

import pytest

from bot.yamldoc import FileProblems
from moderation.lexicon import parse_category_text


def problems(text: str) -> list[str]:
    with pytest.raises(FileProblems) as err:
        parse_category_text(text, "lex.yaml")
    return [str(p) for p in err.value.problems]


def test_a_good_file_gives_terms_with_the_files_defaults() -> None:
    cf = parse_category_text(
        "category: 私下联系\nlevel: reject\ndescription: 引导客户私下联系\nterms:\n"
        "  - 加我微信\n  - {term: 私聊, level: review}\n  - {term: vx, scope: anywhere}\n  - 12345\n"
        "allow: [微信支付, 2024]\n", "lex.yaml")
    assert (cf.category, cf.level, cf.description) == ("私下联系", "reject", "引导客户私下联系")
    by_text = {t.text: t for t in cf.terms}
    assert by_text["加我微信"].level == "reject" and by_text["加我微信"].scope == "anywhere"
    assert by_text["私聊"].level == "review"
    assert by_text["vx"].scope == "anywhere"            # its own scope wins over the Latin default
    assert by_text["12345"].source == "lex.yaml:8"      # a number reads as text; its source is its line
    assert [a.text for a in cf.allow] == ["微信支付", "2024"] and all(a.allow for a in cf.allow)


def test_a_file_scope_is_every_terms_default() -> None:
    cf = parse_category_text("category: 竞品\nscope: word\nterms: [某某茶, {term: 另一家, scope: anywhere}]\n", "x")
    assert [(t.text, t.scope) for t in cf.terms] == [("某某茶", "word"), ("另一家", "anywhere")]


def test_every_problem_of_a_file_is_named_at_its_line() -> None:
    found = problems(
        "categroy: 私下联系\n"                      # 1: a misspelt key (and so no category)
        "level: block\n"                             # 2
        "scope: everywhere\n"                        # 3
        "description: [a]\n"                         # 4
        "terms:\n"                                   # 5
        "  - 加我微信\n"                             # 6
        "  - {term: 私聊, levle: review}\n"          # 7
        "  - [not, a, word]\n"                       # 8
        "  - {term: '!!!'}\n"                        # 9
        "  - 加 我 微 信\n"                          # 10: the same as line 6 once normalised
        "  - {term: 私信, scope: somewhere}\n"        # 11
        "allow: [true]\n")                           # 12
    assert "lex.yaml:1: 未知字段 categroy（是不是 category？）" in found
    assert any(p.startswith("lex.yaml:") and "缺少 category（分类名，如 私下联系）" in p for p in found)
    assert "lex.yaml:2: level 只能是 reject / review / info，收到 'block'" in found
    assert "lex.yaml:3: scope 只能是 anywhere / word，收到 'everywhere'" in found
    assert "lex.yaml:4: description 应是文字" in found
    assert "lex.yaml:7: 未知字段 levle（是不是 level？）" in found
    assert "lex.yaml:8: 词应是文字，或 {term: …, level: …}" in found
    assert "lex.yaml:9: '!!!' 规范化后为空（只有标点、空格或符号）" in found
    assert "lex.yaml:10: 加 我 微 信 重复了（规范化后与第 6 行相同）" in found
    assert "lex.yaml:11: scope 只能是 anywhere / word，收到 'somewhere'" in found
    assert "lex.yaml:12: 允许词应是文字" in found
    assert found == sorted(found, key=lambda p: int(p.split(":")[1]))  # in the order of the file


@pytest.mark.parametrize(("text", "says"), [
    ("category: x\n", "terms 应是非空列表"),
    ("category: x\nterms: []\n", "terms 应是非空列表"),
    ("category: x\nterms: [a]\nallow: 微信支付\n", "allow 应是列表"),
    ("category: x\nterms: ['" + "长" * 41 + "']\n", "词太长（最多 40 个字符）"),
    ("- a\n- b\n", "文件应是一个映射"),
])
def test_a_wrong_shape_is_said_in_chinese(text: str, says: str) -> None:
    assert any(says in p for p in problems(text))
