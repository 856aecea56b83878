"""Property-based fuzzing: whatever arrives, every parser answers with its documented refusal and nothing else.

- callbacks: the app's XML (``parse_app_message``), the 智能机器人 JSON (``parse_aibot_message``), the generic
  webhook JSON (``parse_webhook``) and archive records (``parse_lines``) raise only ParseProblem / PayloadError
  (a 400), and whatever they accept decodes into events and can be stored;
- commands: ``tokenize`` and ``CommandSpec.parse`` of every declared command raise only CommandError, and what
  they accept stays within the documented bounds (numbers finite, dates in 2000–2100);
- file contracts: knowledge entries, SOP scripts, the Moments calendar, tiers.yaml and lexicon files raise only
  FileProblems — for arbitrary text, for arbitrary YAML documents and for the repository's own files with
  one line changed.

The test command runs a bounded number of examples (the ``ci`` profile, conftest.py); ``HYPOTHESIS_PROFILE=fuzz``
runs many more (docs/testing.md).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.edge import clean_payload
from bot.channels.parse import ParseProblem, parse_aibot_message, parse_app_message, parse_webhook
from bot.commands import YEARS, CommandError, CommandRegistry, tokenize
from bot.compliance.archive import observed, parse_lines
from bot.events import events_from_payload
from bot.knowledge.loader import parse_entries
from bot.sop.moments import parse_calendar
from bot.sop.script import parse_script
from bot.templates import Templates
from bot.tiers.rulesfile import parse_rules
from bot.yamldoc import FileProblems
from handlers import FEATURES
from moderation.lexicon import parse_category_text

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 2, tzinfo=UTC)
STAFF = frozenset({"staff01"})

# ── shared strategies ──

# Text that includes what attackers use: controls, bidi overrides, NUL, lone surrogates, CJK, emoji.
nasty_chars = st.sampled_from(list("\x00\x1b\u202e\u2066\r\n\t\ufeff\ud800\udfff \"'<>&{}[]:#-|@＠/.,0123456789eE+"))
texts = st.one_of(st.text(max_size=80), st.text(alphabet=nasty_chars, max_size=40),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
ints = st.one_of(st.integers(-10, 10**6), st.integers(), st.sampled_from([2**63 - 1, -(2**63), 2**63, 10**30, -1, 0]))
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON-like values whose object keys are mostly ``keys`` (so the fuzzer reaches past the first check)."""
    key = st.one_of(st.sampled_from(keys), texts)
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(key, inner, max_size=6)), max_leaves=20)


def refused_or(fn: Any, *refusals: type[BaseException]) -> Any:
    """``fn()``'s result, or None when it raised one of the documented refusals."""
    try:
        return fn()
    except refusals:
        return None


def decodes(payload: dict[str, Any], key: str) -> None:
    """What a channel accepted is stored (the edge rules hold) and decodes into events."""
    clean_payload(payload)  # raises EdgeProblem if the channel let through what a database refuses
    json.dumps(payload, allow_nan=False)
    assert events_from_payload(payload, key, NOW, STAFF)


# ── callbacks ──

APP_FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "AgentID", "Event",
              "ChangeType", "UserID", "ExternalUserID", "ChatId", "UpdateDetail", "JoinScene", "QuitScene",
              "MemChangeCnt", "State", "WelcomeCode", "FailReason", "Source"]
APP_VALUES = ["text", "event", "image", "enter_agent", "msgaudit_notify", "change_external_contact",
              "change_external_chat", "add_external_contact", "add_half_external_contact", "edit_external_contact",
              "del_external_contact", "del_follow_user", "transfer_fail", "create", "update", "dismiss",
              "add_member", "del_member", "change_owner", "change_name", "0", "1", "3", "1700000000",
              "wmBob", "staff01", "wrChat", "-1", "99999999999999999999999"]


@st.composite
def app_xml(draw: st.DrawFn) -> str:
    fields = draw(st.dictionaries(st.sampled_from(APP_FIELDS), st.one_of(st.sampled_from(APP_VALUES), texts),
                                  max_size=12))
    body = "".join(f"<{k}>{escape(v)}</{k}>" if draw(st.booleans()) else f"<{k}><![CDATA[{v}]]></{k}>"
                   for k, v in fields.items())
    return f"<xml>{body}</xml>"


@given(st.one_of(app_xml(), texts))
def test_app_callbacks_are_parsed_or_refused(plain: str) -> None:
    parsed = refused_or(lambda: parse_app_message(plain, STAFF), ParseProblem)
    if parsed is not None:
        decodes(parsed.payload, parsed.dedup_key)


AIBOT_KEYS = ["msgid", "aibotid", "chatid", "chattype", "from", "userid", "msgtype", "text", "content", "mixed",
              "msg_item", "event", "eventtype", "response_url", "image", "url"]


@st.composite
def aibot_json(draw: st.DrawFn) -> str:
    base: dict[str, Any] = {"msgid": draw(st.one_of(st.text(min_size=1, max_size=8), scalars)),
                            "chattype": draw(st.one_of(st.sampled_from(["single", "group"]), scalars)),
                            "from": {"userid": draw(st.one_of(st.sampled_from(["wmBob", "staff01"]), scalars))},
                            "chatid": draw(st.one_of(st.just("wrChat"), scalars)),
                            "msgtype": draw(st.one_of(st.sampled_from(["text", "mixed", "event", "image"]), scalars))}
    base["text"] = draw(st.one_of(st.fixed_dictionaries({"content": texts}), json_values(AIBOT_KEYS)))
    base["mixed"] = draw(st.one_of(
        st.fixed_dictionaries({"msg_item": st.lists(st.one_of(
            st.fixed_dictionaries({"msgtype": st.just("text"), "text": st.fixed_dictionaries({"content": texts})}),
            json_values(AIBOT_KEYS)), max_size=3)}),
        json_values(AIBOT_KEYS)))
    base["event"] = draw(st.one_of(st.just({"eventtype": "enter_chat"}), json_values(AIBOT_KEYS)))
    extra = draw(st.dictionaries(st.sampled_from(AIBOT_KEYS), json_values(AIBOT_KEYS), max_size=3))
    doc = {**base, **extra} if draw(st.booleans()) else draw(json_values(AIBOT_KEYS))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()))


@given(st.one_of(aibot_json(), texts, st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_aibot_callbacks_are_parsed_or_refused(plain: str) -> None:
    parsed = refused_or(lambda: parse_aibot_message(plain, STAFF, ["小禾"]), ParseProblem)
    if parsed is not None:
        decodes(parsed.payload, parsed.dedup_key)


WEBHOOK_KEYS = ["id", "type", "time", "channel", "chat", "sender", "member", "members", "name", "staff", "text",
                "mentions_bot", "msg_id", "reply", "scene", "inviter", "owner", "change", "half", "state",
                "welcome_code", "user", "detail", "from_tier", "to_tier", "reason", "tag"]
EVENT_TYPES = ["message", "member_joined", "member_left", "contact_added", "contact_changed", "group_created",
               "group_updated", "group_dismissed", "entered", "archive_notify", "tier_changed", "tag_added", "nope"]


@st.composite
def webhook_json(draw: st.DrawFn) -> bytes:
    actor = st.one_of(st.fixed_dictionaries({"id": st.sampled_from(["wmBob", "staff01", ""]), "name": texts}),
                      json_values(WEBHOOK_KEYS))
    doc: dict[str, Any] = {"id": draw(st.one_of(st.text(min_size=1, max_size=10), scalars)),
                           "type": draw(st.one_of(st.sampled_from(EVENT_TYPES), scalars)),
                           "time": draw(st.one_of(st.integers(0, 2**40), scalars)),
                           "chat": draw(st.one_of(st.fixed_dictionaries({"id": st.just("wrChat"), "name": texts}),
                                                  json_values(WEBHOOK_KEYS))),
                           "sender": draw(actor), "member": draw(actor), "text": draw(texts)}
    extra = draw(st.dictionaries(st.sampled_from(WEBHOOK_KEYS), json_values(WEBHOOK_KEYS), max_size=4))
    doc = {**doc, **extra} if draw(st.booleans()) else draw(json_values(WEBHOOK_KEYS))
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@given(st.one_of(webhook_json(), st.binary(max_size=80),
                 st.integers(1, 40).map(lambda n: b"[" * n * 100 + b"]" * n * 100)))
def test_webhook_bodies_are_accepted_or_refused(body: bytes) -> None:
    accepted = refused_or(lambda: parse_webhook(body, NOW, STAFF), ParseProblem)
    if accepted is not None:
        decodes(accepted.payload, accepted.dedup_key)


ARCHIVE_KEYS = ["seq", "msgid", "action", "from", "tolist", "roomid", "msgtime", "time", "msgtype", "text",
                "content", "revoke", "pre_msgid"]


@st.composite
def archive_line(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = {"seq": draw(st.one_of(st.integers(0, 10**6), ints, scalars)),
                           "msgid": draw(st.one_of(st.text(min_size=1, max_size=10), scalars)),
                           "action": draw(st.one_of(st.sampled_from(["send", "recall", "switch"]), scalars)),
                           "from": draw(st.one_of(st.sampled_from(["wmBob", "staff01"]), scalars)),
                           "msgtime": draw(st.one_of(st.integers(1, 2**45), ints, floats)),
                           "msgtype": draw(st.one_of(st.sampled_from(["text", "revoke", "image"]), scalars)),
                           "text": {"content": draw(texts)}, "roomid": draw(st.one_of(st.just(""), scalars))}
    extra = draw(st.dictionaries(st.sampled_from(ARCHIVE_KEYS), json_values(ARCHIVE_KEYS), max_size=3))
    doc = {**doc, **extra} if draw(st.booleans()) else draw(json_values(ARCHIVE_KEYS))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()))


@given(st.lists(st.one_of(archive_line(), texts, st.binary(max_size=40),
                          st.integers(1, 30).map(lambda n: "[" * n * 100 + "]" * n * 100)), max_size=4))
def test_archive_records_are_read_or_named_as_problems(lines: list[str | bytes]) -> None:
    records, problems = parse_lines(lines)
    assert all(p.line >= 1 and p.error for p in problems)
    for rec in records:
        assert 0 <= rec.seq < 2**63 and len(rec.msgid) <= 200
        observed(rec, STAFF)


# ── commands ──

REGISTRY = CommandRegistry([r for f in FEATURES for r in getattr(f, "routers", [])])
SPECS = sorted(REGISTRY.specs.values(), key=lambda s: s.name)

arg_words = st.one_of(
    texts, st.sampled_from(["nan", "inf", "-inf", "1e308", "0", "-0", "0.01", "10000000", "10000000.01", "19.999",
                            "9223372036854775807", "-9223372036854775808", "9999-12-31", "0001-01-01", "2026-11-23",
                            "23:59", "24:00", "25:61", "@wmBob", "@", "＠小明", "本群", "auto", "“引号", "「好」"]),
    st.integers().map(str), st.floats().map(repr), st.text("0123456789.-+eE:：", max_size=30),
    st.integers(1, 6000).map(lambda n: "9" * n))


@given(st.sampled_from(SPECS), st.lists(arg_words, max_size=5), st.sampled_from([" ", "\n", "\u3000", "  "]))
def test_every_command_parses_its_arguments_or_refuses_them(spec: Any, words: list[str], sep: str) -> None:
    body = spec.name + " " + sep.join(words)
    tokens = refused_or(lambda: tokenize(body), CommandError)
    if tokens is None:
        return
    found, consumed, _ = REGISTRY.resolve(tokens)
    assert found is spec
    args = refused_or(lambda: spec.parse(body, tokens[consumed:]), CommandError)
    for arg in spec.args if args is not None else []:
        value = args[arg.name]
        if arg.type in ("int", "float") and value is not None:
            assert math.isfinite(value) and abs(value) < 10**15
            assert arg.min is None or value >= arg.min
            assert arg.max is None or value <= arg.max
        if arg.type == "date" and isinstance(value, date):
            assert YEARS[0] <= value.year <= YEARS[1]
        if arg.type == "time" and value is not None:
            assert isinstance(value, time)


@given(texts)
def test_tokenize_refuses_only_with_command_error(text: str) -> None:
    tokens = refused_or(lambda: tokenize(text), CommandError)
    assert tokens is None or all(t.text == text[t.start + t.quoted:t.end - t.quoted] for t in tokens)


# ── file contracts ──


def _repo_files(pattern: str, directory: str) -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted((REPO / directory).glob(pattern))]


SOP_TEMPLATES = REPO / "sop_templates" / "templates"
TEMPLATES = Templates(ZoneInfo("Asia/Shanghai"), [SOP_TEMPLATES])

CONTRACTS: dict[str, tuple[Any, list[tuple[str, str]], list[str]]] = {
    "knowledge": (lambda text: parse_entries(text, "kb.yaml"), _repo_files("*.yaml", "knowledge_base"),
                  ["id", "questions", "answer", "keywords", "match", "priority", "tiers", "groups", "hours",
                   "enabled", "tags", "follow_up"]),
    "sop": (lambda text: parse_script(text, "s.yaml", templates=TEMPLATES, templates_dir=SOP_TEMPLATES),
            [f for f in _repo_files("*.yaml", "sop_templates") if f[0] != "moments.yaml"],
            ["id", "name", "trigger", "on", "per", "steps", "after", "at", "via", "text", "when", "quiet", "where",
             "stop_on", "repeat", "every", "times", "template", "images", "links", "staff", "enabled", "version"]),
    "moments": (lambda text: parse_calendar(text, "moments.yaml", templates=TEMPLATES, templates_dir=SOP_TEMPLATES),
                _repo_files("moments.yaml", "sop_templates"),
                ["approval", "staff", "audience", "week", "overrides", "campaigns", "id", "at", "theme", "text",
                 "images", "links", "from", "to", "date", "skip", "slots", "mon", "tue", "wed"]),
    "tiers": (lambda text: parse_rules(text, "tiers.yaml"), [("tiers.yaml", (REPO / "tiers.yaml").read_text())],
              ["tiers", "points", "downgrade", "id", "name", "requires", "group_tag", "privileges", "message",
               "checkin", "homework", "referral", "purchase", "daily_cap", "keywords", "inactive_days", "to",
               "keep", "spend", "streak", "days"]),
    "lexicon": (lambda text: parse_category_text(text, "ads.yaml"), _repo_files("*.yaml", "moderation/lexicons"),
                ["category", "level", "description", "terms", "allow", "term", "form", "scope", "note", "regex"]),
}


def yaml_docs(keys: list[str]) -> st.SearchStrategy[str]:
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8))
    value = st.recursive(st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=30)),
                         lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)),
                         max_leaves=25)
    return value.map(lambda v: yaml.safe_dump(v, allow_unicode=True))


@st.composite
def one_line_changed(draw: st.DrawFn, files: list[tuple[str, str]]) -> str:
    """A repository file with one line replaced, removed or duplicated (structure mostly intact)."""
    _, text = draw(st.sampled_from(files))
    lines = text.splitlines()
    i = draw(st.integers(0, max(len(lines) - 1, 0)))
    how = draw(st.sampled_from(["value", "drop", "twice", "indent"]))
    if not lines:
        return text
    line = lines[i]
    if how == "value" and ":" in line:
        head = line.split(":", 1)[0]
        scalar = draw(st.one_of(ints, floats, st.booleans(), st.none(), st.text(max_size=20), st.just("[]"),
                                st.just("{}"), st.just("*a"), st.just("&a x")))
        lines[i] = f"{head}: {scalar if isinstance(scalar, str) else json.dumps(scalar)}"
    elif how == "drop":
        del lines[i]
    elif how == "twice":
        lines.insert(i, line)
    else:
        lines[i] = " " * draw(st.integers(0, 6)) + line.lstrip()
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_file_contracts_refuse_only_with_file_problems(contract: str) -> None:
    parse, files, keys = CONTRACTS[contract]
    assert files, f"no {contract} file in the repository to start from"
    for _, text in files:
        parse(text)  # the repository's own files are accepted

    @given(st.one_of(texts, yaml_docs(keys), one_line_changed(files)))
    def check(text: str) -> None:
        try:
            parse(text)
        except FileProblems as exc:
            assert exc.problems and all(p.message for p in exc.problems)

    check()


def test_the_fuzz_settings_are_bounded() -> None:
    from hypothesis import settings

    current = settings()
    assert current.deadline is None
    assert current.max_examples <= 200 or settings._current_profile == "fuzz"

