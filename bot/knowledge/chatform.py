"""What operators type after ``/kb add`` and ``/kb edit``, turned into the entry contract's fields.

``/kb add`` accepts three forms:

- one line: ``/kb add 怎么开发票 在订单详情页点「申请开票」……`` (question, then answer);
- two or more lines: the first line is the question, the rest is the answer;
- labelled lines (``问题: …``, ``关键词: …``, ``时间: 09:00-21:00`` …) with ``答案:`` last,
  everything after it being the answer.

``/kb edit <id>`` takes ``<字段> <新值>`` (``答案``, ``问题``, ``+问题``, ``-问题``,
``关键词`` …; ``-`` clears an optional field) or the labelled lines.
"""

from __future__ import annotations

import re
from typing import Any

from bot.commands import CommandError, tokenize

FIELD_NAMES: dict[str, str] = {
    "id": "id", "编号": "id",
    "问题": "questions", "问法": "questions", "questions": "questions", "question": "questions",
    "关键词": "keywords", "keywords": "keywords", "keyword": "keywords",
    "匹配": "match", "匹配方式": "match", "match": "match",
    "优先级": "priority", "priority": "priority",
    "时间": "active_hours", "服务时间": "active_hours", "active_hours": "active_hours",
    "非服务时间回复": "off_hours", "下班回复": "off_hours", "off_hours": "off_hours",
    "群内自动": "group_auto", "群自动回复": "group_auto", "group_auto": "group_auto",
    "会话": "chat", "chat": "chat",
    "群": "groups", "groups": "groups",
    "等级": "tiers", "tiers": "tiers",
    "答案": "answer", "回答": "answer", "answer": "answer",
}
LIST_FIELDS = {"questions", "keywords", "groups", "tiers"}
SCOPE_FIELDS = {"chat", "groups", "tiers"}
CLEARABLE = {"keywords", "active_hours", "off_hours", "groups", "tiers", "priority", "group_auto", "match", "chat"}
MATCH_WORDS = {"自动": "auto", "完全一致": "exact", "精确": "exact", "包含": "contains", "正则": "regex"}
CHAT_WORDS = {"全部": "any", "所有": "any", "群聊": "group", "群": "group", "私聊": "single", "单聊": "single"}
YES = {"是", "开", "开启", "打开", "true", "yes", "on", "1", "对"}
NO = {"否", "关", "关闭", "false", "no", "off", "0", "不"}
CLEAR = {"-", "无", "清空", "none"}
LABEL_RX = re.compile(r"^\s*([^\s:：]{1,16})\s*[:：]\s?(.*)$")


def _split_list(field: str, raw: str) -> list[str]:
    seps = r"[|｜]" if field == "questions" else r"[|｜,，、;；]|\s+"
    return [p.strip() for p in re.split(seps, raw) if p.strip()]


def _value(field: str, raw: str) -> Any:
    raw = raw.strip()
    if field in LIST_FIELDS:
        return _split_list(field, raw)
    if field == "priority":
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise CommandError(f"优先级应是整数，收到 {raw!r}")
        return int(raw)
    if field == "group_auto":
        low = raw.lower()
        if low in YES:
            return True
        if low in NO:
            return False
        raise CommandError(f"群内自动应是 是/否，收到 {raw!r}")
    if field == "match":
        return MATCH_WORDS.get(raw, raw.lower())
    if field == "chat":
        return CHAT_WORDS.get(raw, raw.lower())
    return raw


def is_labelled(text: str) -> bool:
    for line in text.splitlines():
        m = LABEL_RX.match(line)
        if m and m.group(1).lower() in FIELD_NAMES:
            return True
    return False


def parse_labelled(text: str) -> dict[str, Any]:
    """Labelled lines → fields (``answer`` takes every line after its label)."""
    fields: dict[str, Any] = {}
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        m = LABEL_RX.match(line)
        name = FIELD_NAMES.get(m.group(1).lower()) if m else None
        if m is None or name is None:
            raise CommandError(f"第 {n + 1} 行看不懂：{line.strip()[:30]}（每行写「字段: 值」，答案放最后）")
        rest = m.group(2)
        if name == "answer":
            fields["answer"] = "\n".join([rest, *lines[n + 1:]]).strip()
            break
        if name in LIST_FIELDS and name in fields:
            fields[name] = [*fields[name], *_value(name, rest)]
        elif rest.strip().lower() in CLEAR and name in CLEARABLE:
            fields[name] = None
        else:
            fields[name] = _value(name, rest)
    return fields


def parse_add(content: str) -> dict[str, Any]:
    """The fields of a new entry from what follows ``/kb add``; raise CommandError when incomplete."""
    content = content.strip("\n")
    if is_labelled(content):
        fields = parse_labelled(content)
    elif "\n" in content.strip():
        first, _, rest = content.strip().partition("\n")
        fields = {"questions": _split_list("questions", first), "answer": rest.strip()}
    else:
        tokens = tokenize(content)
        if len(tokens) < 2:
            raise CommandError("需要问题和答案：/kb add <问题> <答案>（问题里有空格请加引号）")
        fields = {"questions": [tokens[0].text], "answer": content[tokens[1].start:].strip()}
    if not fields.get("questions") and not fields.get("keywords"):
        raise CommandError("缺少问题：写「问题: 怎么退款 | 退款流程」")
    if not fields.get("answer"):
        raise CommandError("缺少答案：答案写在最后，「答案:」后面的内容都算答案")
    return fields


def apply_edit(data: dict[str, Any], change: str) -> dict[str, Any]:
    """The entry's data with the typed change applied (``data`` is the contract's mapping)."""
    out = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    if is_labelled(change) and "\n" in change.strip():
        return _merge(out, parse_labelled(change))
    tokens = tokenize(change)
    if not tokens:
        raise CommandError("要改什么？例如 /kb edit refund-policy 答案 新的回答内容")
    label = tokens[0].text.lower().rstrip(":：")
    raw = change[tokens[1].start:].strip() if len(tokens) > 1 else ""
    if len(tokens) == 2 and tokens[1].quoted:
        raw = tokens[1].text
    if label[:1] in "+-＋－" and FIELD_NAMES.get(label[1:]) in ("questions", "keywords"):
        return _add_or_remove(out, label, raw)
    return _merge(out, _one_field(tokens[0].text, label, raw))


def _add_or_remove(out: dict[str, Any], label: str, raw: str) -> dict[str, Any]:
    """``+问题 …`` / ``-关键词 …``: items added to or removed from a list."""
    name = FIELD_NAMES[label[1:]]
    items = _split_list(name, raw)
    if not items:
        raise CommandError(f"{label} 后面要写内容")
    current = list(out.get(name) or [])
    if label[0] in "+＋":
        current += [i for i in items if i not in current]
    else:
        missing = [i for i in items if i not in current]
        if missing:
            raise CommandError(f"没有这个{label[1:]}：{'、'.join(missing)}")
        current = [i for i in current if i not in items]
    out[name] = current
    return out


def _one_field(written: str, label: str, raw: str) -> dict[str, Any]:
    """``<字段> <新值>``: the one field's new value (None clears it)."""
    name = FIELD_NAMES.get(label)
    if name is None:
        raise CommandError(f"不认识的字段 {written}（可用：答案、问题、+问题、-问题、关键词、+关键词、"
                           "-关键词、"
                           "匹配、优先级、时间、非服务时间回复、群内自动、会话、群、等级）")
    if name == "id":
        raise CommandError("id 不能修改；需要新 id 请 /kb add 一条新的，再 /kb del 旧的")
    if not raw:
        raise CommandError(f"{written} 后面要写新的值（清空写 -）")
    if raw.lower() in CLEAR and name in CLEARABLE:
        return {name: None}
    return {name: _value(name, raw)}


def _merge(out: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """The updates written into the contract's mapping (scope keys go under ``scope``; None removes)."""
    if "id" in updates and updates["id"] != out.get("id"):
        raise CommandError("id 不能修改")
    scope = dict(out.get("scope") or {})
    for name, value in updates.items():
        target = scope if name in SCOPE_FIELDS else out
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    if scope:
        out["scope"] = scope
    else:
        out.pop("scope", None)
    return out


def fields_to_data(fields: dict[str, Any]) -> dict[str, Any]:
    """Labelled fields (scope keys flat) → the contract's mapping."""
    data = {k: v for k, v in fields.items() if k not in SCOPE_FIELDS and v is not None}
    scope = {k: fields[k] for k in SCOPE_FIELDS if fields.get(k) is not None}
    if scope:
        data["scope"] = scope
    return data
