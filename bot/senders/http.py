"""One HTTP transport for every call to WeCom: JSON in, JSON out, errcode checked.

Used by the API client (bot.senders.wecom), the group-robot webhook client and
智能机器人 ``response_url`` posts (bot.senders.robot). Every request has the
timeout ``wecom.request_timeout_s``. Failures become :class:`WeComError`
(errcode != 0) or :class:`WeComTransportError` (network error, timeout, HTTP
5xx/429 — retryable; other HTTP statuses and bodies that are not JSON — not).

Query strings carry secrets (``access_token``, ``corpsecret``, the robot's
``key``), so no message this module produces or logs contains a URL's query,
and request bodies are logged only at DEBUG, by size.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.senders.base import SendError
from bot.wecomapi import WeComError, WeComTransportError

log = logging.getLogger("siyu.wecom")

_QUERY = re.compile(r"\?[^\s'\"<>]*")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL query strings or any of ``secrets``."""
    out = _QUERY.sub("?…", text)
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "***")
    return out


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content: bytes
    content_type: str


class Transport:
    """A lazily opened aiohttp session with one timeout and error mapping for all calls."""

    def __init__(self, timeout_s: float, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, raise_for_status=False,
                                                  headers={"User-Agent": "siyu"})
        return self._session

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets())

    async def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                      body: dict[str, Any] | None = None, upload: Upload | None = None) -> dict[str, Any]:
        """One call; returns the JSON answer when its errcode is 0 (or absent).

        ``upload`` sends one file as multipart form data (field ``media``) instead of a JSON body.
        """
        where = f"{method} {urlsplit(url).path}"
        form = None
        if upload is not None:
            form = aiohttp.FormData()
            form.add_field("media", upload.content, filename=upload.filename, content_type=upload.content_type)
        status, raw, retry_after, _ = await self._exchange(
            method, url, where, params=params, json=body if form is None else None, data=form)
        log.debug("%s → HTTP %s (%d bytes sent, %d received)", where, status,
                  len(repr(body)) if body is not None else 0, len(raw))
        if status >= 500 or status == 429:
            raise WeComTransportError(f"{where}: HTTP {status}", retryable=True, retry_after=retry_after,
                                      status=status)
        if status != 200:
            raise WeComTransportError(f"{where}: HTTP {status} (check wecom.api_base)", retryable=False,
                                      status=status)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            raise WeComTransportError(f"{where}: the answer is not a JSON object", retryable=True,
                                      status=status) from None
        errcode = data.get("errcode", 0)
        if not isinstance(errcode, int):
            raise WeComTransportError(f"{where}: errcode is not a number", retryable=True, status=status)
        if errcode != 0:
            raise WeComError(errcode, self._scrub(str(data.get("errmsg", "")))[:300])
        return data

    async def _exchange(self, method: str, url: str, where: str, *, max_bytes: int | None = None,
                        **kw: Any) -> tuple[int, bytes, float | None, str]:
        """Status, body (at most ``max_bytes``), Retry-After and content type; network trouble is retryable."""
        try:
            async with self._open().request(method, url, **kw) as resp:
                raw = await (resp.read() if max_bytes is None else _read_at_most(resp, max_bytes))
                return resp.status, raw, _retry_after(resp), resp.content_type or "application/octet-stream"
        except TimeoutError:
            raise WeComTransportError(f"{where}: no answer within {self.timeout.total:g}s", retryable=True) \
                from None
        except aiohttp.ClientError as exc:
            raise WeComTransportError(f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}"[:300],
                                      retryable=True) from None

    async def fetch(self, url: str, max_bytes: int) -> Upload:
        """Download a file (an image for a Moments post) of at most ``max_bytes``."""
        where = f"GET {urlsplit(url).netloc}{urlsplit(url).path}"
        status, content, _, content_type = await self._exchange("GET", url, where, max_bytes=max_bytes + 1)
        if status >= 500 or status == 429:
            raise WeComTransportError(f"{where}: HTTP {status}", retryable=True)
        if status != 200:
            raise WeComTransportError(f"{where}: HTTP {status}", retryable=False, status=status)
        if len(content) > max_bytes:
            raise WeComTransportError(f"{where}: larger than {max_bytes // (1024 * 1024)} MB", retryable=False)
        if not content:
            raise WeComTransportError(f"{where}: empty file", retryable=False)
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "image"
        return Upload(name[:100], content, content_type)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def send_error(exc: WeComError, what: str) -> SendError:
    """The outbox's view of a failed call: retryable or not, the errcode, a reason an operator can act on."""
    if isinstance(exc, WeComTransportError):
        return SendError(exc.errmsg, retryable=exc.retryable, retry_after=exc.retry_after)
    parts = [exc.errmsg or "no errmsg"]
    if exc.hint:
        parts.append(exc.hint)
    return SendError(f"{' — '.join(parts)} ({what})", retryable=exc.retryable, errcode=exc.errcode,
                     retry_after=exc.retry_after)
