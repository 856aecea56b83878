"""What every inbound event must be before it is stored, the same on SQLite and PostgreSQL.

Texts: NUL bytes are dropped and lone surrogates become U+FFFD (neither database
stores them: PostgreSQL refuses NUL in text and JSONB, neither encodes a lone
surrogate). Ids (``id`` of chat, sender, member …, ``msg_id``) are refused when
they are empty, longer than ``MAX_ID`` characters or hold a control character.
Numbers must be 64-bit integers or finite floats, nesting at most ``MAX_DEPTH``.
Anything refused is an :class:`EdgeProblem` (→ 400 with a Chinese reason); nothing
is stored.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_ID = 128            # chat, user and message ids (WeCom's are 1-64 bytes; ids in a chat key fit 160)
MAX_EVENT_ID = 180      # the generic webhook's top-level "id"
MAX_DEPTH = 32          # nesting of a payload
INT_RANGE = (-(2**63), 2**63 - 1)

_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_ID_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
ID_KEYS = frozenset({"id", "msg_id", "msgid", "userid", "chatid"})


class EdgeProblem(ValueError):
    """An inbound body that is refused as a whole (→ 400)."""


def clean_text(value: str) -> str:
    """``value`` without NUL bytes and with lone surrogates replaced by U+FFFD."""
    if not _NUL_OR_SURROGATE.search(value):
        return value
    return _NUL_OR_SURROGATE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


def check_id(value: Any, name: str, limit: int = MAX_ID) -> str:
    if not isinstance(value, str) or not value:
        raise EdgeProblem(f"{name}：需要 1-{limit} 个字符的文字")
    if len(value) > limit:
        raise EdgeProblem(f"{name}：最多 {limit} 个字符，收到 {len(value)} 个")
    if _ID_BAD.search(value):
        raise EdgeProblem(f"{name}：不能含控制字符、零宽或方向控制字符")
    return value


def _number(value: int | float, where: str) -> int | float:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise EdgeProblem(f"{where or '数字'}：整数超出 64 位范围")
        return value
    if not math.isfinite(value):
        raise EdgeProblem(f"{where or '数字'}：数字必须是有限值")
    return value


def clean_payload(value: Any, where: str = "", depth: int = 0) -> Any:
    """A copy of a decoded JSON value with texts cleaned; EdgeProblem for what cannot be stored."""
    if depth > MAX_DEPTH:
        raise EdgeProblem(f"嵌套太深：最多 {MAX_DEPTH} 层")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = clean_text(str(k))
            path = f"{where}.{key}" if where else key
            if key in ID_KEYS and (depth > 0 or key != "id"):  # a webhook's own "id" has its own limit
                if v is not None and not isinstance(v, bool | int | float):
                    check_id(v, path)
            out[key] = clean_payload(v, path, depth + 1)
        return out
    if isinstance(value, list):
        return [clean_payload(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, int | float):
        return _number(value, where)
    return value


def _no_constant(name: str) -> Any:
    raise EdgeProblem(f"JSON 中不接受 {name}")


def loads(body: bytes | str) -> Any:
    """JSON → Python with NaN/Infinity, over-deep nesting and oversized numbers refused as EdgeProblem."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise EdgeProblem(f"JSON 嵌套太深：最多 {MAX_DEPTH} 层") from None
    except UnicodeDecodeError:
        raise EdgeProblem("正文不是 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise EdgeProblem(f"不是合法的 JSON：{exc.msg}（第 {exc.lineno} 行第 {exc.colno} 列）") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise EdgeProblem(f"不是可接受的 JSON：{exc}") from None
