"""The three inbound channels: verify, parse, store, answer — and refuse bad input without storing it."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

from sqlalchemy import func, select

from bot.app import BotApp
from bot.crypto import WeComCrypto
from bot.signing import webhook_signature
from bot.storage.models import InboxRow
from bot.testing import TEST_ENV, CallbackSigner, event_xml, serve, text_xml

CORP = TEST_ENV["SIYU_WECOM__CORP_ID"]
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)
AIBOT = CallbackSigner(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")
SECRET = TEST_ENV["SIYU_WEBHOOK__SECRET"]


async def inbox_rows(app: BotApp) -> list[InboxRow]:
    async with app.db.read() as s:
        return list((await s.execute(select(InboxRow).order_by(InboxRow.id))).scalars())


async def inbox_count(app: BotApp) -> int:
    async with app.db.read() as s:
        return (await s.execute(select(func.count()).select_from(InboxRow))).scalar_one()


# ── /wecom/callback ──


async def test_url_verification_echoes_the_decrypted_echostr(bot: BotApp) -> None:
    async with serve(bot) as client:
        r = await client.get("/wecom/callback?" + APP.verify_url("1616140317555161061"))
        assert r.status == 200
        assert await r.read() == b"1616140317555161061"  # plain body: no quotes, no BOM, no newline


async def test_url_verification_with_the_protocol_vector(make_bot: Callable[..., BotApp],
                                                         make_config: Callable[..., object]) -> None:
    cfg = make_config(WECOM__TOKEN="QDG6eK", WECOM__CORP_ID="wx5823bf96d3bd56c7")
    app = make_bot(cfg=cfg)
    q = ("msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr="
         "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
    async with serve(app) as client:
        r = await client.get("/wecom/callback?" + q)
        assert (r.status, await r.text()) == (200, "1616140317555161061")


async def test_post_text_is_stored_and_dispatched(bot: BotApp) -> None:
    query, body = APP.app_post(text_xml("/whoami", sender="zhangsan", msg_id=777, corp_id=CORP), corp_id=CORP)
    async with serve(bot) as client:
        r = await client.post("/wecom/callback?" + query, data=body)
        assert r.status == 200
    (row,) = await inbox_rows(bot)
    assert row.dedup_key == "wecom:msg:777"
    assert row.payload["sender"] == {"id": "zhangsan", "staff": True}
    assert row.payload["chat"] == {"id": "zhangsan", "type": "single"}
    await bot.settle()
    (delivery,) = bot.sender.deliveries  # type: ignore[attr-defined]
    assert delivery.kind == "reply" and "zhangsan" in delivery.text and delivery.to == ["zhangsan"]


async def test_wecom_retrying_three_times_is_processed_once(bot: BotApp) -> None:
    query, body = APP.app_post(text_xml("/whoami", msg_id=4242, corp_id=CORP), corp_id=CORP)
    async with serve(bot) as client:
        for _ in range(4):  # the original and WeCom's three retries
            r = await client.post("/wecom/callback?" + query, data=body)
            assert r.status == 200
    assert await inbox_count(bot) == 1
    await bot.settle()
    assert len(bot.sender.deliveries) == 1  # type: ignore[attr-defined]
    text = bot.metrics.render().decode()
    assert 'siyu_deduplicated_total{channel="wecom_app"} 3.0' in text


async def test_forged_signature_is_401_and_nothing_is_stored(bot: BotApp) -> None:
    query, body = APP.app_post(text_xml("hi", corp_id=CORP), corp_id=CORP)
    q = parse_qs(query)
    q["msg_signature"] = ["0" * 40]
    forged = "&".join(f"{k}={v[0]}" for k, v in q.items())
    other = CallbackSigner("wrongtoken", TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)
    q2, body2 = other.app_post(text_xml("hi", corp_id=CORP), corp_id=CORP)
    missing = "&".join(f"{k}={v[0]}" for k, v in q.items() if k != "msg_signature")
    async with serve(bot) as client:
        assert (await client.post("/wecom/callback?" + forged, data=body)).status == 401
        assert (await client.post("/wecom/callback?" + q2, data=body2)).status == 401
        assert (await client.post("/wecom/callback?" + missing, data=body)).status == 401
        r = await client.get("/wecom/callback?" + APP.verify_url("x").replace("msg_signature=", "msg_signature=f"))
        assert r.status == 401
        unsigned = "&".join(p for p in APP.verify_url("x").split("&") if not p.startswith("msg_signature="))
        assert (await client.get("/wecom/callback?" + unsigned)).status == 401
        aibot_q, aibot_body = AIBOT.aibot_post({"msgid": "m-unsigned", "chattype": "single", "from": {"userid": "u"},
                                                "msgtype": "text", "text": {"content": "x"}})
        aibot_unsigned = "&".join(p for p in aibot_q.split("&") if not p.startswith("msg_signature="))
        assert (await client.post("/wecom/aibot?" + aibot_unsigned, data=aibot_body)).status == 401
    assert await inbox_count(bot) == 0


async def test_stale_timestamp_is_refused_when_the_window_is_set(make_bot: Callable[..., BotApp],
                                                                 make_config: Callable[..., object]) -> None:
    app = make_bot(cfg=make_config(WECOM__MAX_CLOCK_SKEW_S="600"))
    now = int(app.clock.now().timestamp())
    async with serve(app) as client:
        q, body = APP.app_post(text_xml("hi", corp_id=CORP), corp_id=CORP, timestamp=now - 601)
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 401
        q, body = APP.app_post(text_xml("hi", msg_id=2, corp_id=CORP), corp_id=CORP, timestamp=now - 30)
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    assert await inbox_count(app) == 1


async def test_malformed_and_oversized_bodies(bot: BotApp) -> None:
    q, _ = APP.app_post(text_xml("hi", corp_id=CORP), corp_id=CORP)
    async with serve(bot) as client:
        assert (await client.post("/wecom/callback?" + q, data=b"<xml><Encrypt>")).status == 400
        assert (await client.post("/wecom/callback?" + q, data=b"not xml at all")).status == 400
        assert (await client.post("/wecom/callback?" + q, data=b"<xml></xml>")).status == 400
        bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                b"<xml><Encrypt>&b;</Encrypt></xml>")
        assert (await client.post("/wecom/callback?" + q, data=bomb)).status == 400
        big = b"<xml><Encrypt>" + b"A" * (70 * 1024) + b"</Encrypt></xml>"
        assert (await client.post("/wecom/callback?" + q, data=big)).status == 413
        # a valid signature over garbage ciphertext: verified, then refused as undecryptable
        enc = "A" * 64
        from bot.crypto import signature

        sig = signature(TEST_ENV["SIYU_WECOM__TOKEN"], "1", "2", enc)
        body = f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>".encode()
        r = await client.post(f"/wecom/callback?msg_signature={sig}&timestamp=1&nonce=2", data=body)
        assert r.status == 400
    assert await inbox_count(bot) == 0


async def test_every_external_contact_and_chat_event_parses(bot: BotApp) -> None:
    events = [
        event_xml("enter_agent", FromUserName="zhangsan", AgentID="1000002"),
        event_xml("change_external_contact", ChangeType="add_external_contact", UserID="staff01",
                  ExternalUserID="wmCustomer1", State="live-qr", WelcomeCode="WC1"),
        event_xml("change_external_contact", ChangeType="add_half_external_contact", UserID="staff01",
                  ExternalUserID="wmCustomer2", State="", WelcomeCode="WC2"),
        event_xml("change_external_contact", ChangeType="edit_external_contact", UserID="staff01",
                  ExternalUserID="wmCustomer1"),
        event_xml("change_external_contact", ChangeType="del_external_contact", UserID="staff01",
                  ExternalUserID="wmCustomer1", Source="DELETE_BY_TRANSFER"),
        event_xml("change_external_contact", ChangeType="del_follow_user", UserID="staff01",
                  ExternalUserID="wmCustomer2"),
        event_xml("change_external_contact", ChangeType="transfer_fail", UserID="staff01",
                  ExternalUserID="wmCustomer3", FailReason="customer_refused"),
        event_xml("change_external_chat", ChatId="wrChat1", ChangeType="create"),
        event_xml("change_external_chat", ChatId="wrChat1", ChangeType="update", UpdateDetail="add_member",
                  JoinScene="0", MemChangeCnt="2", MemChangeList="wmA,wmB"),
        event_xml("change_external_chat", ChatId="wrChat1", ChangeType="update", UpdateDetail="del_member",
                  QuitScene="1", MemChangeCnt="1", MemChangeList="wmA"),
        event_xml("change_external_chat", ChatId="wrChat1", ChangeType="update", UpdateDetail="change_name"),
        event_xml("change_external_chat", ChatId="wrChat1", ChangeType="dismiss"),
        event_xml("msgaudit_notify", AgentID="1000002"),
    ]
    async with serve(bot) as client:
        for xml in events:
            q, body = APP.app_post(xml, corp_id=CORP)
            assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    rows = await inbox_rows(bot)
    assert [r.kind for r in rows] == [
        "entered", "contact_added", "contact_added", "contact_changed", "contact_changed", "contact_changed",
        "contact_changed", "group_created", "member_joined", "member_left", "group_updated", "group_dismissed",
        "archive_notify"]
    added = rows[1].payload
    assert added["member"]["id"] == "wmCustomer1" and added["state"] == "live-qr" and added["welcome_code"] == "WC1"
    assert rows[2].payload["half"] is True
    assert [r.payload["change"] for r in rows[3:7]] == [
        "edited", "removed_by_staff", "removed_by_customer", "transfer_failed"]
    assert rows[4].payload["detail"] == "DELETE_BY_TRANSFER"
    joined = rows[8].payload
    assert [m["id"] for m in joined["members"]] == ["wmA", "wmB"] and joined["scene"] == "invite"
    assert rows[9].payload["scene"] == "removed"
    from bot.events import MemberJoined, events_from_payload

    evs = events_from_payload(joined, rows[8].dedup_key, rows[8].received_at)
    assert all(isinstance(e, MemberJoined) for e in evs) and len({e.key for e in evs}) == 2
    await bot.settle()
    async with bot.db.read() as s:
        statuses = (await s.execute(select(InboxRow.status))).scalars().all()
    assert set(statuses) == {"done"}


async def test_unhandled_message_types_are_acknowledged_not_stored(bot: BotApp) -> None:
    image = ("<xml><ToUserName>c</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>"
             "<MsgType>image</MsgType><PicUrl>http://x</PicUrl><MsgId>5</MsgId></xml>")
    async with serve(bot) as client:
        q, body = APP.app_post(image, corp_id=CORP)
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    assert await inbox_count(bot) == 0


# ── /wecom/aibot ──


async def test_aibot_verification_and_group_message(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(run_workers=True)
    msg = {"msgid": "m-1", "aibotid": "AIBOTID", "chatid": "wrGroup", "chattype": "group",
           "from": {"userid": "zhangsan"}, "response_url": "https://example.invalid/resp",
           "msgtype": "text", "text": {"content": "@RobotA /whoami"}}
    async with serve(app) as client:
        r = await client.get("/wecom/aibot?" + AIBOT.verify_url("hello-aibot"))
        assert (r.status, await r.text()) == (200, "hello-aibot")
        q, body = AIBOT.aibot_post(msg, nonce="n123")
        r = await client.post("/wecom/aibot?" + q, data=body)
        assert r.status == 200
        reply = await r.json()
        # the passive reply: encrypted JSON, signed, with the URL's nonce
        assert reply["nonce"] == "n123"
        crypto = WeComCrypto(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")
        plain = json.loads(crypto.verify_and_decrypt(str(reply["timestamp"]), "n123", reply["encrypt"],
                                                     reply["msgsignature"]))
        assert plain["msgtype"] == "stream" and plain["stream"]["finish"] is True
        assert "zhangsan" in plain["stream"]["content"]
        # WeCom repeats the callback: answered, but not processed or replied again
        r2 = await client.post("/wecom/aibot?" + q, data=body)
        assert r2.status == 200 and await r2.text() == ""
    rows = await inbox_rows(app)
    assert len(rows) == 1 and rows[0].payload["text"] == "/whoami"
    assert rows[0].payload["reply"]["response_url"] == "https://example.invalid/resp"
    # the reply went out passively, so the outbox will not send it again
    assert app.sender.deliveries == []  # type: ignore[attr-defined]


async def test_aibot_refuses_forgery_and_garbage(bot: BotApp) -> None:
    msg = {"msgid": "m-2", "chattype": "single", "from": {"userid": "u"}, "msgtype": "text", "text": {"content": "x"}}
    async with serve(bot) as client:
        q, body = AIBOT.aibot_post(msg)
        bad = q.replace("msg_signature=", "msg_signature=00")
        assert (await client.post("/wecom/aibot?" + bad, data=body)).status == 401
        assert (await client.post("/wecom/aibot?" + q, data=b"{not json")).status == 400
        assert (await client.post("/wecom/aibot?" + q, data=b'{"other": 1}')).status == 400
        q2, body2 = AIBOT.aibot_post({"chattype": "single"})  # no msgid
        assert (await client.post("/wecom/aibot?" + q2, data=body2)).status == 400
    assert await inbox_count(bot) == 0


# ── /webhook ──


def signed(payload: object, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return body, {"X-Siyu-Signature": webhook_signature(secret, body), "Content-Type": "application/json"}


MESSAGE = {"id": "evt-1", "type": "message", "time": 1763800000,
           "chat": {"id": "g1", "type": "group", "name": "新人群"},
           "sender": {"id": "wmAlice", "name": "Alice", "staff": False}, "text": "/whoami", "mentions_bot": True}


async def test_webhook_accepts_signed_events_once(bot: BotApp) -> None:
    body, headers = signed(MESSAGE)
    async with serve(bot) as client:
        r = await client.post("/webhook", data=body, headers=headers)
        assert (r.status, await r.json()) == (200, {"accepted": True, "duplicate": False})
        r = await client.post("/webhook", data=body, headers=headers)
        assert (r.status, await r.json()) == (200, {"accepted": True, "duplicate": True})
    await bot.settle()
    (d,) = bot.sender.deliveries  # type: ignore[attr-defined]
    assert d.chat_id == "g1" and d.to == ["wmAlice"] and "Alice" in d.text


async def test_webhook_refuses_bad_input_and_stores_nothing(bot: BotApp) -> None:
    body, headers = signed(MESSAGE)
    async with serve(bot) as client:
        assert (await client.post("/webhook", data=body)).status == 401
        assert (await client.post("/webhook", data=body,
                                  headers={"X-Siyu-Signature": webhook_signature("other", body)})).status == 401
        tampered = body.replace(b"whoami", b"help!!")
        assert (await client.post("/webhook", data=tampered, headers=headers)).status == 401
        raw = b"{broken"
        assert (await client.post("/webhook", data=raw,
                                  headers={"X-Siyu-Signature": webhook_signature(SECRET, raw)})).status == 400
        for bad in ({**MESSAGE, "id": ""}, {**MESSAGE, "type": "nope"}, {**MESSAGE, "chat": {"type": "group"}},
                    {**MESSAGE, "text": 5}, {**MESSAGE, "chat": {"id": "g", "type": "channel"}},
                    {"id": "e2", "type": "member_joined", "chat": {"id": "g1"}}, [1, 2]):
            b, h = signed(bad)
            r = await client.post("/webhook", data=b, headers=h)
            assert r.status == 400, bad
            assert "error" in await r.json()
        big, h = signed({**MESSAGE, "text": "x" * 70_000})
        assert (await client.post("/webhook", data=big, headers=h)).status == 413
    assert await inbox_count(bot) == 0


async def test_generic_and_wecom_events_give_the_same_typed_event(bot: BotApp) -> None:
    from bot.events import events_from_payload

    member_event = {"id": "evt-j", "type": "member_joined", "chat": {"id": "wrChat1", "type": "group"},
                    "member": {"id": "wmA", "staff": False}, "inviter": None, "scene": "invite",
                    "time": 1763800000}
    body, headers = signed(member_event)
    xml = event_xml("change_external_chat", ChatId="wrChat1", ChangeType="update", UpdateDetail="add_member",
                    JoinScene="0", MemChangeList="wmA")
    q, wbody = APP.app_post(xml, corp_id=CORP)
    async with serve(bot) as client:
        assert (await client.post("/webhook", data=body, headers=headers)).status == 200
        assert (await client.post("/wecom/callback?" + q, data=wbody)).status == 200
    a, b = await inbox_rows(bot)
    (ea,) = events_from_payload(a.payload, "k", a.received_at)
    (eb,) = events_from_payload(b.payload, "k", b.received_at)
    assert (type(ea), ea.chat, ea.member, ea.inviter, ea.scene, ea.time) == \
           (type(eb), eb.chat, eb.member, eb.inviter, eb.scene, eb.time)


async def test_health_and_metrics(bot: BotApp) -> None:
    body, headers = signed(MESSAGE)
    async with serve(bot) as client:
        await client.post("/webhook", data=body, headers=headers)
        await client.post("/webhook", data=b"{}", headers={"X-Siyu-Signature": "sha256=00"})
        r = await client.get("/healthz")
        assert r.status == 200 and (await r.json())["status"] == "ok"
        text = await (await client.get("/metrics")).text()
    assert 'siyu_received_total{channel="webhook"} 1.0' in text
    assert 'siyu_rejected_total{channel="webhook",reason="signature"} 1.0' in text
    assert 'siyu_outbox_rows{state="pending"}' in text
    assert "siyu_ack_latency_seconds_bucket" in text
    await bot.settle()  # processed and sent: the metric names all appear
    async with serve(bot) as client:
        text = await (await client.get("/metrics")).text()
    assert 'siyu_processed_total{status="done"} 1.0' in text
    assert 'siyu_outbox_rows{state="sent"} 1.0' in text
    assert 'siyu_send_latency_seconds_count{kind="reply"} 1.0' in text
    assert 'siyu_sent_total{kind="reply",outcome="sent"} 1.0' in text
    assert "# TYPE siyu_handler_errors_total counter" in text and "# TYPE siyu_deduplicated_total counter" in text


async def test_aibot_reply_goes_out_later_when_the_passive_window_passes(
        make_bot: Callable[..., BotApp], make_config: Callable[..., object]) -> None:
    app = make_bot(cfg=make_config(AIBOT__REPLY_WAIT_MS="0"))
    msg = {"msgid": "m-late", "aibotid": "AIBOTID", "chattype": "single", "from": {"userid": "lisi"},
           "response_url": "https://example.invalid/resp-late", "msgtype": "text", "text": {"content": "/whoami"}}
    async with serve(app) as client:
        q, body = AIBOT.aibot_post(msg)
        r = await client.post("/wecom/aibot?" + q, data=body)
        assert r.status == 200 and await r.text() == ""  # no passive answer
    await app.settle()
    assert app.sender.deliveries == []  # type: ignore[attr-defined]  # held back for the passive window
    app.clock.advance(1)  # type: ignore[attr-defined]
    await app.settle()
    (d,) = app.sender.deliveries  # type: ignore[attr-defined]
    assert d.kind == "reply" and d.destination["response_url"] == "https://example.invalid/resp-late"
    assert "lisi" in d.text


async def test_aibot_enter_chat_event_is_stored(bot: BotApp) -> None:
    msg = {"msgid": "e-1", "aibotid": "AIBOTID", "chattype": "single", "from": {"userid": "wangwu"},
           "msgtype": "event", "event": {"eventtype": "enter_chat"}}
    async with serve(bot) as client:
        q, body = AIBOT.aibot_post(msg)
        assert (await client.post("/wecom/aibot?" + q, data=body)).status == 200
    (row,) = await inbox_rows(bot)
    assert row.kind == "entered" and row.payload["user"]["id"] == "wangwu"


def long_answers(app: BotApp) -> object:
    from bot.context import Context
    from bot.events import MessageEvent
    from bot.routing import Router, text_matches

    router = Router("long-answers")

    @router.message(text_matches("^长回复$"), priority=5, block=True)
    async def answer(event: MessageEvent, ctx: Context) -> None:
        await ctx.reply("甲" * 5000)  # 15,000 bytes each: two do not fit one passive answer
        await ctx.reply("乙" * 5000)

    return router


async def test_a_passive_aibot_answer_takes_only_what_fits(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot(run_workers=True, features=[long_answers])
    msg = {"msgid": "m-long", "aibotid": "AIBOTID", "chattype": "single", "from": {"userid": "lisi"},
           "response_url": "https://example.invalid/resp-long", "msgtype": "text", "text": {"content": "长回复"}}
    async with serve(app) as client:
        q, body = AIBOT.aibot_post(msg, nonce="n-long")
        reply = await (await client.post("/wecom/aibot?" + q, data=body)).json()
    crypto = WeComCrypto(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")
    plain = json.loads(crypto.verify_and_decrypt(str(reply["timestamp"]), "n-long", reply["encrypt"],
                                                 reply["msgsignature"]))
    assert plain["stream"]["content"] == "甲" * 5000
    app.clock.advance(5)  # type: ignore[attr-defined]
    await app.settle()
    (later,) = app.sender.deliveries  # type: ignore[attr-defined]
    assert later.text == "乙" * 5000 and later.destination["response_url"] == "https://example.invalid/resp-long"


async def test_serve_freezes_what_start_up_loaded_after_the_bot_started(make_bot: Callable[..., BotApp]) -> None:
    import gc

    from aiohttp.test_utils import TestClient, TestServer

    from bot.cli import serving_app
    from bot.compliance import MODERATION

    app = make_bot()
    client = TestClient(TestServer(serving_app(app)))
    await client.start_server()  # the bot's start, then the freeze
    try:
        assert app.started
        loaded_at_start = app.get(MODERATION).matcher  # built by the lexicon load of start-up
        assert gc.get_freeze_count() > 0
        assert not any(o is loaded_at_start for o in gc.get_objects())  # frozen: out of the collector's walks
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()
        gc.unfreeze()
