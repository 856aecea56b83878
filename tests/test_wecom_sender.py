"""The WeCom API sender against the fake WeCom: every delivery kind, tokens, retries, dead rows, limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config, ConfigError
from bot.context import Context
from bot.events import Actor, Chat, MessageEvent
from bot.routing import Router, text_matches
from bot.senders.robot import RobotSender
from bot.senders.wecom import WeComSender
from bot.storage.models import OutboxRow
from bot.testing import FakeWeCom
from bot.testing.env import AGENT_ID, ROBOT_KEYS, SECRET
from bot.wecomapi import WECOM_API, WeComError

LINK = {"msgtype": "link", "link": {"title": "本周好茶", "url": "https://example.com/tea"}}


def every_kind(app: BotApp) -> Router:
    """A feature that sends one delivery of every kind when told "全部投递"."""
    router = Router("every-kind")

    @router.message(text_matches("^全部投递$"), priority=5, block=True)
    async def send_all(event: MessageEvent, ctx: Context) -> None:
        await ctx.reply("收到，马上安排", mention=True)
        await ctx.send("group_robot", text="群机器人：今晚八点直播", chat={"id": "wrGroup1", "type": "group"},
                       destination={"mention": ["wmAlice"]})
        await ctx.send("group_robot", text="**合规提醒**", msgtype="markdown", destination={"robot": "compliance",
                                                                                         "mention": ["reviewer1"]})
        await ctx.send("app_message", text="应用消息：新成员入群", to=["staff01", "staff02"])
        await ctx.send("remind_staff", text="各位早上好，今天打卡主题是「第一泡」", to=["staff01"],
                       chat={"id": "wrGroup9", "type": "group", "name": "禾屿茶友会"})
        await ctx.send("appchat", text="群聊消息：周报已出", chat={"id": "wrAppChat1", "type": "group"})
        await ctx.send("mass_send", text="群发：新品上架", destination={"sender": "staff01",
                                                                   "external_userids": ["wmAlice", "wmBob"]})
        await ctx.send("mass_send", text="群发到群：周末活动", destination={"sender": "staff01",
                                                                     "chat_ids": ["wrGroup1", "wrGroup2"]})
        await ctx.send("moment_task", text="今日朋友圈：春茶开采", to=["staff01"],
                       destination={"visible": {"tags": ["etVIP"]}}, payload={"attachments": [LINK]})
        await ctx.send("welcome", text="欢迎加入禾屿茶！", destination={"welcome_code": "WELCOME-1"},
                       payload={"attachments": [LINK]})
        await ctx.send("mark_tag", text="new → vip", destination={"userid": "staff01", "external_userid": "wmAlice"},
                       payload={"add_tag": ["etVIP"], "remove_tag": ["etNEW"]})

    return router


@pytest.fixture
def wecom_bot(make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config],
              clock: FakeClock) -> Callable[..., BotApp]:
    def build(features: list[Any] | None = None, **overrides: str) -> BotApp:
        cfg = wecom_config(**overrides)
        return make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock), features=features)

    return build


def message(app: BotApp, text: str, *, chat: Chat | None = None, sender: str = "wmAlice", key: str = "evt-1",
            channel: str = "test", reply: dict[str, Any] | None = None) -> MessageEvent:
    return MessageEvent(key=key, time=app.clock.now(), channel=channel,
                        chat=chat or Chat(id="wrGroup1", type="group", name="新人群"),
                        sender=Actor(id=sender, name=sender), text=text, mentions_bot=True, reply=reply or {})


async def rows(app: BotApp) -> list[OutboxRow]:
    async with app.db.read() as s:
        return list((await s.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def enqueue(app: BotApp, key: str, kind: str, **kw: Any) -> None:
    async with app.db.session() as s:
        await app.outbox.enqueue(s, key=key, kind=kind, **kw)


async def drain_until_settled(app: BotApp, clock: FakeClock, rounds: int = 12, step: float = 400) -> None:
    for _ in range(rounds):
        await app.outbox_pump.drain()
        clock.advance(step)


def bodies(fake: FakeWeCom, path: str) -> list[dict[str, Any]]:
    return [r.body or {} for r in fake.delivered(path)]


# ── every kind, end to end ──


async def test_every_kind_goes_out_in_the_documented_shape(wecom_bot: Callable[..., BotApp],
                                                           fake_wecom: FakeWeCom) -> None:
    app = wecom_bot(features=[every_kind])
    await app.start()
    await app.accept_event(message(app, "全部投递"))
    await app.settle()
    assert {r.status for r in await rows(app)} == {"sent"}, [(r.kind, r.last_error) for r in await rows(app)]

    robot = fake_wecom.delivered("webhook/send")
    by_key = {r.query["key"]: r.body for r in robot}
    # the reply in wrGroup1 and the group_robot row both go to wrGroup1's robot, mentioning Alice
    group1 = [r.body for r in robot if r.query["key"] == ROBOT_KEYS["wrGroup1"]]
    assert {"msgtype": "text", "text": {"content": "收到，马上安排", "mentioned_list": ["wmAlice"]}} in group1
    assert {"msgtype": "text", "text": {"content": "群机器人：今晚八点直播", "mentioned_list": ["wmAlice"]}} in group1
    assert by_key[ROBOT_KEYS["compliance"]] == {"msgtype": "markdown",
                                                 "markdown": {"content": "**合规提醒**\n<@reviewer1>"}}

    sent = bodies(fake_wecom, "message/send")
    app_msgs = [b for b in sent if b["text"]["content"] == "应用消息：新成员入群"]
    assert sorted(b["touser"] for b in app_msgs) == ["staff01", "staff02"]  # one row and one call per member
    assert all(b["agentid"] == AGENT_ID and b["msgtype"] == "text" for b in app_msgs)
    (remind,) = [b for b in sent if "打卡主题" in b["text"]["content"]]
    assert remind["touser"] == "staff01"
    lines = remind["text"]["content"].splitlines()
    assert "禾屿茶友会" in lines[0] and "转发" in lines[0]  # where to forward it …
    assert lines[-1] == "各位早上好，今天打卡主题是「第一泡」"  # … and the text alone on its own lines

    assert bodies(fake_wecom, "appchat/send") == [
        {"chatid": "wrAppChat1", "msgtype": "text", "text": {"content": "群聊消息：周报已出"}, "safe": 0,
         "enable_duplicate_check": 1, "duplicate_check_interval": 600}]

    mass = bodies(fake_wecom, "externalcontact/add_msg_template")
    assert {"chat_type": "single", "external_userid": ["wmAlice", "wmBob"], "sender": "staff01",
            "text": {"content": "群发：新品上架"}} in mass
    assert {"chat_type": "group", "chat_id_list": ["wrGroup1", "wrGroup2"], "sender": "staff01",
            "text": {"content": "群发到群：周末活动"}} in mass

    assert bodies(fake_wecom, "externalcontact/add_moment_task") == [
        {"text": {"content": "今日朋友圈：春茶开采"}, "attachments": [LINK],
         "visible_range": {"sender_list": {"user_list": ["staff01"], "department_list": []},
                           "external_contact_list": {"tag_list": ["etVIP"]}}}]
    assert bodies(fake_wecom, "externalcontact/send_welcome_msg") == [
        {"welcome_code": "WELCOME-1", "text": {"content": "欢迎加入禾屿茶！"}, "attachments": [LINK]}]
    assert bodies(fake_wecom, "externalcontact/mark_tag") == [
        {"userid": "staff01", "external_userid": "wmAlice", "add_tag": ["etVIP"], "remove_tag": ["etNEW"]}]
    assert fake_wecom.contact_tags[("staff01", "wmAlice")] == {"etVIP"}
    # one token for all of it; robots need none
    assert len(fake_wecom.calls("gettoken")) == 1
    assert all("access_token" not in r.query for r in robot)
    results = {r.kind: r.result for r in await rows(app)}
    assert results["mass_send"]["msgid"].startswith("msgTpl")
    assert results["moment_task"]["jobid"].startswith("job")


async def test_replies_take_the_channel_the_chat_has(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                     clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    url = fake_wecom.response_url("code-1")
    events = [
        message(app, "/whoami", key="in-robot-group"),                                         # robot key
        message(app, "/whoami", key="in-app-group", chat=Chat(id="wrOther", type="group")),      # appchat/send
        message(app, "/whoami", key="one-to-one", sender="zhangsan",
                chat=Chat(id="zhangsan", type="single")),                                        # message/send
        message(app, "/whoami", key="aibot", sender="lisi", chat=Chat(id="lisi", type="single"), channel="aibot",
                reply={"response_url": url, "aibotid": "BOT1"}),                                 # response_url
    ]
    for ev in events:
        await app.accept_event(ev)
    await app.settle()
    clock.advance(3)  # the 智能机器人 reply waits out its passive window first
    await app.settle()
    assert {r.status for r in await rows(app)} == {"sent"}
    assert ROBOT_KEYS["wrGroup1"] in [r.query["key"] for r in fake_wecom.delivered("webhook/send")]
    assert [b["chatid"] for b in bodies(fake_wecom, "appchat/send")] == ["wrOther"]
    assert [b["touser"] for b in bodies(fake_wecom, "message/send")] == ["zhangsan"]
    (resp,) = fake_wecom.delivered("aibot/response")
    assert resp.query["response_code"] == "code-1" and resp.body is not None
    assert resp.body["msgtype"] == "markdown" and "lisi" in resp.body["markdown"]["content"]


async def test_a_response_url_is_used_once_then_the_app_takes_over(wecom_bot: Callable[..., BotApp],
                                                                   fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    url = fake_wecom.response_url("code-2")
    dest = {"response_url": url}
    for n in (1, 2):
        await enqueue(app, f"r{n}", "reply", text=f"第{n}条", chat={"id": "lisi", "type": "single"}, to=["lisi"],
                      destination=dest)
    await app.outbox_pump.drain()
    assert {r.status for r in await rows(app)} == {"sent"}
    assert [r.body["markdown"]["content"] for r in fake_wecom.delivered("aibot/response")] == ["第1条"]  # type: ignore[index]
    assert [b["text"]["content"] for b in bodies(fake_wecom, "message/send")] == ["第2条"]


async def test_a_response_url_elsewhere_is_refused(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "r", "reply", text="hi", chat={"id": "lisi", "type": "single"}, to=["lisi"],
                  destination={"response_url": "https://attacker.example/collect"})
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "dead" and "attacker.example" in (row.last_error or "")
    assert fake_wecom.requests == []


# ── the access token ──


async def test_one_token_for_many_and_for_concurrent_sends(wecom_bot: Callable[..., BotApp],
                                                           fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "many", "app_message", text="提醒", to=[f"staff{i:02d}" for i in range(40)])
    await app.outbox_pump.drain()  # 8 deliveries in flight at a time, all wanting a token at once
    assert len(fake_wecom.delivered("message/send")) == 40
    assert len(fake_wecom.calls("gettoken")) == 1
    # a fresh client called 20 times at once still fetches one token
    api = WeComSender(app.config, clock=clock)
    try:
        await asyncio.gather(*(api.call("externalcontact/groupchat/list", {"limit": 10}) for _ in range(20)))
    finally:
        await api.close()
    assert len(fake_wecom.calls("gettoken")) == 2
    assert all(r.ok for r in fake_wecom.requests)


async def test_the_token_is_renewed_before_it_expires(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                      clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    api = app.get(WECOM_API)
    await api.call("externalcontact/groupchat/list", {"limit": 10})
    clock.advance(6000)
    await api.call("externalcontact/groupchat/list", {"limit": 10})
    assert len(fake_wecom.calls("gettoken")) == 1  # still fresh
    clock.advance(1000)  # 7000 s of 7200: renewed ahead of time, so WeCom never sees an expired one
    await api.call("externalcontact/groupchat/list", {"limit": 10})
    assert len(fake_wecom.calls("gettoken")) == 2
    assert [r.errcode for r in fake_wecom.calls("externalcontact/groupchat/list")] == [0, 0, 0]


@pytest.mark.parametrize("how", ["expired", "40014"])
async def test_a_refused_token_is_refreshed_once_and_the_call_repeated(
        how: str, wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "a", "app_message", text="第一条", to=["staff01"])
    await app.outbox_pump.drain()
    if how == "expired":
        fake_wecom.expire_tokens()  # WeCom expired it early → 42001
    else:
        fake_wecom.fail("message/send", 40014, errmsg="invalid access_token")
    await enqueue(app, "b", "app_message", text="第二条", to=["staff01"])
    await app.outbox_pump.drain()
    assert [(r.path, r.errcode) for r in fake_wecom.requests] == [
        ("gettoken", 0), ("message/send", 0),
        ("message/send", 42001 if how == "expired" else 40014), ("gettoken", 0), ("message/send", 0)]
    second = (await rows(app))[1]
    assert second.status == "sent" and second.attempts == 1


async def test_a_token_refused_twice_is_retried_later_not_dropped(wecom_bot: Callable[..., BotApp],
                                                                  fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    fake_wecom.fail("message/send", 42001, times=2)
    await enqueue(app, "a", "app_message", text="hi", to=["staff01"])
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "pending" and "42001" in (row.last_error or "")
    assert len(fake_wecom.calls("gettoken")) == 2  # refreshed once, not in a loop
    clock.advance(60)
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "sent" and len(fake_wecom.delivered("message/send")) == 1


# ── retries, dead rows ──


async def _wait_answered(fake: FakeWeCom, path: str, n: int, within: float = 30.0) -> None:
    """Real time: until the fake has finished answering ``n`` calls of ``path`` (delayed ones too)."""
    deadline = time.monotonic() + within
    while sum(r.errcode is not None or r.status != 200 for r in fake.calls(path)) < n:
        assert time.monotonic() < deadline, "the fake did not answer in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("failure", ["-1", "45009", "45033", "http502", "timeout-late", "timeout-lost"])
async def test_transient_failures_are_retried_with_backoff_and_sent_once(
        failure: str, wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    app = wecom_bot(WECOM__REQUEST_TIMEOUT_S="1")
    await app.start()
    path = "message/send"
    if failure.startswith("timeout"):
        # no answer within the timeout; "late": it arrived anyway, "lost": it did not
        fake_wecom.delay(path, 2.5, times=2, drop=failure == "timeout-lost")
    elif failure == "http502":
        fake_wecom.http_error(path, 502, times=2)
    else:
        fake_wecom.fail(path, int(failure), times=2, errmsg="busy")
    await enqueue(app, "k", "app_message", text="请查收今天的打卡统计", to=["staff01"])
    started = clock.now()
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "pending" and row.attempts == 1
    wait = (row.next_attempt_at.replace(tzinfo=started.tzinfo) - started).total_seconds()
    assert wait >= (60 if failure == "45009" else 1.6)  # backoff 2 s ±20 %; a frequency block lasts a minute
    for attempt in (2, 3):
        await _wait_answered(fake_wecom, path, attempt - 1)
        (row,) = await rows(app)
        clock.set(row.next_attempt_at.replace(tzinfo=started.tzinfo))  # when the backoff says
        await app.outbox_pump.drain()
    await _wait_answered(fake_wecom, path, 3)
    (row,) = await rows(app)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    delivered = fake_wecom.delivered(path)
    assert len(delivered) == 1 and delivered[0].body["text"]["content"] == "请查收今天的打卡统计"  # type: ignore[index]
    retries = fake_wecom.calls(path)[1:]
    assert all(r.body and r.body.get("enable_duplicate_check") == 1 for r in retries)
    if failure == "timeout-late":  # the first attempt arrived; the retries were recognised as copies
        assert [r.effect for r in fake_wecom.calls(path)] == ["delivered", "duplicate", "duplicate"]


@pytest.mark.parametrize(("errcode", "where", "kind"), [
    (40001, "gettoken", "app_message"),
    (48002, "externalcontact/add_msg_template", "mass_send"),
    (60020, "message/send", "app_message"),
    (81013, "message/send", "app_message"),
    (41051, "externalcontact/send_welcome_msg", "welcome"),
    (93000, "webhook/send", "group_robot"),
])
async def test_permanent_errors_are_dead_after_one_attempt(
        errcode: int, where: str, kind: str, wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
        clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    fake_wecom.fail(where, errcode, errmsg=f"wecom says {errcode}")
    dest: dict[str, Any] = {"mass_send": {"sender": "staff01", "external_userids": ["wmAlice"]},
                            "welcome": {"welcome_code": "W1"}}.get(kind, {})
    await enqueue(app, "k", kind, text="你好", to=["staff01"] if kind == "app_message" else [],
                  chat={"id": "wrGroup1", "type": "group"} if kind == "group_robot" else None, destination=dest)
    await drain_until_settled(app, clock, rounds=3)
    (row,) = await rows(app)
    assert row.status == "dead" and row.attempts == 1
    assert f"errcode {errcode}" in (row.last_error or "") and f"wecom says {errcode}" in (row.last_error or "")
    assert len(fake_wecom.calls(where)) == 1


async def test_all_recipients_invalid_is_the_real_81013(wecom_bot: Callable[..., BotApp],
                                                        fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "k", "app_message", text="hi", to=["wmNotAMember"])  # external ids cannot get app messages
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    assert row.status == "dead" and "errcode 81013" in (row.last_error or "") and "all recipients" in row.last_error


async def test_a_used_welcome_code_is_not_retried(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                  clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    for key in ("first", "again"):
        await enqueue(app, key, "welcome", text="欢迎～", destination={"welcome_code": "WC-1"},
                      expires_at=clock.now() + timedelta(seconds=20))
    await drain_until_settled(app, clock, rounds=3, step=5)
    first, again = await rows(app)
    assert first.status == "sent"
    assert again.status == "dead" and again.attempts == 1 and "41051" in (again.last_error or "")
    assert len(fake_wecom.calls("externalcontact/send_welcome_msg")) == 2


async def test_repeated_failures_die_after_max_attempts(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                        clock: FakeClock) -> None:
    app = wecom_bot(OUTBOX__MAX_ATTEMPTS="4")
    await app.start()
    fake_wecom.fail("appchat/send", -1, times=50, errmsg="system busy")
    await enqueue(app, "k", "appchat", text="hi", chat={"id": "wrAppChat1", "type": "group"})
    await drain_until_settled(app, clock)
    (row,) = await rows(app)
    assert row.status == "dead" and row.attempts == 4
    assert "gave up after 4 attempts" in (row.last_error or "") and "errcode -1" in (row.last_error or "")
    assert len(fake_wecom.calls("appchat/send")) == 4 and fake_wecom.delivered() == []


async def test_bad_destinations_die_without_a_call(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                   clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "mass", "mass_send", text="群发", destination={"sender": "staff01"})  # no recipients
    await enqueue(app, "tag", "mark_tag", destination={"external_userid": "wmAlice"}, payload={"add_tag": ["et"]})
    await enqueue(app, "robot", "group_robot", text="hi", chat={"id": "wrNoRobot", "type": "group"})
    await enqueue(app, "welcome", "welcome", text="hi")
    await drain_until_settled(app, clock, rounds=2)
    reasons = {r.key: r.last_error or "" for r in await rows(app)}
    assert {r.status for r in await rows(app)} == {"dead"}
    assert "external_userids" in reasons["mass"] and "userid" in reasons["tag"]
    assert "group_robot.keys" in reasons["robot"] and "welcome_code" in reasons["welcome"]
    assert [r.path for r in fake_wecom.requests] == []


# ── limits ──


async def test_group_robot_20_per_minute_is_honoured_against_the_fake(wecom_bot: Callable[..., BotApp],
                                                                      fake_wecom: FakeWeCom,
                                                                      clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    async with app.db.session() as s:
        for i in range(25):
            await app.outbox.enqueue(s, key=f"r{i}", kind="group_robot", text=f"第{i}条",
                                     chat={"id": "wrGroup1", "type": "group"})
    await app.outbox_pump.drain()
    assert len(fake_wecom.delivered("webhook/send")) == 20
    clock.advance(30)
    await app.outbox_pump.drain()
    assert len(fake_wecom.delivered("webhook/send")) == 20
    clock.advance(31)
    await app.outbox_pump.drain()
    assert len(fake_wecom.delivered("webhook/send")) == 25
    assert all(r.errcode == 0 for r in fake_wecom.calls("webhook/send"))  # WeCom never had to say 45009
    assert {r.status for r in await rows(app)} == {"sent"}


async def test_app_messages_stay_under_30_per_minute_per_member(wecom_bot: Callable[..., BotApp],
                                                                 fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    app = wecom_bot()
    await app.start()
    async with app.db.session() as s:
        for i in range(35):
            await app.outbox.enqueue(s, key=f"m{i}", kind="app_message", text=f"提醒{i}", to=["staff01"])
    await drain_until_settled(app, clock, rounds=3, step=61)
    assert len(fake_wecom.delivered("message/send")) == 35
    assert [r for r in fake_wecom.calls("message/send") if r.effect == "dropped"] == []  # none silently lost


# ── moments, the API service ──


async def test_a_moment_task_stores_its_jobid_and_the_result_can_be_polled(
        wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "moment:2026-11-23:morning", "moment_task", text="早安，今天喝什么茶？", to=["staff01"])
    await app.outbox_pump.drain()
    (row,) = await rows(app)
    (call,) = fake_wecom.delivered("externalcontact/add_moment_task")
    assert row.status == "sent" and row.result["jobid"] == call.answer["jobid"]
    api = app.get(WECOM_API)
    result = await api.call("externalcontact/get_moment_task_result", method="GET",
                            params={"jobid": row.result["jobid"]})
    assert result["status"] == 3 and result["result"]["moment_id"]
    with pytest.raises(WeComError) as err:
        await api.call("externalcontact/get_moment_task_result", method="GET", params={"jobid": "nope"})
    assert err.value.errcode == 40058 and not err.value.retryable


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # enough of a PNG for the fake's type check


async def test_moment_images_by_url_are_uploaded_once_then_posted_by_media_id(
        wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    url = fake_wecom.serve_file("spring-tea.png", PNG)
    pic = fake_wecom.serve_file("cover.png", PNG)
    link = {"title": "春茶开采", "url": "https://example.com/spring", "picurl": pic}
    attachments = [{"msgtype": "image", "image": {"url": url}}, {"msgtype": "link", "link": link}]
    for day in ("23", "24"):
        await enqueue(app, f"moment:2026-11-{day}:morning", "moment_task", text="今天的春茶开采啦", to=["staff01"],
                      destination={"visible": {"users": ["staff01"], "tags": ["etVIP"]}},
                      payload={"attachments": attachments})
    await app.outbox_pump.drain()
    assert {r.status for r in await rows(app)} == {"sent"}, [r.last_error for r in await rows(app)]
    uploads = fake_wecom.calls("media/upload_attachment")
    assert [u.query["media_type"] for u in uploads] == ["image", "image"]  # each URL once, then reused
    assert all(u.query["attachment_type"] == "1" and u.errcode == 0 for u in uploads)
    image_id, link_id = (u.answer["media_id"] for u in uploads)
    first, second = bodies(fake_wecom, "externalcontact/add_moment_task")
    assert first["attachments"] == second["attachments"] == [
        {"msgtype": "image", "image": {"media_id": image_id}},
        {"msgtype": "link", "link": {"title": "春茶开采", "url": "https://example.com/spring", "media_id": link_id}}]
    assert first["visible_range"] == {"sender_list": {"user_list": ["staff01"], "department_list": []},
                                      "external_contact_list": {"tag_list": ["etVIP"]}}
    assert fake_wecom.media[image_id] == PNG


async def test_a_missing_or_oversized_moment_image_is_a_clear_final_error(wecom_bot: Callable[..., BotApp],
                                                                         fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    big = fake_wecom.serve_file("big.png", PNG + b"\0" * (10 * 1024 * 1024))
    await enqueue(app, "moment:big", "moment_task", text="大图", to=["staff01"],
                  payload={"attachments": [{"msgtype": "image", "image": {"url": big}}]})
    ok = fake_wecom.serve_file("ok.png", PNG + bytes(range(256)) * 2000)  # 512 KB arrives in many chunks
    await enqueue(app, "moment:ok", "moment_task", text="正常的图", to=["staff01"],
                  payload={"attachments": [{"msgtype": "image", "image": {"url": ok}}]})
    await app.outbox_pump.drain()
    by_key = {r.key: r for r in await rows(app)}
    assert by_key["moment:big"].status == "dead" and "larger than 10 MB" in by_key["moment:big"].last_error
    assert by_key["moment:ok"].status == "sent"
    (upload,) = fake_wecom.calls("media/upload_attachment")
    assert fake_wecom.media[upload.answer["media_id"]] == PNG + bytes(range(256)) * 2000
    await enqueue(app, "moment:gone", "moment_task", text="图呢", to=["staff01"],
                  payload={"attachments": [{"msgtype": "image", "image": {"url": f"{fake_wecom.url}/files/gone.png"}}]})
    await app.outbox_pump.drain()
    row = {r.key: r for r in await rows(app)}["moment:gone"]
    assert row.status == "dead" and "HTTP 404" in row.last_error and "gone.png" in row.last_error
    assert len(fake_wecom.delivered("externalcontact/add_moment_task")) == 1  # only moment:ok


async def test_mass_send_images_by_url_go_as_pic_url(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    app = wecom_bot()
    await app.start()
    await enqueue(app, "mass:1", "mass_send", text="新品上架", destination={"sender": "staff01",
                                                                        "external_userids": ["wmAlice"]},
                  payload={"attachments": [{"msgtype": "image", "image": {"url": "https://example.com/new.png"}}]})
    await app.outbox_pump.drain()
    (body,) = bodies(fake_wecom, "externalcontact/add_msg_template")
    assert body["attachments"] == [{"msgtype": "image", "image": {"pic_url": "https://example.com/new.png"}}]


async def test_the_api_service_reads_group_chats(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom) -> None:
    fake_wecom.add_group("wrGroup1", "新人群", "staff01", [
        {"userid": "wmAlice", "type": 2, "join_time": 1763800000, "join_scene": 3, "name": "Alice"},
        {"userid": "staff01", "type": 1, "join_time": 1763700000, "join_scene": 1, "name": "客服小禾"}])
    app = wecom_bot()
    await app.start()
    api = app.get(WECOM_API)
    listed = await api.call("externalcontact/groupchat/list", {"status_filter": 0, "limit": 100})
    assert listed["group_chat_list"] == [{"chat_id": "wrGroup1", "status": 0}]
    got = await api.call("externalcontact/groupchat/get", {"chat_id": "wrGroup1", "need_name": 1})
    assert [m["name"] for m in got["group_chat"]["member_list"]] == ["Alice", "客服小禾"]
    with pytest.raises(WeComError) as err:
        await api.call("/cgi-bin/externalcontact/groupchat/get", {"chat_id": "wrMissing"})
    assert err.value.errcode == 40050


async def test_no_wecom_api_without_the_wecom_sender(make_bot: Callable[..., BotApp]) -> None:
    app = make_bot()
    assert app.maybe(WECOM_API) is None


# ── secrets ──


async def test_secrets_tokens_and_bodies_stay_out_of_logs_and_reasons(
        wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = wecom_bot(WECOM__REQUEST_TIMEOUT_S="1")
    await app.start()
    fake_wecom.fail("webhook/send", 45009)
    fake_wecom.http_error("message/send", 503)
    fake_wecom.delay("appchat/send", 2.0, drop=True)
    body = "这是一条不该出现在日志里的消息"
    await enqueue(app, "robot", "group_robot", text=body, chat={"id": "wrGroup1", "type": "group"})
    await enqueue(app, "app", "app_message", text=body, to=["staff01"])
    await enqueue(app, "chat", "appchat", text=body, chat={"id": "wrAppChat1", "type": "group"})
    await app.outbox_pump.drain()
    fake_wecom.expire_tokens()
    await drain_until_settled(app, clock, rounds=3, step=120)
    await _wait_answered(fake_wecom, "appchat/send", 2)
    tokens = list(fake_wecom.tokens)
    reasons = " ".join(str(r.last_error) for r in await rows(app))
    for text in (caplog.text, reasons):
        assert SECRET not in text and body not in text
        assert not any(t in text for t in tokens) and not any(k in text for k in ROBOT_KEYS.values())
    assert "HTTP 503" in caplog.text and "45009" in caplog.text  # the failures themselves are logged


# ── the robot-only sender ──


async def test_robot_sender_posts_robots_and_prints_the_rest(make_bot: Callable[..., BotApp],
                                                             make_config: Callable[..., Config],
                                                             fake_wecom: FakeWeCom,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    cfg = make_config(BOT__SENDER="robot", WECOM__API_BASE=fake_wecom.url, GROUP_ROBOT__KEYS=json.dumps(ROBOT_KEYS),
                      CONSOLE__FORMAT="json")
    app = make_bot(cfg=cfg, sender=RobotSender(cfg))
    await app.start()
    await enqueue(app, "robot", "group_robot", text="群机器人消息", chat={"id": "wrGroup1", "type": "group"})
    await enqueue(app, "reply", "reply", text="回复", chat={"id": "wrGroup1", "type": "group"}, to=["wmAlice"])
    await enqueue(app, "app", "app_message", text="应用消息", to=["staff01"])
    await app.outbox_pump.drain()
    assert [r.body["text"]["content"] for r in fake_wecom.delivered("webhook/send")] == ["群机器人消息", "回复"]  # type: ignore[index]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(p["kind"], p["text"]) for p in printed] == [("app_message", "应用消息")]
    assert app.maybe(WECOM_API) is None
    assert {r.status for r in await rows(app)} == {"sent"}


def test_robot_sender_needs_a_key(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(BOT__SENDER="robot")
    assert any(p.startswith("group_robot.keys:") for p in err.value.problems)
    assert make_config(BOT__SENDER="robot", GROUP_ROBOT__DEFAULT_KEY="k").bot.sender == "robot"
