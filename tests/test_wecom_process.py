"""A real ``serve`` process with ``bot.sender = "wecom"``: signed callbacks in, replies at the fake WeCom."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from bot.testing import TEST_ENV, CallbackSigner, FakeWeCom, fake_wecom_in_thread, text_xml
from tests.test_process import Server, servers  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

CORP = TEST_ENV["SIYU_WECOM__CORP_ID"]
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)
AIBOT = CallbackSigner(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")


def post(server: Server, path: str, query: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}?{query}", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read()


def test_serve_replies_through_the_fake_wecom(db_url: str, tmp_path: Path,
                                              servers: list[Server]) -> None:  # noqa: F811
    with fake_wecom_in_thread() as fake:
        env = {k: v for k, v in TEST_ENV.items() if k.startswith(("SIYU_WECOM__", "SIYU_AIBOT__", "SIYU_BOT__"))}
        env.update(SIYU_BOT__SENDER="wecom", SIYU_BOT__ALLOW_EXAMPLE_CONTENT="true", SIYU_WECOM__API_BASE=fake.url,
                   SIYU_WECOM__MAX_CLOCK_SKEW_S="600",
                   SIYU_AIBOT__REPLY_WAIT_MS="0", SIYU_OUTBOX__BACKOFF_BASE_S="0.2", SIYU_LOG__LEVEL="INFO")
        server = Server(db_url, tmp_path, **env)
        servers.append(server)
        fake.fail("message/send", -1, errmsg="system busy")  # the first try is refused: retried, then sent

        # a staff member writes to the app 1:1 (encrypted XML callback) → message/send
        query, body = APP.app_post(text_xml("/whoami", sender="zhangsan", corp_id=CORP, msg_id=7001,
                                            create_time=int(time.time())), corp_id=CORP)
        assert post(server, "/wecom/callback", query, body) == (200, b"")
        assert post(server, "/wecom/callback", query, body) == (200, b"")  # WeCom's retry: a duplicate
        server.wait_for(lambda: fake.delivered("message/send"), within=30)

        # a 智能机器人 message answered later through its response_url
        msg = {"msgid": "aibot-7002", "aibotid": "BOT", "chattype": "single", "from": {"userid": "lisi"},
               "response_url": fake.response_url("proc-1"), "msgtype": "text", "text": {"content": "/whoami"}}
        query, body = AIBOT.aibot_post(msg)
        assert post(server, "/wecom/aibot", query, body)[0] == 200
        server.wait_for(lambda: fake.delivered("aibot/response"), within=30)
        time.sleep(1.5)  # a moment for anything that should not happen
        assert server.stop() == 0

    check(fake, server)


def check(fake: FakeWeCom, server: Server) -> None:
    (sent,) = fake.delivered("message/send")
    assert sent.body is not None and sent.body["touser"] == "zhangsan" and "zhangsan" in sent.body["text"]["content"]
    assert sent.body["agentid"] == int(TEST_ENV["SIYU_WECOM__AGENT_ID"])
    assert [r.errcode for r in fake.calls("message/send")] == [-1, 0]
    (resp,) = fake.delivered("aibot/response")
    assert resp.body is not None and "lisi" in resp.body["markdown"]["content"]
    assert len(fake.calls("gettoken")) == 1
    assert server.deliveries() == []  # nothing printed: the console sender is not in use
    log = server.err.read_text()
    assert TEST_ENV["SIYU_WECOM__SECRET"] not in log and not any(t in log for t in fake.tokens)
    assert "errcode -1" in log  # the retry was logged with its errcode
