"""Group-change callbacks get names, staff flags and inviters from groupchat/get when the WeCom API is in use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.context import Context
from bot.events import MemberJoined
from bot.routing import Router
from bot.senders.wecom import WeComSender
from bot.storage.models import InboxRow
from bot.testing import TEST_ENV, CallbackSigner, FakeWeCom, event_xml, serve

CORP = TEST_ENV["SIYU_WECOM__CORP_ID"]
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)


def recorder(seen: list[MemberJoined]) -> Callable[[BotApp], Router]:
    def setup(app: BotApp) -> Router:
        router = Router("joins")

        @router.on(MemberJoined, priority=5)
        async def joined(event: MemberJoined, ctx: Context) -> None:
            seen.append(event)

        return router

    return setup


async def post_join(app: BotApp, members: str, create_time: int = 1763800000) -> None:
    xml = event_xml("change_external_chat", create_time=create_time, ChatId="wrGroup1", ChangeType="update",
                    UpdateDetail="add_member", JoinScene="0", MemChangeCnt="2", MemChangeList=members)
    q, body = APP.app_post(xml, corp_id=CORP)
    async with serve(app) as client:
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    await app.settle()


async def test_joiners_get_names_and_inviters_from_groupchat_get(
        make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], fake_wecom: FakeWeCom,
        clock: FakeClock) -> None:
    fake_wecom.add_group("wrGroup1", "禾屿茶友会", "staff01", [
        {"userid": "staff01", "type": 1, "join_time": 1763700000, "join_scene": 1, "name": "客服小禾"},
        {"userid": "wmAlice", "type": 2, "join_time": 1763800000, "join_scene": 1, "name": "Alice",
         "invitor": {"userid": "staff01"}},
        {"userid": "wmBob", "type": 2, "join_time": 1763800000, "join_scene": 3, "name": "Bob",
         "group_nickname": "鲍勃", "invitor": {"userid": "wmAlice"}},
    ])
    seen: list[MemberJoined] = []
    cfg = wecom_config()
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock), features=[recorder(seen)])
    await app.start()
    await post_join(app, "wmAlice,wmBob,wmCarol")  # Carol is not in groupchat/get yet (data lags)
    by_id = {e.member.id: e for e in seen}
    assert by_id["wmAlice"].inviter is not None and by_id["wmAlice"].inviter.id == "staff01"
    assert by_id["wmAlice"].inviter.staff and by_id["wmAlice"].member.name == "Alice"
    assert by_id["wmBob"].inviter is not None and by_id["wmBob"].inviter.id == "wmAlice"
    assert not by_id["wmBob"].inviter.staff and by_id["wmBob"].member.name == "鲍勃"
    assert by_id["wmCarol"].inviter is None and by_id["wmCarol"].member.name == ""
    assert {e.chat.name for e in seen} == {"禾屿茶友会"}
    (call,) = fake_wecom.calls("externalcontact/groupchat/get")
    assert call.body == {"chat_id": "wrGroup1", "need_name": 1}
    async with app.db.read() as s:
        (row,) = (await s.execute(select(InboxRow))).scalars()
    assert row.status == "done" and row.payload["enriched"] == "groupchat" and "enrich" not in row.payload


async def test_a_failed_lookup_still_dispatches_the_join_once(
        make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], fake_wecom: FakeWeCom,
        clock: FakeClock) -> None:
    fake_wecom.fail("externalcontact/groupchat/get", 48002, errmsg="api forbidden")
    seen: list[MemberJoined] = []
    cfg = wecom_config()
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock), features=[recorder(seen)])
    await app.start()
    await post_join(app, "wmAlice")
    (event,) = seen
    assert event.member.id == "wmAlice" and event.inviter is None and event.scene == "invite"
    await app.settle()
    assert len(seen) == 1 and len(fake_wecom.calls("externalcontact/groupchat/get")) == 1
    async with app.db.read() as s:
        (row,) = (await s.execute(select(InboxRow))).scalars()
    assert row.status == "done" and row.payload["enriched"] == "failed: errcode 48002"


async def test_without_the_wecom_api_joins_are_dispatched_as_they_came(make_bot: Callable[..., BotApp]) -> None:
    seen: list[MemberJoined] = []
    app = make_bot(features=[recorder(seen)])
    await app.start()
    await post_join(app, "wmAlice")
    (event,) = seen
    assert event.inviter is None and app.inbox_pump.enrichers == []


def test_a_generic_event_may_name_an_inviter_per_member() -> None:
    from datetime import UTC, datetime

    from bot.events import events_from_payload

    payload: dict[str, Any] = {"type": "member_joined", "chat": {"id": "g1"}, "scene": "invite",
                               "inviter": {"id": "staff01"},
                               "members": [{"id": "wmA"}, {"id": "wmB", "inviter": {"id": "wmA"}}]}
    a, b = events_from_payload(payload, "k", datetime.now(UTC))
    assert isinstance(a, MemberJoined) and isinstance(b, MemberJoined)
    assert a.inviter is not None and a.inviter.id == "staff01"
    assert b.inviter is not None and b.inviter.id == "wmA"
