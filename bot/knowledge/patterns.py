"""Regular expressions written by operators (``match: regex`` keywords), run by RE2.

Every member's question is tried against every regex entry, so a pattern must
never take more than linear time: RE2 guarantees it (no backtracking), where
Python's ``re`` can take exponential time on a pattern like ``(a+)+b``.
RE2 has no lookaround (``(?=…)``, ``(?!…)``, ``(?<=…)``, ``(?<!…)``) and no
backreferences (``\\1``); a pattern using them — or too big for RE2's memory
budget — is refused when it is added, with the reason in Chinese.

``\\d``, ``\\w`` and ``\\b`` are ASCII in RE2; questions are folded first
(full-width digits and letters become ASCII), so ``\\d`` finds ``１２３`` too.
When a pattern has a capturing group, the first group that took part is what it
found (``(?:^|\\D)(\\d{16,20})(?:\\D|$)`` reports the number, not the characters
around it).
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PATTERN = 500        # characters of one pattern
MAX_MEMORY = 4 << 20     # bytes RE2 may use for one compiled pattern

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False
_OPTIONS.max_mem = MAX_MEMORY

LOOKAROUND_HINT = r"例如 (?<!\d)\d{16,20}(?!\d) 可写成 (?:^|\D)(\d{16,20})(?:\D|$)"


class PatternRefused(ValueError):
    """A pattern RE2 cannot take; ``str()`` is the reason in Chinese."""


def compile_pattern(source: str) -> Any:
    """The RE2 pattern of ``source`` (case-insensitive), or PatternRefused with the reason."""
    if len(source) > MAX_PATTERN:
        raise PatternRefused(f"正则表达式太长（{len(source)} 字，上限 {MAX_PATTERN} 字）")
    try:
        return re2.compile(source, _OPTIONS)
    except re2.error as exc:
        raise PatternRefused(_reason(exc)) from exc


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    if "invalid perl operator: (?<" in message or "invalid perl operator: (?=" in message \
            or "invalid perl operator: (?!" in message:
        return f"不支持前后断言 (?=…) (?!…) (?<=…) (?<!…)，请改写（{LOOKAROUND_HINT}）"
    if "invalid escape sequence: \\" in message and message.rstrip()[-1:].isdigit():
        return "不支持反向引用（\\1 这样的写法），请改写"
    if "repetition" in message and ("size" in message or "operator" in message):
        return "重复次数太大或重复套着重复（{n} 的上限是 1000），请改写"
    if "too large" in message or "memory" in message:
        return "正则表达式太复杂，请拆成几条简单的"
    return f"正则表达式有误：{message}"


def found_text(m: Any) -> str:
    """What a match found: its first capturing group that took part, else the whole match."""
    for i in range(1, m.re.groups + 1):
        part = m.group(i)
        if part:
            return str(part)
    return str(m.group(0))
