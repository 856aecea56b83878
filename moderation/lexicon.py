"""Lexicon records and the lexicon files (``moderation/lexicons/*.yaml``, one category per file).

```yaml
category: 私下联系          # required; one category per file
level: reject              # default level of the file's terms: reject | review | info (default review)
scope: anywhere            # optional default: anywhere | word (Latin-only terms default to word)
description: 引导客户脱离企业微信私下联系   # optional, shown in /word list
terms:
  - 加我微信
  - {term: 私聊, level: review}
  - {term: vx, scope: word}
allow: [微信支付, 企业微信]   # a hit covered by one of these is cancelled
```

A file with any problem is refused whole (``file:line: problem``) and its previous
version keeps serving; the other files load (:class:`LexiconFiles`, a ``bot.watched.WatchedDir``).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.watched import WatchedDir, ids_used_twice, shown_name
from bot.yamldoc import FileProblems, Lines, Problem, load_yaml
from moderation.normalize import fold_text, is_han

LEVELS = ("reject", "review", "info")
LEVEL_RANK = {"info": 0, "review": 1, "reject": 2}
SCOPES = ("anywhere", "word")
FILE_FIELDS = ("category", "level", "scope", "description", "terms", "allow")
TERM_FIELDS = ("term", "level", "scope", "note")


def lower_level(level: str) -> str:
    return {"reject": "review", "review": "info"}.get(level, "info")


def cap_level(level: str, cap: str) -> str:
    return level if LEVEL_RANK[level] <= LEVEL_RANK[cap] else cap


@dataclass(frozen=True, slots=True)
class Term:
    """One entry: the text as written, its normalised form, category, level, scope."""

    text: str
    form: str
    category: str
    level: str = "review"
    scope: str = "anywhere"
    source: str = ""  # file:line, or "db"
    allow: bool = False

    @property
    def latin(self) -> bool:
        return self.form.isascii()

    @property
    def han_count(self) -> int:
        return sum(1 for c in self.form if is_han(c))


@dataclass(slots=True)
class CategoryFile:
    path: str
    category: str
    level: str
    description: str
    terms: list[Term]
    allow: list[Term]
    digest: str


@dataclass(slots=True)
class Lexicon:
    terms: list[Term] = field(default_factory=list)
    allow: list[Term] = field(default_factory=list)
    categories: dict[str, str] = field(default_factory=dict)  # category → description
    version: str = "empty"

    @property
    def size(self) -> int:
        return len(self.terms)


def _did_you_mean(key: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f"（是不是 {close[0]}？）" if close else ""


def check_term_text(text: str) -> tuple[str, str]:
    """(normalised form, problem or "") for a term typed by an operator or read from a file."""
    text = text.strip()
    if not text:
        return "", "词不能为空"
    if len(text) > 40:
        return "", "词太长（最多 40 个字符）"
    form = fold_text(text)
    if not form:
        return "", f"{text!r} 规范化后为空（只有标点、空格或符号）"
    return form, ""


def default_scope(form: str, file_scope: str | None) -> str:
    if file_scope:
        return file_scope
    if form.isascii() or len(form) == 1:
        return "word"
    return "anywhere"


def parse_category(data: Any, lines: Lines, path: str, digest: str = "") -> CategoryFile:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(), "文件应是一个映射：{category: …, level: …, terms: […]}")])
    for key in data:
        if key not in FILE_FIELDS:
            problems.append(lines.problem(f"未知字段 {key}{_did_you_mean(str(key), FILE_FIELDS)}", key))
    category = data.get("category")
    if not isinstance(category, str) or not category.strip():
        problems.append(lines.problem("缺少 category（分类名，如 私下联系）", "category"))
        category = ""
    category = str(category).strip()
    level = data.get("level", "review")
    if level not in LEVELS:
        problems.append(lines.problem(f"level 只能是 reject / review / info，收到 {level!r}", "level"))
        level = "review"
    file_scope = data.get("scope")
    if file_scope is not None and file_scope not in SCOPES:
        problems.append(lines.problem(f"scope 只能是 anywhere / word，收到 {file_scope!r}", "scope"))
        file_scope = None
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        problems.append(lines.problem("description 应是文字", "description"))
        description = ""
    terms: list[Term] = []
    seen: dict[str, int] = {}
    raw_terms = data.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        problems.append(lines.problem("terms 应是非空列表", "terms"))
        raw_terms = []
    for i, item in enumerate(raw_terms):
        where = ("terms", i)
        t_level, t_scope = level, file_scope
        if isinstance(item, dict):
            for key in item:
                if key not in TERM_FIELDS:
                    problems.append(lines.problem(f"未知字段 {key}{_did_you_mean(str(key), TERM_FIELDS)}", *where, key))
            text = item.get("term")
            if item.get("level") is not None:
                t_level = item["level"]
                if t_level not in LEVELS:
                    problems.append(lines.problem(f"level 只能是 reject / review / info，收到 {t_level!r}",
                                                  *where, "level"))
                    t_level = level
            if item.get("scope") is not None:
                t_scope = item["scope"]
                if t_scope not in SCOPES:
                    problems.append(lines.problem(f"scope 只能是 anywhere / word，收到 {t_scope!r}", *where, "scope"))
                    t_scope = file_scope
        else:
            text = item
        if isinstance(text, int) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            problems.append(lines.problem("词应是文字，或 {term: …, level: …}", *where))
            continue
        form, problem = check_term_text(text)
        if problem:
            problems.append(lines.problem(problem, *where))
            continue
        if form in seen:
            problems.append(lines.problem(f"{text} 重复了（规范化后与第 {seen[form]} 行相同）", *where))
            continue
        seen[form] = lines.line(*where)
        terms.append(Term(text=text.strip(), form=form, category=category, level=t_level,
                          scope=default_scope(form, t_scope), source=f"{path}:{lines.line(*where)}"))
    allow: list[Term] = []
    raw_allow = data.get("allow") or []
    if not isinstance(raw_allow, list):
        problems.append(lines.problem("allow 应是列表", "allow"))
        raw_allow = []
    for i, item in enumerate(raw_allow):
        if not isinstance(item, str | int) or isinstance(item, bool):
            problems.append(lines.problem("允许词应是文字", "allow", i))
            continue
        form, problem = check_term_text(str(item))
        if problem:
            problems.append(lines.problem(problem, "allow", i))
            continue
        allow.append(Term(text=str(item).strip(), form=form, category=category, level="info", scope="anywhere",
                          source=f"{path}:{lines.line('allow', i)}", allow=True))
    if problems:
        raise FileProblems(problems)
    return CategoryFile(path=path, category=category, level=level, description=description, terms=terms,
                        allow=allow, digest=digest)


def parse_category_text(text: str, shown: str) -> CategoryFile:
    """One lexicon file's text (``shown``: its name in problems); raises FileProblems."""
    data, lines = load_yaml(text, shown)
    return parse_category(data, lines, shown, hashlib.sha1(text.encode()).hexdigest())  # noqa: S324 - a version


@dataclass(slots=True)
class DbWord:
    """A word added (or hidden) with /word: ``kind`` is term, allow or hide."""

    term: str
    category: str
    level: str
    kind: str
    by: str = ""


class LexiconFiles(WatchedDir[CategoryFile]):
    """The lexicon directory, watched (``bot.watched``): the last good version of every ``*.yaml`` file;
    a file that names a category another file already has is refused."""

    def __init__(self, directory: Path) -> None:
        base = Path.cwd()  # problems and term sources name files as the operator typed them
        super().__init__(directory, parse_category_text, base=base,
                         check=ids_used_twice(lambda cf: [cf.category], lambda p: shown_name(p, base), "分类",
                                              says="{what} {id} 已在 {other} 中定义（每个分类一个文件）"))

    def build(self, db_words: Iterable[DbWord] = ()) -> Lexicon:
        """Files plus the words added in chat (a database word wins; ``hide`` removes a file term)."""
        lex = Lexicon()
        by_key: dict[tuple[str, str], Term] = {}
        allow: dict[tuple[str, str], Term] = {}
        digests = []
        for cf in self.values():
            digests.append(cf.digest)
            lex.categories[cf.category] = cf.description
            for t in cf.terms:
                by_key[(t.category, t.form)] = t
            for a in cf.allow:
                allow[(a.category, a.form)] = a
        for w in db_words:
            digests.append(f"{w.kind}:{w.category}:{w.term}:{w.level}")
            form = fold_text(w.term)
            if not form:
                continue
            lex.categories.setdefault(w.category, "")
            if w.kind == "hide":
                by_key.pop((w.category, form), None)
            elif w.kind == "allow":
                allow[(w.category, form)] = Term(w.term, form, w.category, "info", "anywhere", "db", allow=True)
            elif w.kind == "unallow":
                allow.pop((w.category, form), None)
            else:
                by_key[(w.category, form)] = Term(w.term, form, w.category, w.level if w.level in LEVELS else "review",
                                                  default_scope(form, None), "db")
        lex.terms = list(by_key.values())
        lex.allow = list(allow.values())
        lex.version = hashlib.sha1("\n".join(digests).encode()).hexdigest()[:10]  # noqa: S324 - a version
        return lex


# ``[moderation] in_app_contact`` by default: asking for a private chat inside WeCom is not moving a customer off it
DEFAULT_IN_APP_CONTACT: dict[str, list[str]] = {"私下联系": ["私信我", "私信", "私聊"]}


def with_allow(lexicon: Lexicon, extra: Mapping[str, Iterable[str]], source: str = "config") -> Lexicon:
    """``lexicon`` plus allow terms per category (``[moderation] in_app_contact``: 私信我 is a private chat
    inside WeCom, not a move off it); a phrase that is empty once normalised is skipped."""
    added = [Term(text=p.strip(), form=form, category=category, level="info", scope="anywhere", source=source,
                  allow=True)
             for category, phrases in extra.items() for p in phrases
             for form in [fold_text(p)] if form]
    if not added:
        return lexicon
    version = hashlib.sha1(  # noqa: S324 - a version
        "\n".join([lexicon.version, *(f"{t.category}:{t.form}" for t in added)]).encode()).hexdigest()[:10]
    return Lexicon(terms=lexicon.terms, allow=[*lexicon.allow, *added], categories=lexicon.categories,
                   version=version)


def lexicon_from_dir(directory: Path) -> tuple[Lexicon, list[Problem]]:
    files = LexiconFiles(directory)
    report = files.refresh(force=True)
    return files.build(), report.problems
