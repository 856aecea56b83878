"""Deliveries that need no app secret: group robots (群机器人) and 智能机器人 ``response_url``.

:class:`GroupRobotClient` posts to ``/cgi-bin/webhook/send?key=`` (text with
``mentioned_list`` / ``mentioned_mobile_list``, or markdown with ``<@userid>``).
:func:`reply_route` decides how a ``reply`` goes out; the API sender
(bot.senders.wecom) and :class:`RobotSender` share it.

``bot.sender = "robot"`` uses :class:`RobotSender`: ``group_robot`` rows, group
replies whose chat has a robot key and replies with a ``response_url`` are sent
for real; every other delivery is printed by the console sender, as with
``bot.sender = "console"``. It needs only ``group_robot`` keys — no corp id or
app secret — for teams that post through group robots alone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from bot.config import Config
from bot.outbox import RESPONSE_URL_BYTES, TEXT_LIMITS
from bot.senders.base import Delivery, SendError, SendResult
from bot.senders.console import ConsoleSender
from bot.senders.http import Transport, send_error
from bot.wecomapi import WeComError

log = logging.getLogger("siyu.wecom")

PRODUCTION_HOST = "qyapi.weixin.qq.com"


def robot_name(d: Delivery) -> str:
    """Which robot a delivery goes to: ``destination.robot`` (a chat id or a routing name), else its chat."""
    return str(d.destination.get("robot") or d.chat.get("id") or d.chat_id or "")


def robot_message(text: str, msgtype: str, mention: list[str], mention_mobiles: list[str]) -> dict[str, Any]:
    """The webhook body: text with mention lists, or markdown with ``<@userid>`` appended."""
    if msgtype == "markdown":
        tags = " ".join(f"<@{u}>" for u in mention if u != "@all")
        return {"msgtype": "markdown", "markdown": {"content": f"{text}\n{tags}" if tags else text}}
    if msgtype != "text":
        raise SendError(f"a group robot sends text or markdown, not {msgtype!r}", retryable=False)
    body: dict[str, Any] = {"content": text}
    if mention:
        body["mentioned_list"] = mention
    if mention_mobiles:
        body["mentioned_mobile_list"] = mention_mobiles
    return {"msgtype": "text", "text": body}


def reply_route(config: Config, d: Delivery, used_response_urls: Any = ()) -> str:
    """How a ``reply`` is delivered: ``response_url``, ``robot``, ``appchat`` or ``message``.

    A 智能机器人 ``response_url`` first (once: WeCom accepts one POST per URL), then
    in a group the chat's robot when ``group_robot`` has a key for it, else
    ``appchat/send``; in a 1:1 chat ``message/send`` to the member.
    """
    url = d.destination.get("response_url")
    if url and url not in used_response_urls:
        return "response_url"
    if d.chat.get("type") == "group":
        return "robot" if config.robot_key(robot_name(d)) else "appchat"
    return "message"


class GroupRobotClient:
    """Group robot webhooks (no access token; the key is the credential)."""

    def __init__(self, config: Config, transport: Transport) -> None:
        self.config = config
        self.transport = transport
        self.url = f"{config.wecom.api_base}/cgi-bin/webhook/send"
        self._used: OrderedDict[str, None] = OrderedDict()

    def secrets(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.config.group_robot.keys.values()]
        return [*keys, self.config.group_robot.default_key.get_secret_value()]

    async def send(self, d: Delivery) -> SendResult:
        """Post ``d`` to its robot (``group_robot`` rows and group replies)."""
        name = robot_name(d)
        named_only = bool(d.destination.get("named_only"))
        key = self.config.robot_key(name, named_only=named_only)
        if not key:
            fallback = "" if named_only else " or group_robot.default_key"
            raise SendError(f"no group robot key for {name!r}: set group_robot.keys.{name or '<chat id>'}{fallback}",
                            retryable=False)
        limit = TEXT_LIMITS.get(d.msgtype, TEXT_LIMITS["text"])
        if len(d.text.encode()) > limit:
            raise SendError(f"text of {len(d.text.encode())} bytes is over the robot's {limit}", retryable=False)
        body = robot_message(d.text, d.msgtype, list(d.destination.get("mention") or []),
                             list(d.destination.get("mention_mobiles") or []))
        try:
            await self.transport.request("POST", self.url, params={"key": key}, body=body)
        except WeComError as exc:
            raise send_error(exc, "webhook/send") from None
        return SendResult({"via": "group_robot", "robot": name})

    # ── 智能机器人 response_url ──

    def response_url_allowed(self, url: str) -> bool:
        """Only WeCom's own host (or the configured api_base) gets our replies."""
        parts = urlsplit(url)
        hosts = {PRODUCTION_HOST, urlsplit(self.config.wecom.api_base).netloc}
        return parts.scheme in ("https", "http") and parts.netloc in hosts and (
            parts.scheme == "https" or parts.netloc != PRODUCTION_HOST)

    @property
    def used_response_urls(self) -> OrderedDict[str, None]:
        return self._used

    async def respond(self, d: Delivery) -> SendResult:
        """POST the reply as markdown to the 智能机器人's ``response_url`` (valid 1 h, once)."""
        url = str(d.destination["response_url"])
        if not self.response_url_allowed(url):
            raise SendError(f"response_url host {urlsplit(url).netloc!r} is not WeCom's", retryable=False)
        if len(d.text.encode()) > RESPONSE_URL_BYTES:
            raise SendError(f"text of {len(d.text.encode())} bytes is over {RESPONSE_URL_BYTES}", retryable=False)
        body = {"msgtype": "markdown", "markdown": {"content": d.text}}
        # Claimed before the POST, so a second reply to the same message takes another way meanwhile.
        self._used[url] = None
        while len(self._used) > 10_000:
            self._used.popitem(last=False)
        try:
            await self.transport.request("POST", url, body=body)
        except WeComError as exc:
            self._used.pop(url, None)
            raise send_error(exc, "response_url") from None
        return SendResult({"via": "response_url"})


class RobotSender:
    """``bot.sender = "robot"``: robots and response_url for real, everything else on the console."""

    def __init__(self, config: Config, *, console: ConsoleSender | None = None) -> None:
        self.config = config
        self.transport = Transport(config.wecom.request_timeout_s, self._secrets)
        self.robots = GroupRobotClient(config, self.transport)
        self.console = console or ConsoleSender(config.console.format)

    def _secrets(self) -> list[str]:
        return self.robots.secrets()

    async def send(self, delivery: Delivery) -> SendResult:
        if delivery.kind == "group_robot":
            return await self.robots.send(delivery)
        if delivery.kind == "reply":
            route = reply_route(self.config, delivery, self.robots.used_response_urls)
            if route == "response_url":
                return await self.robots.respond(delivery)
            if route == "robot":
                return await self.robots.send(delivery)
        return await self.console.send(delivery)

    async def close(self) -> None:
        await self.transport.close()
        await self.console.close()
