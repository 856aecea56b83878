"""Text from members and senders made safe to show or to log.

- :func:`clean_name` — a display name for a reply: control characters, ANSI
  escape sequences, bidirectional overrides/isolates and line separators
  removed, whitespace runs collapsed (a name cannot reorder or forge the text
  around it).
- :func:`escape_log` — a log field: the same characters shown as visible
  escapes (``\\n``, ``\\x1b``, ``\\u202e``), so a value cannot start a new log
  line or recolour the terminal, and the original can still be read.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0/C1 controls and DEL; bidi marks, embeddings, overrides and isolates; line/paragraph separators; BOM.
_UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
_LOG_UNSAFE_RE = re.compile(f"[{_UNSAFE}\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]")


def clean_name(name: str, limit: int = 64) -> str:
    """``name`` without control, ANSI and bidi characters, whitespace collapsed, at most ``limit`` characters."""
    text = _BREAKS.sub(" ", _ANSI.sub("", name))
    text = _UNSAFE_RE.sub("", text)
    return _SPACES.sub(" ", text).strip()[:limit]


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_log(text: str) -> str:
    """``text`` with every control, bidi and separator character written as a visible escape."""
    return _LOG_UNSAFE_RE.sub(_escape, text) if _LOG_UNSAFE_RE.search(text) else text
