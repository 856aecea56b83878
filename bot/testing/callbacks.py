"""Build callbacks the way WeCom sends them: signed query, encrypted body (protocol doc §1-3).

Checked against the protocol's test vectors and against wechatpy's independent
implementation in tests/test_crypto.py.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlencode

from bot.crypto import WeComCrypto, signature


class CallbackSigner:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.crypto = WeComCrypto(token, encoding_aes_key, receive_id)
        self.token = token

    def _params(self, data: str, timestamp: int | None, nonce: str | None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**9))
        return {"msg_signature": signature(self.token, ts, nonce, data), "timestamp": ts, "nonce": nonce}

    def verify_url(self, echo: str, *, timestamp: int | None = None, nonce: str | None = None) -> str:
        """The query string of a URL-verification GET."""
        echostr = self.crypto.encrypt(echo)
        params = {**self._params(echostr, timestamp, nonce), "echostr": echostr}
        return urlencode(params)

    def app_post(self, xml: str, *, corp_id: str = "", agent_id: str = "1000002", timestamp: int | None = None,
                 nonce: str | None = None) -> tuple[str, bytes]:
        """(query string, body) of a self-built-app callback POST."""
        enc = self.crypto.encrypt(xml)
        body = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><AgentID><![CDATA[{agent_id}]]></AgentID>"
                f"<Encrypt><![CDATA[{enc}]]></Encrypt></xml>").encode()
        return urlencode(self._params(enc, timestamp, nonce)), body

    def aibot_post(self, message: dict[str, object], *, timestamp: int | None = None,
                   nonce: str | None = None) -> tuple[str, bytes]:
        enc = self.crypto.encrypt(json.dumps(message, ensure_ascii=False))
        return urlencode(self._params(enc, timestamp, nonce)), json.dumps({"encrypt": enc}).encode()


def text_xml(content: str, *, sender: str = "zhangsan", msg_id: int = 1234567890123456, corp_id: str = "",
             create_time: int = 1763800000, agent_id: int = 1000002) -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>{agent_id}</AgentID></xml>")


def event_xml(event: str, create_time: int = 1763800000, **fields: str) -> str:
    parts = ["<ToUserName><![CDATA[corp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>",
             f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>",
             f"<Event><![CDATA[{event}]]></Event>"]
    for k, v in fields.items():
        if k == "MemChangeList":
            items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in v.split(","))
            parts.append(f"<MemChangeList>{items}</MemChangeList>")
        else:
            parts.append(f"<{k}><![CDATA[{v}]]></{k}>")
    return "<xml>" + "".join(parts) + "</xml>"
