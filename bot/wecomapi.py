"""The WeCom API as a service features may call (e.g. to poll a Moments job's result).

bot.senders.wecom implements it and the app provides it under WECOM_API when
``bot.sender = "wecom"``; with the console sender there is none
(``app.maybe(WECOM_API)`` is None) and features record that nothing was polled.

Errors: an answer with ``errcode != 0`` raises :class:`WeComError`; no usable
answer at all (network error, timeout, HTTP 5xx/429, a body that is not JSON)
raises :class:`WeComTransportError`, a subclass with errcode -1 ("busy, try
later"). ``retryable`` says whether trying again later can succeed.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.services import ServiceKey

# Errcodes worth trying again later (docs/wecom-protocol.md §4), with the wait WeCom implies.
RETRYABLE_ERRCODES: dict[int, float | None] = {
    -1: None,      # system busy: back off
    45009: 60.0,   # frequency limit: a minute block lasts 60 s
    45033: 5.0,    # concurrency limit: back off a little
}
# The access token was refused: refresh it once and repeat the call once.
TOKEN_ERRCODES = frozenset({40014, 42001})

# What an operator should do about the common permanent errcodes.
ERRCODE_HINTS: dict[int, str] = {
    -1: "system busy",
    40001: "invalid secret: check wecom.secret (and wecom.corp_id)",
    40013: "invalid corp id: check wecom.corp_id",
    40014: "invalid access token",
    41001: "access token missing",
    41051: "welcome code already used",
    42001: "access token expired",
    45009: "frequency limit reached",
    45033: "concurrency limit reached",
    48002: "API not authorised for this app: grant it in the admin console (客户联系 / 可调用接口的应用)",
    60020: "server IP not in the app's trusted IPs (企业可信IP)",
    81013: "all recipients invalid (user, party and tag all invalid or outside the app's visible range)",
    93000: "invalid group robot webhook key",
}


class WeComError(Exception):
    """WeCom answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str = "", *, retryable: bool | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.retryable = errcode in RETRYABLE_ERRCODES if retryable is None else retryable
        self.retry_after = RETRYABLE_ERRCODES.get(errcode) if retry_after is None else retry_after

    @property
    def hint(self) -> str:
        return ERRCODE_HINTS.get(self.errcode, "")


class WeComTransportError(WeComError):
    """No errcode answer: network error, timeout, HTTP error status or a body that is not JSON."""

    def __init__(self, detail: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(-1, detail, retryable=retryable, retry_after=retry_after)
        self.status = status

    def __str__(self) -> str:
        return self.errmsg


class WeComApi(Protocol):
    async def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        """Call ``/cgi-bin/<path>`` with the cached access token; raise WeComError on errcode != 0."""
        ...


WECOM_API: ServiceKey[WeComApi] = ServiceKey("wecom_api")
