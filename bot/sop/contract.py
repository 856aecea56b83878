"""What the SOP script and Moments calendar contracts share, declared for pydantic (``bot.yamlmodel``).

- :data:`Names`-style fields: a list of texts (one text alone is a list of one,
  a number reads as text), each bad item a problem at its own line;
- ``images`` / ``links``: a message's WeCom attachments (at most 9);
- a message's text: inline jinja2 text, or a template file of
  ``sop_templates/templates/`` read once and kept in the unit's ``sources``;

Both files are checked unit by unit with :class:`bot.yamlmodel.Units` (the script's head, each
step; the calendar's head, each slot …) so that every problem of a file is found at once.

Validation context (``model_validate(raw, context=...)``): ``templates`` checks
jinja2 text (``None``: not checked), ``templates_dir`` is where template files
are read from, ``sources`` maps a template file name to its text (read ones are
added), ``check`` says whether texts, templates and conditions are checked
(``False`` for a stored version, which was checked when it loaded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, model_validator

from bot.templates import OPERATOR_MESSAGES
from bot.yamldoc import kind_of
from bot.yamlmodel import FileModel, ProblemAt

if TYPE_CHECKING:
    from pathlib import Path

    from bot.templates import Templates

MAX_ATTACHMENTS = 9
LINK_FIELDS = ("title", "url", "desc", "picurl")


class Refused:
    """A value a list-level or cross-field rule refused; the value's own validator raises its message.

    The problem is named at the value's line, or at ``line`` when the value is not in the file (a text
    a step lacks is named at the step's line, even when the file says ``text: null``)."""

    __slots__ = ("line", "message")

    def __init__(self, message: str, line: int = 0) -> None:
        self.message = message
        self.line = line


def refused(value: Any) -> Any:
    """``value``, or the problem a list-level or cross-field rule pinned on it."""
    if isinstance(value, Refused):
        raise ProblemAt(value.message, value.line)
    return value


Name = Annotated[str, BeforeValidator(refused)]


def names(label: str, rule: Callable[[str], str | None] | None = None) -> BeforeValidator:
    """The validator of a list-of-texts field: ``label`` names it in problems; ``rule`` refuses an item."""

    def listed(value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"{label} 应是文字列表，收到{kind_of(value)}")
        return [_name(label, i, item, rule) for i, item in enumerate(value)]

    return BeforeValidator(listed)


def _name(label: str, i: int, item: Any, rule: Callable[[str], str | None] | None) -> Any:
    if isinstance(item, int | float) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str) or not item.strip():
        return Refused(f"{label} 第 {i + 1} 项应是非空文字，收到{kind_of(item)}")
    wrong = rule(item.strip()) if rule is not None else None
    return Refused(wrong) if wrong else item.strip()


def must_be(kind: type | tuple[type, ...], message: str) -> BeforeValidator:
    """The validator of a field that must hold ``kind`` as written (nothing converted); ``message`` otherwise."""

    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


Staff = Annotated[tuple[Name, ...], names("staff")]
Images = Annotated[tuple[Name, ...], names("images")]


# ── attachments ────────────────────────────────────────────────────────────────


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


class LinkModel(FileModel):
    """One of ``links``: a URL, or ``{title, url, desc, picurl}``."""

    title: Any = None
    url: str
    desc: Any = None
    picurl: Any = None

    @model_validator(mode="before")
    @classmethod
    def _link(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = {"url": raw}
        if not isinstance(raw, dict) or not _is_url(raw.get("url")):
            raise ValueError("links 每项应是网址，或 {title: 标题, url: https://…, desc: 说明}")
        extra = set(raw) - set(LINK_FIELDS)
        if extra:
            raise ValueError(f"links 里有未知字段 {', '.join(sorted(map(str, extra)))}（可用：title, url, desc, "
                             f"picurl）")
        return raw

    def attachment(self) -> dict[str, Any]:
        link = {"title": str(self.title or self.url), "url": self.url}
        if self.desc:
            link["desc"] = str(self.desc)
        if self.picurl:
            link["picurl"] = str(self.picurl)
        return {"msgtype": "link", "link": link}


def _links(value: Any) -> Any:
    return () if value is None else value if isinstance(value, list) else [value]


Links = Annotated[tuple[LinkModel, ...], BeforeValidator(_links)]


def attachments(images: Iterable[str], links: Iterable[LinkModel]) -> tuple[dict[str, Any], ...]:
    """``images: [url or media id]`` and ``links`` as WeCom attachments, images first."""
    out = [{"msgtype": "image", "image": {"url": i} if _is_url(i) else {"media_id": i}} for i in images]
    return (*out, *(link.attachment() for link in links))


def too_many_attachments(found: tuple[dict[str, Any], ...]) -> str | None:
    if len(found) > MAX_ATTACHMENTS:
        return f"附件最多 {MAX_ATTACHMENTS} 个（图片和链接合计），这里有 {len(found)} 个"
    return None


# ── texts and templates ────────────────────────────────────────────────────────


def template_error(templates: Templates | None, source: str, context: dict[str, Any] | None = None) -> str | None:
    """Why ``source`` cannot be an operator's text (``None``: it can, or nothing checks it). With the
    context's ``sample`` values it is also rendered once: it must render within the budget and fit
    OPERATOR_MESSAGES text messages, or the context's ``limit`` characters when given (a Moments text)."""
    if templates is None:
        return None
    context = context or {}
    sample, limit = context.get("sample"), context.get("limit")
    try:
        if sample is None:
            templates.check(source)
        else:
            templates.trial(source, limit=limit, messages=None if limit is not None else OPERATOR_MESSAGES,
                            **sample)
    except Exception as exc:
        return str(exc)
    return None


def lexicon_refusal(templates: Templates | None, source: str, context: dict[str, Any]) -> str | None:
    """The first ``reject`` term of the compliance lexicon (the context's ``lexicon``, a
    ``bot.textcheck.TextCheck``) in ``source`` rendered with the sample values, e.g. 第 3 行：文案含违规词“包治百病”
    （广告法/夸大宣传，reject）; None when there is none, or no lexicon, or nothing to render with."""
    lexicon, sample = context.get("lexicon"), context.get("sample")
    if templates is None or lexicon is None or sample is None:
        return None
    try:
        text = templates.trial(source, limit=context.get("limit"), **sample)
    except Exception:
        return None
    return next((str(f) for f in lexicon.findings(text) if f.refuses), None)


def checking(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get("check"))


def inline_text(value: Any, info: ValidationInfo, limit: int, too_long: Callable[[int], str]) -> str:
    """``text:`` — non-empty jinja2 text of at most ``limit`` characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"text 应是非空文字，收到{kind_of(value)}")
    source = value.strip()
    if len(source) > limit:
        raise ValueError(too_long(len(source)))
    context = info.context or {}
    if not checking(info):
        return source
    bad = template_error(context.get("templates"), source, context)
    if bad:
        raise ValueError(f"text 模板有误：{bad}")
    refused = lexicon_refusal(context.get("templates"), source, context)
    if refused:
        raise ValueError(f"text {refused}")
    return source


def template_file(name: Any, info: ValidationInfo, rx: Any, wrong_name: str) -> str:
    """``template:`` — a ``.j2`` file name; its text is read (once) into the context's ``sources``."""
    if not isinstance(name, str) or not rx.fullmatch(name) or ".." in name:
        raise ValueError(wrong_name)
    context = info.context or {}
    sources: dict[str, str] = context["sources"]
    directory: Path | None = context.get("templates_dir")
    if name in sources:
        return name
    if not checking(info) or directory is None:
        raise ValueError(f"模板 {name} 的内容没有保存")
    try:
        source = (directory / name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = "不存在" if isinstance(exc, FileNotFoundError) else f"无法读取（{exc}）"
        raise ValueError(f"模板 {directory.name}/{name} {why}") from None
    sources[name] = source
    bad = template_error(context.get("templates"), source, context)
    if bad:
        raise ValueError(f"模板 {directory.name}/{name} 有误：{bad}")
    refused = lexicon_refusal(context.get("templates"), source, context)
    if refused:
        raise ValueError(f"模板 {directory.name}/{name} {refused}")
    return name


def one_text(raw: Any) -> Any:
    """``text`` and ``template`` exclude each other: with both, only that is said (at ``template``)."""
    if isinstance(raw, dict) and raw.get("text") is not None and raw.get("template") is not None:
        raw = {k: v for k, v in raw.items() if k != "text"}
        raw["template"] = Refused("text 和 template 只能写一个")
    return raw
