"""The WeCom API sender (``bot.sender = "wecom"``) and client (the ``WECOM_API`` service).

Every delivery kind goes out through the self-built app's API at
``wecom.api_base`` (production: https://qyapi.weixin.qq.com); see the delivery table of
docs/delivery.md for the call and the ``destination`` / ``payload`` each kind uses.

Access tokens come from ``gettoken``, cached per app (corp id + secret): one
fetch however many callers want one at the same time (a lock per app), renewed
shortly before ``expires_in`` runs out, never fetched per request. When WeCom
refuses a token anyway (40014 / 42001) it is fetched again once and the call
repeated once.

Failures become :class:`SendError` for the outbox: -1, 45009, 45033, network
errors, timeouts and HTTP 5xx are retryable (45009 waits at least 60 s); every
other errcode is permanent, with the errcode, WeCom's errmsg and a hint in the
reason. Nothing here logs the secret, a token, a robot key or a message body.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.metrics import Metrics
from bot.outbox import TEXT_LIMITS
from bot.senders.base import Delivery, SendError, SendResult
from bot.senders.http import Transport, Upload, send_error
from bot.senders.robot import GroupRobotClient, reply_route
from bot.templates import Templates
from bot.wecomapi import TOKEN_ERRCODES, WeComError, WeComTransportError

log = logging.getLogger("siyu.wecom")

APP_TEXT_BYTES = TEXT_LIMITS["text"]   # message/send and appchat/send content, text and markdown
MAX_ATTACHMENTS = 9            # welcome, mass send and moment attachments
# Every attempt of a message/send or appchat/send asks WeCom's duplicate check (the same request within the
# interval is shown once): a send repeated after a timeout, or after a crash once its lease ran out, is not
# shown twice. The first attempt asks too — WeCom compares whole requests. The price: the very same text to the
# same recipients within 10 minutes is shown once.
DUPLICATE_CHECK_S = 600
UPLOAD_MAX_BYTES = 10 * 1024 * 1024  # upload_attachment takes images and videos up to 10 MB
MEDIA_TTL = timedelta(days=2)  # an uploaded attachment's media_id is valid for 3 days; reuse it for 2


class AccessTokens:
    """``gettoken`` results, cached per app and fetched by one caller at a time."""

    def __init__(self, transport: Transport, api_base: str, clock: Clock, metrics: Metrics | None = None) -> None:
        self.transport = transport
        self.url = f"{api_base}/cgi-bin/gettoken"
        self.clock = clock
        self.metrics = metrics
        self._cache: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @staticmethod
    def _app(corp_id: str, secret: str) -> tuple[str, str]:
        return corp_id, hashlib.sha256(secret.encode()).hexdigest()

    def current(self) -> list[str]:
        return [token for token, _ in self._cache.values()]

    def _fresh(self, app: tuple[str, str], stale: str | None) -> str | None:
        hit = self._cache.get(app)
        if hit is None:
            return None
        token, renew_at = hit
        if token == stale or self.clock.now() >= renew_at:
            return None
        return token

    async def get(self, corp_id: str, secret: str, *, stale: str | None = None) -> str:
        """A valid token; ``stale`` is one WeCom just refused (a newer cached one is fine)."""
        app = self._app(corp_id, secret)
        token = self._fresh(app, stale)
        if token is not None:
            return token
        lock = self._locks.setdefault(app, asyncio.Lock())
        async with lock:
            token = self._fresh(app, stale)
            if token is not None:
                return token
            try:
                data = await self.transport.request("GET", self.url, params={"corpid": corp_id, "corpsecret": secret})
            except WeComTransportError:
                raise
            except WeComError as exc:
                raise WeComError(exc.errcode, f"gettoken: {exc.errmsg}", retryable=exc.retryable,
                                 retry_after=exc.retry_after) from None
            finally:
                if self.metrics is not None:
                    self.metrics.wecom_token_fetches.inc()
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise WeComTransportError("gettoken: the answer has no access_token", retryable=True)
            try:
                expires_in = max(60, int(data.get("expires_in", 7200)))
            except (TypeError, ValueError):
                expires_in = 7200
            # renew a little early: 10 % of the lifetime, at most 5 minutes
            renew_at = self.clock.now() + timedelta(seconds=expires_in - min(300.0, expires_in / 10))
            self._cache[app] = (token, renew_at)
            log.info("fetched a WeCom access token for corp %s (valid %ds)", corp_id, expires_in)
            return token


def _attachments(d: Delivery) -> list[dict[str, Any]]:
    items = d.payload.get("attachments") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SendError("payload.attachments must be a list of WeCom attachment objects", retryable=False)
    if len(items) > MAX_ATTACHMENTS:
        raise SendError(f"{len(items)} attachments; WeCom takes at most {MAX_ATTACHMENTS}", retryable=False)
    return items


def _template_attachments(d: Delivery) -> list[dict[str, Any]]:
    """Attachments for add_msg_template / send_welcome_msg: an image may be a media_id or a URL (pic_url)."""
    out = []
    for a in _attachments(d):
        image = a.get("image")
        if a.get("msgtype") == "image" and isinstance(image, dict) and image.get("url") and not image.get("media_id"):
            a = {"msgtype": "image", "image": {"pic_url": image["url"]}}
        out.append(a)
    return out


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _required(value: Any, what: str) -> Any:
    if not value:
        raise SendError(f"{what} is required", retryable=False)
    return value


class WeComSender:
    """Sends every delivery kind through the WeCom API; also the ``WeComApi`` service."""

    def __init__(self, config: Config, *, clock: Clock | None = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        w = config.wecom
        self.transport = Transport(w.request_timeout_s, self._secrets)
        self.clock = clock or SystemClock()
        self.tokens = AccessTokens(self.transport, w.api_base, self.clock, metrics)
        self._media: dict[tuple[str, str], tuple[str, datetime]] = {}  # (url, type) -> (media_id, reuse until)
        self._media_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.robots = GroupRobotClient(config, self.transport)
        self.templates = Templates(config.bot.tz)
        self._kinds: dict[str, Callable[[Delivery], Awaitable[SendResult]]] = {
            "reply": self._reply, "group_robot": self.robots.send, "app_message": self._app_message,
            "remind_staff": self._remind_staff, "appchat": self._appchat, "mass_send": self._mass_send,
            "moment_task": self._moment_task, "welcome": self._welcome, "mark_tag": self._mark_tag,
        }

    def use_metrics(self, metrics: Metrics) -> None:
        if self.metrics is None:
            self.metrics = self.tokens.metrics = metrics

    def _secrets(self) -> list[str]:
        return [self.config.wecom.secret.get_secret_value(), *self.tokens.current(), *self.robots.secrets()]

    # ── the API client (WeComApi) ──

    async def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
                   params: dict[str, str] | None = None, upload: Upload | None = None) -> dict[str, Any]:
        """Call ``/cgi-bin/<path>`` with the cached token; WeComError on errcode != 0."""
        path = path.strip("/").removeprefix("cgi-bin/")
        w = self.config.wecom
        secret = w.secret.get_secret_value()
        token = await self.tokens.get(w.corp_id, secret)
        try:
            return await self._call_once(path, token, payload, method, params, upload)
        except WeComError as exc:
            if exc.errcode not in TOKEN_ERRCODES or isinstance(exc, WeComTransportError):
                raise
            log.info("WeCom refused the access token on %s (errcode %d); fetching a new one", path, exc.errcode)
        token = await self.tokens.get(w.corp_id, secret, stale=token)
        try:
            return await self._call_once(path, token, payload, method, params, upload)
        except WeComError as exc:
            if exc.errcode in TOKEN_ERRCODES:  # a fresh token refused too: try again later
                raise WeComError(exc.errcode, exc.errmsg, retryable=True, retry_after=30.0) from None
            raise

    async def _call_once(self, path: str, token: str, payload: dict[str, Any] | None, method: str,
                         params: dict[str, str] | None, upload: Upload | None = None) -> dict[str, Any]:
        url = f"{self.config.wecom.api_base}/cgi-bin/{path}"
        query = {**(params or {}), "access_token": token}
        outcome = "ok"
        try:
            return await self.transport.request(method, url, params=query,
                                                body=payload if method != "GET" else None, upload=upload)
        except WeComTransportError:
            outcome = "transport"
            raise
        except WeComError as exc:
            outcome = str(exc.errcode)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.wecom_calls.labels(path, outcome).inc()

    async def _api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.call(path, body)
        except WeComError as exc:
            raise send_error(exc, path) from None

    # ── the sender ──

    async def send(self, delivery: Delivery) -> SendResult:
        fn = self._kinds.get(delivery.kind)
        if fn is None:
            raise SendError(f"the WeCom sender has no delivery kind {delivery.kind!r}", retryable=False)
        return await fn(delivery)

    async def close(self) -> None:
        await self.transport.close()

    async def _reply(self, d: Delivery) -> SendResult:
        route = reply_route(self.config, d, self.robots.used_response_urls)
        if route == "response_url":
            return await self.robots.respond(d)
        if route == "robot":
            return await self.robots.send(d)
        if route == "appchat":
            return await self._appchat(d)
        return await self._message(d, d.to or _ids(d.chat.get("id")), d.text)

    def _content(self, d: Delivery, text: str) -> tuple[str, dict[str, str]]:
        msgtype = d.msgtype
        if msgtype not in ("text", "markdown"):
            raise SendError(f"msgtype {msgtype!r} is not supported; use text or markdown", retryable=False)
        _required(text.strip(), "a text")
        if len(text.encode()) > APP_TEXT_BYTES:
            raise SendError(f"text of {len(text.encode())} bytes is over WeCom's {APP_TEXT_BYTES}", retryable=False)
        return msgtype, {"content": text}

    async def _message(self, d: Delivery, to: list[str], text: str) -> SendResult:
        """``message/send`` from the app (agentid) to members; also departments/tags from the destination."""
        parties, tags = _ids(d.destination.get("toparty")), _ids(d.destination.get("totag"))
        if not to and not parties and not tags:
            raise SendError(f"{d.kind} needs destination.to (member user ids)", retryable=False)
        msgtype, content = self._content(d, text)
        body: dict[str, Any] = {"touser": "|".join(to), "msgtype": msgtype, "agentid": self.config.wecom.agent_id,
                                msgtype: content}
        if parties:
            body["toparty"] = "|".join(parties)
        if tags:
            body["totag"] = "|".join(tags)
        body.update(enable_duplicate_check=1, duplicate_check_interval=DUPLICATE_CHECK_S)
        data = await self._api("message/send", body)
        info: dict[str, Any] = {"via": "message/send", "msgid": data.get("msgid", "")}
        for field in ("invaliduser", "invalidparty", "invalidtag"):
            if data.get(field):
                info[field] = data[field]
        return SendResult(info)

    async def _app_message(self, d: Delivery) -> SendResult:
        return await self._message(d, d.to, d.text)

    async def _remind_staff(self, d: Delivery) -> SendResult:
        where = d.chat.get("name") or d.chat.get("id") or ""
        customers = _ids(d.destination.get("customer_names") or d.destination.get("external_userids"))
        text = self.templates.render("core/remind_staff.j2", where=str(where)[:40], customers=customers[:5],
                                     text=d.text)
        if len(text.encode()) > APP_TEXT_BYTES:
            text = d.text
        return await self._message(d, d.to, text)

    async def _appchat(self, d: Delivery) -> SendResult:
        chat_id = _required(d.chat.get("id") or d.chat_id, "destination.chat.id (an appchat chatid)")
        msgtype, content = self._content(d, d.text)
        await self._api("appchat/send", {"chatid": chat_id, "msgtype": msgtype, msgtype: content, "safe": 0,
                                         "enable_duplicate_check": 1, "duplicate_check_interval": DUPLICATE_CHECK_S})
        return SendResult({"via": "appchat/send"})

    async def _mass_send(self, d: Delivery) -> SendResult:
        dest = d.destination
        externals, chats = _ids(dest.get("external_userids")), _ids(dest.get("chat_ids"))
        sender = str(dest.get("sender") or "")
        chat_type = str(dest.get("chat_type") or ("group" if chats else "single"))
        everyone = dest.get("all") is True
        if chat_type not in ("single", "group"):
            raise SendError("destination.chat_type must be single or group", retryable=False)
        if chat_type == "group" or everyone:
            _required(sender, f"destination.sender (the staff member who sends to {chat_type} chats)")
        if not everyone and not (externals if chat_type == "single" else chats):
            what = "external_userids" if chat_type == "single" else "chat_ids"
            raise SendError(f"mass_send needs destination.{what} (or \"all\": true to reach every "
                            f"{'customer' if chat_type == 'single' else 'group'} of the sender)", retryable=False)
        body: dict[str, Any] = {"chat_type": chat_type}
        if externals:
            body["external_userid"] = externals
        if chats:
            body["chat_id_list"] = chats
        if sender:
            body["sender"] = sender
        self._texts(d, body)
        data = await self._api("externalcontact/add_msg_template", body)
        return SendResult({"via": "add_msg_template", "msgid": data.get("msgid", ""),
                           "fail_list": data.get("fail_list") or []})

    def _texts(self, d: Delivery, body: dict[str, Any], attachments: list[dict[str, Any]] | None = None) -> None:
        attachments = _template_attachments(d) if attachments is None else attachments
        if d.text.strip():
            body["text"] = {"content": d.text}
        if attachments:
            body["attachments"] = attachments
        if "text" not in body and not attachments:
            raise SendError(f"{d.kind} needs a text or attachments", retryable=False)

    async def _moment_task(self, d: Delivery) -> SendResult:
        visible = d.destination.get("visible") or {}
        if not isinstance(visible, dict):
            raise SendError("destination.visible must be an object {users, departments, tags}", retryable=False)
        users = _ids(visible.get("users")) or d.to
        departments = [int(x) for x in _ids(visible.get("departments")) if str(x).isdigit()]
        tags = _ids(visible.get("tags"))
        body: dict[str, Any] = {}
        self._texts(d, body, await self._moment_attachments(d))
        visible_range: dict[str, Any] = {}
        if users or departments:
            visible_range["sender_list"] = {"user_list": users, "department_list": departments}
        if tags:
            visible_range["external_contact_list"] = {"tag_list": tags}
        if visible_range:
            body["visible_range"] = visible_range
        data = await self._api("externalcontact/add_moment_task", body)
        jobid = data.get("jobid")
        if not isinstance(jobid, str) or not jobid:
            # accepted without a job id: sending again would post twice
            raise SendError("add_moment_task answered without a jobid", retryable=False)
        return SendResult({"jobid": jobid, "via": "add_moment_task"})

    async def _moment_attachments(self, d: Delivery) -> list[dict[str, Any]]:
        """Moments take images and link pictures only as media_ids of upload_attachment: upload URLs first."""
        out = []
        for a in _attachments(d):
            kind = a.get("msgtype")
            inner = a.get(kind) if isinstance(kind, str) else None
            if kind in ("image", "video") and isinstance(inner, dict) and inner.get("url") \
                    and not inner.get("media_id"):
                a = {"msgtype": kind, kind: {"media_id": await self.upload_attachment(inner["url"], kind)}}
            elif kind == "link" and isinstance(inner, dict):
                link = {"title": inner.get("title") or inner.get("url", ""), "url": inner.get("url", "")}
                if inner.get("media_id"):
                    link["media_id"] = inner["media_id"]
                elif inner.get("picurl"):
                    link["media_id"] = await self.upload_attachment(inner["picurl"], "image")
                a = {"msgtype": "link", "link": link}
            out.append(a)
        return out

    async def upload_attachment(self, url: str, media_type: str = "image") -> str:
        """The media_id of the file at ``url`` for a Moments post (``media/upload_attachment``), cached.

        Posts going out together that share a picture upload it once.
        """
        key = (url, media_type)
        async with self._media_locks.setdefault(key, asyncio.Lock()):
            cached = self._media.get(key)
            if cached is not None and self.clock.now() < cached[1]:
                return cached[0]
            try:
                upload = await self.transport.fetch(url, UPLOAD_MAX_BYTES)
                data = await self.call("media/upload_attachment", method="POST", upload=upload,
                                       params={"media_type": media_type, "attachment_type": "1"})
            except WeComError as exc:
                raise send_error(exc, "media/upload_attachment") from None
            media_id = data.get("media_id")
            if not isinstance(media_id, str) or not media_id:
                raise SendError("upload_attachment answered without a media_id", retryable=True)
            self._media[key] = (media_id, self.clock.now() + MEDIA_TTL)
            return media_id

    async def _welcome(self, d: Delivery) -> SendResult:
        body: dict[str, Any] = {"welcome_code": _required(d.destination.get("welcome_code"),
                                                          "destination.welcome_code")}
        self._texts(d, body)
        await self._api("externalcontact/send_welcome_msg", body)
        return SendResult({"via": "send_welcome_msg"})

    async def _mark_tag(self, d: Delivery) -> SendResult:
        dest, add, remove = d.destination, _ids(d.payload.get("add_tag")), _ids(d.payload.get("remove_tag"))
        body = {"userid": _required(dest.get("userid"), "destination.userid (the staff member of the contact)"),
                "external_userid": _required(dest.get("external_userid"), "destination.external_userid")}
        if not add and not remove:
            raise SendError("mark_tag needs payload.add_tag or payload.remove_tag", retryable=False)
        if add:
            body["add_tag"] = add
        if remove:
            body["remove_tag"] = remove
        await self._api("externalcontact/mark_tag", body)
        return SendResult({"via": "mark_tag"})
