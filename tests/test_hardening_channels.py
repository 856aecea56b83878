"""Hostile input at the edge: each callback is stored or refused on its own, ids and texts are normalised
or refused the same way on SQLite and PostgreSQL, the signature is checked before a body is parsed, and
odd numbers, shapes and nesting are a 400 with a Chinese reason — never a 500."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Config, load_config
from bot.crypto import signature
from bot.inbox import Incoming
from bot.signing import webhook_signature
from bot.storage.models import InboxRow
from bot.testing import TEST_ENV, CallbackSigner, serve, text_xml
from tests.conftest import REPO

SECRET = TEST_ENV["SIYU_WEBHOOK__SECRET"]
AIBOT = CallbackSigner(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")
CORP = TEST_ENV["SIYU_WECOM__CORP_ID"]
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)


def message(i: int | str, **over: object) -> dict[str, object]:
    return {"id": f"evt-{i}", "type": "message", "time": 1763800000,
            "chat": {"id": "g1", "type": "group", "name": "新人群"},
            "sender": {"id": "wmAlice", "name": "Alice", "staff": False}, "text": "你好", **over}


def signed_raw(body: bytes) -> dict[str, str]:
    return {"X-Siyu-Signature": webhook_signature(SECRET, body), "Content-Type": "application/json"}


def signed(payload: object) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()  # ensure_ascii: a lone surrogate travels as \ud800
    return body, signed_raw(body)


def aibot_raw(plain: str, nonce: str = "n1") -> tuple[str, bytes]:
    enc = AIBOT.crypto.encrypt(plain)
    ts = str(1763800000)
    q = urlencode({"msg_signature": signature(AIBOT.token, ts, nonce, enc), "timestamp": ts, "nonce": nonce})
    return q, json.dumps({"encrypt": enc}).encode()


async def rows(app: BotApp) -> list[InboxRow]:
    async with app.db.read() as s:
        return list((await s.execute(select(InboxRow).order_by(InboxRow.id))).scalars())


async def count(app: BotApp) -> int:
    async with app.db.read() as s:
        return (await s.execute(select(func.count()).select_from(InboxRow))).scalar_one()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


# ── #4: one bad event never fails its neighbours ──


async def test_forty_good_webhooks_and_one_lone_surrogate(bot: BotApp) -> None:
    async with serve(bot) as client:
        async def post(payload: dict[str, object]) -> int:
            body, headers = signed(payload)
            return (await client.post("/webhook", data=body, headers=headers)).status

        bad = message("bad", chat={"id": "g\ud800", "type": "group"})
        statuses = await asyncio.gather(*(post(message(i)) for i in range(20)), post(bad),
                                        *(post(message(i)) for i in range(20, 40)))
    assert statuses[20] == 400
    assert statuses[:20] + statuses[21:] == [200] * 40
    assert await count(bot) == 40


async def test_a_row_the_database_cannot_store_fails_alone(bot: BotApp) -> None:
    """Behind the edge checks too: the writer retries a failed batch without the row that broke it."""
    def item(i: int, chat: str = "chat:g1") -> Incoming:
        return Incoming(dedup_key=f"t:{i}", channel="webhook", kind="message",
                        payload={"type": "message"}, chat_key=chat)

    results = await asyncio.gather(*(bot.accept(item(i)) for i in range(10)), bot.accept(item(99, "chat:\ud800")),
                                   *(bot.accept(item(i)) for i in range(10, 20)), return_exceptions=True)
    assert results[10].__class__ is not bool  # the bad one failed …
    assert results[:10] + results[11:] == [True] * 20  # … alone
    assert await count(bot) == 20


async def test_nul_bytes_are_dropped_and_surrogates_replaced_in_texts(bot: BotApp) -> None:
    async with serve(bot) as client:
        body, headers = signed(message(1, text="a\x00b\udc80c", sender={"id": "wmA", "name": "A\x00li"}))
        r = await client.post("/webhook", data=body, headers=headers)
        assert r.status == 200, await r.text()
    (row,) = await rows(bot)
    assert row.payload["text"] == "ab\ufffdc" and row.payload["sender"]["name"] == "Ali"


@pytest.mark.parametrize("over", [
    {"chat": {"id": "g" * 129, "type": "group"}},
    {"sender": {"id": "u" * 129, "staff": False}},
    {"chat": {"id": "g\x00", "type": "group"}},
    {"sender": {"id": "wm\nA", "staff": False}},
    {"id": "e" * 181},
    {"id": "evt\n1"},
])
async def test_ids_out_of_bounds_are_400_and_nothing_is_stored(bot: BotApp, over: dict[str, object]) -> None:
    async with serve(bot) as client:
        body, headers = signed(message("x", **over))
        r = await client.post("/webhook", data=body, headers=headers)
        assert r.status == 400
        assert "error" in await r.json()
    assert await count(bot) == 0


async def test_aibot_msgid_and_chatid_limits_and_nul(bot: BotApp) -> None:
    base = {"msgid": "m1", "chattype": "group", "chatid": "wrG", "from": {"userid": "wmA"},
            "msgtype": "text", "text": {"content": "@bot hi"}}
    async with serve(bot) as client:
        for bad in ({**base, "msgid": "m" * 300}, {**base, "chatid": "c" * 200}, {**base, "chatid": "c\x00"}):
            q, body = aibot_raw(json.dumps(bad))
            assert (await client.post("/wecom/aibot?" + q, data=body)).status == 400, bad
        q, body = aibot_raw(json.dumps({**base, "text": {"content": "@bot h\x00i"}}))
        assert (await client.post("/wecom/aibot?" + q, data=body)).status == 200
    (row,) = await rows(bot)
    assert row.payload["text"] == "hi" and "\x00" not in (row.raw or "")


# ── #8: signature first; odd shapes and numbers are 400 ──


async def test_aibot_checks_the_signature_before_parsing(bot: BotApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    deep = b"[" * 30000 + b"]" * 30000
    async with serve(bot) as client:
        q, _ = aibot_raw("{}")
        r = await client.post("/wecom/aibot?" + q, data=deep)
        assert r.status in (400, 401)
        forged = q.replace("msg_signature=", "msg_signature=00")
        r = await client.post("/wecom/aibot?" + forged, data=b'{"encrypt": "abc", "x": ' + deep + b"}")
        assert r.status == 401
    no_tracebacks(caplog)
    assert await count(bot) == 0


@pytest.mark.parametrize("plain", [
    json.dumps({"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "text", "text": "hi"}),
    json.dumps({"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "mixed",
                "mixed": [1, 2]}),
    json.dumps({"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "mixed",
                "mixed": {"msg_item": [{"msgtype": "text", "text": "x"}]}}),
    json.dumps({"msgid": "m1", "chattype": "single", "from": "u", "msgtype": "text", "text": {"content": "x"}}),
    json.dumps({"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "event", "event": "x"}),
    '{"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "text", "text": {"content": "x"}, '
    '"extra": ' + "[" * 10000 + "]" * 10000 + "}",
    '{"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "text", "text": {"content": "x"}, '
    '"n": 1e400}',
    '{"msgid": "m1", "chattype": "single", "from": {"userid": "u"}, "msgtype": "text", "text": {"content": "x"}, '
    '"n": NaN}',
])
async def test_signed_aibot_shapes_are_400_not_500(bot: BotApp, plain: str, caplog: pytest.LogCaptureFixture) -> None:
    async with serve(bot) as client:
        q, body = aibot_raw(plain)
        r = await client.post("/wecom/aibot?" + q, data=body)
        assert r.status == 400, await r.text()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in await r.text())  # a Chinese reason
    no_tracebacks(caplog)
    assert await count(bot) == 0


@pytest.mark.parametrize("body", [
    json.dumps(message(1, time=10**400)).encode(),
    json.dumps(message(1, time=1e308 * 10)).encode().replace(b"Infinity", b"1e400"),
    json.dumps(message(1, time="soon")).encode(),
    json.dumps(message(1, extra=10**30)).encode(),
    json.dumps(message(1, text=7)).encode(),
    (json.dumps(message(1))[:-1] + ', "x": ' + "[" * 10000 + "]" * 10000 + "}").encode(),
    (json.dumps(message(1))[:-1] + ', "x": ' + "[" * 40 + "]" * 40 + "}").encode(),
])
async def test_signed_webhook_oddities_are_400(make_bot: Callable[..., BotApp], make_config: Callable[..., Config],
                                               body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    for skew in ("0", "300000000"):
        app = make_bot(cfg=make_config(WEBHOOK__MAX_CLOCK_SKEW_S=skew))
        async with serve(app) as client:
            r = await client.post("/webhook", data=body, headers=signed_raw(body))
            assert r.status in (400, 401), (skew, r.status, await r.text())
        assert await count(app) == 0
        await app.stop()
    no_tracebacks(caplog)


async def test_huge_callback_timestamp_is_refused(make_bot: Callable[..., BotApp],
                                                  make_config: Callable[..., Config],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    app = make_bot(cfg=make_config(WECOM__MAX_CLOCK_SKEW_S="600"))
    async with serve(app) as client:
        q, body = APP.app_post(text_xml("hi", corp_id=CORP), corp_id=CORP, timestamp=10**400)
        r = await client.post("/wecom/callback?" + q, data=body)
        assert r.status in (400, 401)
        q, body = AIBOT.aibot_post({"msgid": "m", "from": {"userid": "u"}, "msgtype": "text",
                                    "text": {"content": "x"}}, timestamp=10**400)
        assert (await client.post("/wecom/aibot?" + q, data=body)).status in (400, 401)
    no_tracebacks(caplog)
    assert await count(app) == 0


# ── #9: signed webhooks carry a time within a window by default ──


def test_the_webhook_window_is_300_s_by_default() -> None:
    cfg = load_config(REPO / "config.example.toml", {})
    assert cfg.webhook.max_clock_skew_s == 300
    from bot.config import WebhookConfig
    assert WebhookConfig().max_clock_skew_s == 300


async def test_a_webhook_from_2001_or_without_time_is_refused(make_bot: Callable[..., BotApp],
                                                              make_config: Callable[..., Config]) -> None:
    env_without = {k: v for k, v in TEST_ENV.items() if k != "SIYU_WEBHOOK__MAX_CLOCK_SKEW_S"}
    cfg = make_config()
    if "SIYU_WEBHOOK__MAX_CLOCK_SKEW_S" in TEST_ENV:
        cfg = load_config(REPO / "config.example.toml", {**env_without, "SIYU_DATABASE__URL": cfg.database.url})
    app = make_bot(cfg=cfg)
    now = int(app.clock.now().timestamp())
    async with serve(app) as client:
        for payload in (message(1, time=978307200), {k: v for k, v in message(2).items() if k != "time"}):
            body, headers = signed(payload)
            assert (await client.post("/webhook", data=body, headers=headers)).status == 401
        body, headers = signed(message(3, time=now - 100))
        assert (await client.post("/webhook", data=body, headers=headers)).status == 200
    assert await count(app) == 1
