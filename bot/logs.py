"""Structured logs: readable text or one JSON object per line (``log.format``).

Message bodies and secrets are never logged at INFO: log event keys and ids.

Every message is escaped (:func:`bot.textsafe.escape_log`): an id or a name
holding a newline, an ANSI sequence or a bidi override cannot forge a line or
recolour the terminal. A warning or error repeated word for word is written once
per ``THROTTLE_S`` seconds; the next copy after that says how many were held back.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.textsafe import escape_log

THROTTLE_S = 60.0

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


class TextFormatter(logging.Formatter):
    """The text format with the message escaped (the traceback that may follow keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_log(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": escape_log(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                v = v if isinstance(v, str | int | float | bool | type(None)) else repr(v)
                out[k] = escape_log(v) if isinstance(v, str) else v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class Throttle(logging.Filter):
    """Lets a WARNING-or-worse record through once per ``interval`` seconds per (logger, level, message,
    exception type); the first one let through after a pause carries the count of those held back."""

    def __init__(self, interval: float = THROTTLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, int, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, record.getMessage(), exc)
        now = self.clock()
        with self._lock:
            if len(self._seen) > 1000:  # forget the oldest half rather than grow without bound
                for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                    del self._seen[k]
            since, held = self._seen.get(key, (-1e18, 0))
            if now - since < self.interval:
                self._seen[key] = (since, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.interval:.0f} s)"
        return True


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Throttle())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "aiohttp.access", "jieba", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("siyu.access").setLevel(level)
