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

The contract is declared (:class:`CategoryModel`, :class:`TermModel`, checked with
``bot.yamlmodel``). A file with any problem is refused whole (``file:line: problem``) and its previous
version keeps serving; the other files load (:class:`LexiconFiles`, a ``bot.watched.WatchedDir``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from bot.watched import WatchedDir, ids_used_twice, shown_name
from bot.yamldoc import FileProblems, Lines, Problem, load_yaml
from bot.yamlmodel import FileModel, Units
from moderation.normalize import fold_text, is_han

LEVELS = ("reject", "review", "info")
LEVEL_RANK = {"info": 0, "review": 1, "reject": 2}
SCOPES = ("anywhere", "word")


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


# ── the file contract ──────────────────────────────────────────────────────────


def _level(value: Any) -> str:
    if value not in LEVELS:
        raise ValueError(f"level 只能是 reject / review / info，收到 {value!r}")
    return str(value)


def _scope(value: Any) -> str | None:
    if value is not None and value not in SCOPES:
        raise ValueError(f"scope 只能是 anywhere / word，收到 {value!r}")
    return value


def _word(value: Any, wrong: str) -> str:
    """A term or allow word as written (a number reads as text), stripped; ``wrong`` when it is not text."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(wrong)
    problem = check_term_text(value)[1]
    if problem:
        raise ValueError(problem)
    return value.strip()


class TermModel(FileModel):
    """One of ``terms:`` — a word (``加我微信``) or ``{term: 私聊, level: review, scope: word, note: …}``;
    ``level`` and ``scope`` default to the file's."""

    term: str = Field(default=None, validate_default=True)
    level: str | None = None
    scope: str | None = None
    note: Any = None

    @model_validator(mode="before")
    @classmethod
    def _a_word_alone(cls, raw: Any) -> Any:
        return raw if isinstance(raw, dict) else {"term": raw}

    @field_validator("term", mode="before")
    @classmethod
    def _term(cls, v: Any) -> str:
        return _word(v, "词应是文字，或 {term: …, level: …}")

    @field_validator("level", mode="before")
    @classmethod
    def _term_level(cls, v: Any) -> str | None:
        return None if v is None else _level(v)

    @field_validator("scope", mode="before")
    @classmethod
    def _term_scope(cls, v: Any) -> str | None:
        return _scope(v)


AllowWord = Annotated[str, BeforeValidator(lambda v: _word(v, "允许词应是文字"))]


class CategoryModel(FileModel):
    """One lexicon file: a category, its default level and scope, its terms and allow words."""

    category: str = Field(default=None, validate_default=True)
    level: str = "review"
    scope: str | None = None
    description: str = ""
    terms: tuple[TermModel, ...] = Field(default=None, validate_default=True)
    allow: tuple[AllowWord, ...] = ()

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("缺少 category（分类名，如 私下联系）")
        return v.strip()

    @field_validator("level", mode="before")
    @classmethod
    def _file_level(cls, v: Any) -> str:
        return _level(v)

    @field_validator("scope", mode="before")
    @classmethod
    def _file_scope(cls, v: Any) -> str | None:
        return _scope(v)

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, v: Any) -> str:
        if not v:
            return ""
        if not isinstance(v, str):
            raise ValueError("description 应是文字")
        return v

    @field_validator("terms", mode="before")
    @classmethod
    def _terms(cls, v: Any) -> list[Any]:
        if not isinstance(v, list) or not v:
            raise ValueError("terms 应是非空列表")
        return v

    @field_validator("allow", mode="before")
    @classmethod
    def _allow(cls, v: Any) -> list[Any]:
        if not v:
            return []
        if not isinstance(v, list):
            raise ValueError("allow 应是列表")
        return v


def _repeated_terms(raw: Any, lines: Lines) -> list[Problem]:
    """A term written twice (the same once normalised), named at its second line — found even when the
    file has other problems."""
    seen: dict[str, int] = {}
    out: list[Problem] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:  # a term that is not a word is its own problem (TermModel)
            text = _word(item.get("term") if isinstance(item, dict) else item, "")
        except ValueError:
            continue
        form = fold_text(text)
        if form in seen:
            out.append(lines.problem(f"{text} 重复了（规范化后与第 {seen[form]} 行相同）", "terms", i))
        else:
            seen[form] = lines.line("terms", i)
    return out


def parse_category(data: Any, lines: Lines, path: str, digest: str = "") -> CategoryFile:
    """One lexicon file's data as :class:`CategoryModel`; any problem refuses the file whole."""
    if not isinstance(data, dict):
        raise FileProblems([Problem(path, lines.line(), "文件应是一个映射：{category: …, level: …, terms: […]}")])
    units = Units(lines, {})
    model = units.check(CategoryModel, data)
    units.problems += _repeated_terms(data.get("terms"), lines)
    if model is None or units.problems:
        raise FileProblems(units.sorted())
    terms = [Term(text=t.term, form=form, category=model.category, level=t.level or model.level,
                  scope=default_scope(form, t.scope or model.scope), source=f"{path}:{lines.line('terms', i)}")
             for i, t in enumerate(model.terms) for form in [fold_text(t.term)]]
    allow = [Term(text=word, form=fold_text(word), category=model.category, level="info", scope="anywhere",
                  source=f"{path}:{lines.line('allow', i)}", allow=True)
             for i, word in enumerate(model.allow)]
    return CategoryFile(path=path, category=model.category, level=model.level, description=model.description,
                        terms=terms, allow=allow, digest=digest)


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
