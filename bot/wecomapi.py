"""The WeCom API as a service features may call (e.g. to poll a Moments job's result).

bot.senders.wecom implements it and the app provides it under WECOM_API when
``bot.sender = "wecom"``; with the console sender there is none
(``app.maybe(WECOM_API)`` is None) and features record that nothing was polled.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.app import ServiceKey


class WeComError(Exception):
    """WeCom answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeComApi(Protocol):
    async def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        """Call ``/cgi-bin/<path>`` with the cached access token; raise WeComError on errcode != 0."""
        ...


WECOM_API: ServiceKey[WeComApi] = ServiceKey("wecom_api")
