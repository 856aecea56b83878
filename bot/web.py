"""HTTP: the three inbound channels, health and metrics.

Every channel verifies, parses, commits to the inbox and answers — it never
waits for handlers (except the 智能机器人's short, bounded wait for a passive
reply). Forged or missing signatures and stale timestamps → 401, malformed
bodies → 400, oversized bodies → 413; none of them stores anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.app import BotApp
from bot.channels.edge import EdgeProblem, clean_payload, clean_text, loads
from bot.channels.parse import (
    Parsed,
    ParseProblem,
    outer_encrypt,
    parse_aibot_message,
    parse_app_message,
    parse_webhook,
)
from bot.crypto import CryptoError, WeComCrypto
from bot.inbox import Incoming
from bot.signing import signed_by
from bot.storage.health import WriteProbe

log = logging.getLogger("siyu.web")

BOT = web.AppKey("bot", BotApp)
APP_CRYPTO = web.AppKey("wecom_app_crypto", object)
AIBOT_CRYPTO = web.AppKey("aibot_crypto", object)
WRITE_PROBE = web.AppKey("write_probe", WriteProbe)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def _refuse(status: int, reason: str, detail: str) -> Refused:
    return Refused(status, reason, detail)


def _query(request: web.Request, *names: str) -> list[str]:
    values = []
    for name in names:
        v = request.query.get(name)
        if not v and name == "msg_signature":  # an unsigned request is refused like a forged one
            raise _refuse(401, "signature", "msg_signature is missing")
        if not v:
            raise _refuse(400, "missing_param", f"query parameter {name} is required")
        # base64 survives in a query only percent-encoded; a bare '+' decodes to ' '.
        values.append(v.replace(" ", "+"))
    return values


def _check_skew(bot: BotApp, timestamp: str, max_skew: int) -> None:
    if max_skew <= 0:
        return
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise _refuse(400, "bad_timestamp", "timestamp 必须是 UNIX 秒数 (timestamp must be an integer)")
    ts = int(timestamp)
    if abs(bot.clock.now().timestamp() - ts) > max_skew:
        raise _refuse(401, "stale", "timestamp outside the allowed clock skew")


async def _read(request: web.Request) -> bytes:
    """The body, within ``server.read_timeout_s`` (a client trickling it is cut off with 408)."""
    cfg = request.app[BOT].config.server
    try:
        return await asyncio.wait_for(request.read(), cfg.read_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        raise _refuse(413, "too_large", f"body larger than {cfg.max_body_bytes} bytes") from None
    except TimeoutError:
        raise _refuse(408, "slow_body", f"正文未在 {cfg.read_timeout_s:g} 秒内收完 (body not received in time)") \
            from None


def server_options(bot: BotApp) -> dict[str, Any]:
    """What ``serve`` gives aiohttp's runner: a connection must deliver its request line and headers within
    ``server.read_timeout_s`` of opening (or of its previous answer), else it is closed — aiohttp's keep-alive
    timer runs from the connection's start and closes a connection still waiting for a whole request."""
    # After an answer to a request whose body was not read in full (a 408), aiohttp reads and drops the rest for
    # lingering_time before closing: 1 s, not 10, so a trickler is not kept.
    return {"keepalive_timeout": bot.config.server.read_timeout_s, "lingering_time": 1.0}


def channel(name: str, *, json_errors: bool = False) -> Callable[[Handler], Handler]:
    """Turn Refused into the status code, count it, time the acknowledgement."""

    def deco(fn: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            bot = request.app[BOT]
            started = time.perf_counter()
            try:
                response = await fn(request)
            except Refused as r:
                bot.metrics.rejected.labels(name, r.reason).inc()
                log.info("%s refused %s %s: %s", name, r.status, r.reason, r.detail)
                answer = (web.json_response({"error": r.detail}, status=r.status) if json_errors
                          else web.Response(status=r.status, text=r.detail))
                if r.status == 408:
                    answer.force_close()  # not waiting for the rest of a trickled body
                return answer
            bot.metrics.ack_latency.labels(name).observe(time.perf_counter() - started)
            return response

        wrapper.__name__ = fn.__name__
        return wrapper

    return deco


async def _commit(bot: BotApp, channel_name: str, parsed: Parsed, raw: str) -> bool:
    # The edge rules once more for every channel (a no-op for what a channel already cleaned): a row that one
    # database would refuse is refused here, on both, before it can share a transaction with other events.
    try:
        parsed = Parsed(clean_text(parsed.dedup_key), parsed.kind, clean_payload(parsed.payload))
    except EdgeProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    raw = clean_text(raw)
    incoming = Incoming(dedup_key=parsed.dedup_key, channel=channel_name, kind=parsed.kind, payload=parsed.payload,
                        raw=raw, chat_key=parsed.chat_key)
    try:
        # Not acknowledged unless stored in time: the sender sends it again (the store may still commit this
        # one meanwhile; the repeat is then a duplicate, acknowledged as such).
        return await asyncio.wait_for(bot.accept(incoming), bot.config.server.ack_timeout_s)
    except TimeoutError:
        log.warning("a %s event was not stored within %gs (the database is busy); answered 503", channel_name,
                    bot.config.server.ack_timeout_s)
        raise _refuse(503, "storage_busy", "could not store the event in time; retry later") from None
    except Exception as exc:
        log.exception("could not store a %s event", channel_name)
        raise _refuse(503, "storage", "could not store the event; retry later") from exc


def _crypto(request: web.Request, key: web.AppKey[Any]) -> WeComCrypto:
    crypto = request.app.get(key)
    if crypto is None:
        raise _refuse(404, "not_configured", "this channel is not configured")
    return crypto  # type: ignore[return-value]


def _open(request: web.Request, crypto: WeComCrypto, encrypted: str, ts: str, nonce: str, sig: str) -> str:
    """Verify the signature and the timestamp, then decrypt: the steps every WeCom callback shares."""
    bot = request.app[BOT]
    try:
        crypto.verify(ts, nonce, encrypted, sig)
    except CryptoError:
        raise _refuse(401, "signature", "signature mismatch") from None
    _check_skew(bot, ts, bot.config.wecom.max_clock_skew_s)
    try:
        return crypto.decrypt(encrypted)
    except CryptoError as exc:
        raise _refuse(400, "decrypt", f"cannot decrypt ({exc.code})") from None


def url_verification(channel_name: str, key: web.AppKey[Any]) -> Handler:
    """GET: answer the decrypted ``echostr`` as the plain body (protocol doc §1.1)."""

    @channel(channel_name)
    async def verify(request: web.Request) -> web.StreamResponse:
        crypto = _crypto(request, key)
        sig, ts, nonce, echostr = _query(request, "msg_signature", "timestamp", "nonce", "echostr")
        return web.Response(body=_open(request, crypto, echostr, ts, nonce, sig).encode(), content_type="text/plain")

    return verify


# ── WeCom self-built app (XML) ──


@channel("wecom_app")
async def wecom_callback(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    crypto = _crypto(request, APP_CRYPTO)
    sig, ts, nonce = _query(request, "msg_signature", "timestamp", "nonce")
    body = await _read(request)
    try:
        encrypted, _to = outer_encrypt(body)
    except ParseProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    plain = _open(request, crypto, encrypted, ts, nonce, sig)
    try:
        parsed = parse_app_message(plain, frozenset(bot.config.bot.staff_ids))
    except ParseProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    if parsed is None:
        bot.metrics.ignored.labels("wecom_app").inc()
        return web.Response(text="")
    await _commit(bot, "wecom_app", parsed, plain)
    return web.Response(text="")


# ── WeCom 智能机器人 (JSON) ──

_ENCRYPT = re.compile(rb'"encrypt"\s*:\s*"([A-Za-z0-9+/=]{1,1000000})"')


@channel("aibot")
async def aibot_callback(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    crypto = _crypto(request, AIBOT_CRYPTO)
    sig, ts, nonce = _query(request, "msg_signature", "timestamp", "nonce")
    body = await _read(request)
    # The signature covers the encrypted text: find it without parsing the body, check it, and only then parse
    # (an unauthenticated body never reaches the JSON parser).
    found = _ENCRYPT.search(body)
    if found is None:
        raise _refuse(400, "malformed", '正文必须是 JSON {"encrypt": "…"} (the body must be JSON {"encrypt": "…"})')
    encrypted = found.group(1).decode()
    try:
        crypto.verify(ts, nonce, encrypted, sig)
    except CryptoError:
        raise _refuse(401, "signature", "signature mismatch") from None
    try:
        outer = loads(body)
    except EdgeProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    if not isinstance(outer, dict) or outer.get("encrypt") != encrypted:
        raise _refuse(400, "malformed", '正文必须是 JSON {"encrypt": "…"} (the body must be JSON {"encrypt": "…"})')
    plain = _open(request, crypto, encrypted, ts, nonce, sig)
    try:
        parsed = parse_aibot_message(plain, frozenset(bot.config.bot.staff_ids), bot.bot_names)
    except ParseProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    if parsed is None:
        bot.metrics.ignored.labels("aibot").inc()
        return web.Response(text="")
    wait = bot.config.aibot.reply_wait_ms / 1000
    waiting = wait > 0 and bot.run_workers
    processed = bot.inbox_pump.expect(parsed.dedup_key) if waiting else None
    new = await _commit(bot, "aibot", parsed, plain)
    if processed is None:
        return web.Response(text="")
    if not new:
        bot.inbox_pump.forget(parsed.dedup_key, processed)
        return web.Response(text="")
    # Answer passively when the reply is ready in time; otherwise it goes out via response_url.
    if not await bot.inbox_pump.wait_processed(parsed.dedup_key, processed, wait):
        return web.Response(text="")
    replies = await bot.outbox.claim_passive(parsed.dedup_key)
    if not replies:
        return web.Response(text="")
    content = "\n\n".join(r.get("text", "") for r in replies)
    if parsed.kind == "entered":
        message = {"msgtype": "text", "text": {"content": content}}
    else:
        message = {"msgtype": "stream", "stream": {"id": secrets.token_hex(8), "finish": True, "content": content}}
    reply_ts = str(int(bot.clock.now().timestamp()))
    encrypted_reply, signature = crypto.seal(json.dumps(message, ensure_ascii=False), reply_ts, nonce)
    return web.json_response({"encrypt": encrypted_reply, "msgsignature": signature, "timestamp": int(reply_ts),
                              "nonce": nonce})


# ── generic signed JSON ──


@channel("webhook", json_errors=True)
async def webhook(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    secret = bot.config.webhook.secret.get_secret_value()
    if not secret:
        raise _refuse(404, "not_configured", "the generic webhook is not configured (webhook.secret)")
    body = await _read(request)
    given = request.headers.get("X-Siyu-Signature", "")
    if not signed_by(secret, body, given):
        raise _refuse(401, "signature", "missing or wrong X-Siyu-Signature (sha256=<hex of HMAC-SHA256>)")
    try:
        parsed = parse_webhook(body, bot.clock.now(), frozenset(bot.config.bot.staff_ids))
    except ParseProblem as exc:
        raise _refuse(400, "malformed", str(exc)) from None
    skew = bot.config.webhook.max_clock_skew_s
    if skew > 0:
        when = parsed.payload.get("time")
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise _refuse(401, "stale", "需要 time（UNIX 秒数）(time is required when webhook.max_clock_skew_s is set)")
        if abs(bot.clock.now().timestamp() - when) > skew:
            raise _refuse(401, "stale", "time 超出允许的时钟偏差 (time outside the allowed clock skew)")
    new = await _commit(bot, "webhook", parsed, "")
    return web.json_response({"accepted": True, "duplicate": not new})


# ── ops ──


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 ``{"status": "ok"}``; 200 ``{"status": "degraded", "inbox_lag_s": …}`` when processing is behind
    intake past ``inbox.lag_degraded_s`` / ``outbox.lag_degraded_s`` (the replica still acknowledges: taking it
    out of a load balancer would not shorten the backlog); 503 ``{"status": "degraded"}`` when the database
    reads but takes no write (disk full, read-only, locked — callbacks could not be stored), 503
    ``{"status": "error"}`` when it cannot be read or the scheduler stopped. Load balancers take a replica out
    on any status but 2xx."""
    bot = request.app[BOT]
    status = await bot.health()
    if status["status"] in ("ok", "degraded"):
        problem = await request.app[WRITE_PROBE].check()
        if problem is not None:
            status.update(status="degraded", error=problem)
    behind_only = status["status"] == "degraded" and "error" not in status
    return web.json_response(status, status=200 if status["status"] == "ok" or behind_only else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    bot = request.app[BOT]
    try:
        await bot.refresh_gauges()
    except Exception:
        log.exception("could not refresh gauges")
    return web.Response(body=bot.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})


class AccessLogger(AbstractAccessLogger):
    """Method, path without the query (it carries signatures and encrypted text), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status, time * 1000)


async def to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def create_web_app(bot: BotApp, *, manage_lifecycle: bool = True) -> web.Application:
    app = web.Application(client_max_size=bot.config.server.max_body_bytes)
    app[BOT] = bot
    app[WRITE_PROBE] = WriteProbe(bot.db, bot.clock, bot.replica)
    cfg = bot.config
    if cfg.wecom.token.get_secret_value() and cfg.wecom.encoding_aes_key.get_secret_value():
        app[APP_CRYPTO] = WeComCrypto(cfg.wecom.token.get_secret_value(),
                                      cfg.wecom.encoding_aes_key.get_secret_value(), cfg.wecom.corp_id)
    if cfg.aibot.token.get_secret_value() and cfg.aibot.encoding_aes_key.get_secret_value():
        app[AIBOT_CRYPTO] = WeComCrypto(cfg.aibot.token.get_secret_value(),
                                        cfg.aibot.encoding_aes_key.get_secret_value(), "")
    app.router.add_get("/wecom/callback", url_verification("wecom_app", APP_CRYPTO))
    app.router.add_post("/wecom/callback", wecom_callback)
    app.router.add_get("/wecom/aibot", url_verification("aibot", AIBOT_CRYPTO))
    app.router.add_post("/wecom/aibot", aibot_callback)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for method, path, handler in bot.http_routes:
        app.router.add_route(method, path, handler)
    if cfg.console.enabled:
        from bot.pages.app import create_console_app  # the console's libraries load only when it is on

        app.router.add_get("/console", to_console)
        app.add_subapp("/console", create_console_app(bot))

    if manage_lifecycle:
        async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
            await bot.start()
            yield
            await bot.stop()

        app.cleanup_ctx.append(lifecycle)
    return app

