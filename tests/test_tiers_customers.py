"""Operators looking after customers: notes, the profile, tags kept in step with WeCom."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.compliance.models import ModerationAlert as Alert
from bot.config import Config
from bot.events import Actor, Chat, MessageEvent
from bot.senders.wecom import WeComSender
from bot.testing import TEST_ENV, CallbackSigner, FakeWeCom, Harness, event_xml, serve
from bot.tiers.customers import NOTE_LIMIT
from bot.tiers.models import MemberNote, MemberTag


async def notes_of(app: BotApp, member_id: str) -> list[MemberNote]:
    async with app.db.read() as s:
        return list((await s.execute(select(MemberNote).where(MemberNote.member_id == member_id)
                                     .order_by(MemberNote.id))).scalars().all())


async def tags_of(app: BotApp, member_id: str) -> dict[str, str]:
    async with app.db.read() as s:
        rows = (await s.execute(select(MemberTag).where(MemberTag.member_id == member_id))).scalars().all()
    return {r.tag: r.source for r in rows}


async def test_a_note_is_stored_with_author_and_time_and_listed(harness: Harness) -> None:
    await harness.say("你好", sender="wmBob", name="Bob", mention=False)
    (done,) = await harness.admin("/note @Bob 喜欢岩茶，月底生日")
    assert "已为 Bob 记下备注" in done and "共 1 条" in done
    await harness.admin("/note wmBob 想要礼盒装")
    (note, later) = await notes_of(harness.app, "wmBob")
    assert later.text == "想要礼盒装"
    assert (note.text, note.author_id, note.author_name) == ("喜欢岩茶，月底生日", "admin01", "管理员")
    assert note.at == harness.app.clock.now()
    (listed,) = await harness.admin("/note list @Bob")
    assert "Bob 的备注（共 2 条）" in listed
    assert listed.index("想要礼盒装") < listed.index("喜欢岩茶")  # newest first
    assert "管理员：喜欢岩茶，月底生日" in listed


async def test_bad_notes_are_refused_and_change_nothing(harness: Harness) -> None:
    await harness.say("你好", sender="wmBob", name="Bob", mention=False)
    (long,) = await harness.admin("/note @Bob " + "长" * (NOTE_LIMIT + 1))
    assert f"{NOTE_LIMIT + 1} 字，最多 {NOTE_LIMIT} 字" in long
    (empty,) = await harness.admin("/note @Bob")
    assert "备注内容不能为空" in empty
    (blank,) = await harness.admin("/note @Bob    ")
    assert "备注内容不能为空" in blank
    (nobody,) = await harness.admin("/note @wmNobody 记一下")
    assert "找不到成员 wmNobody" in nobody
    (no_member,) = await harness.admin("/note list")
    assert "/note list @成员" in no_member
    assert await notes_of(harness.app, "wmBob") == []
    (exact,) = await harness.admin("/note @Bob " + "满" * NOTE_LIMIT)
    assert "已为 Bob 记下备注" in exact  # the limit itself is allowed


async def test_notes_and_profiles_are_for_operators_and_answered_privately(harness: Harness) -> None:
    await harness.say("你好", sender="wmBob", name="Bob", mention=False)
    (denied,) = await harness.say_texts("/note @Bob 偷偷记一笔", sender="wmEve", name="Eve")
    assert "权限" in denied
    (denied_profile,) = await harness.say_texts("/member @Bob", sender="wmEve", name="Eve")
    assert "权限" in denied_profile
    assert await notes_of(harness.app, "wmBob") == []
    sent = await harness.say("/member @Bob", sender="admin01", name="管理员", staff=True)
    assert [d.kind for d in sent if "客户档案" in d.text] == ["app_message"]  # typed in the group: 1:1


async def test_the_profile_shows_what_the_bot_knows_of_a_customer(harness: Harness) -> None:
    await harness.add_contact("wmBob", "Bob", staff="staff01", state="live-0912")
    await harness.join("wmBob", "Bob", chat="g1", chat_name="茶友1群", inviter="wmAnn")
    for i in range(3):
        await harness.say(f"聊聊 {i}", sender="wmBob", name="Bob", chat="g1", chat_name="茶友1群", mention=False)
    await harness.admin("/tag add @Bob 红茶爱好者")
    await harness.admin("/points add @Bob 60 线下活动")
    await harness.admin("/note @Bob 月底生日")
    (card,) = await harness.admin("/member @Bob")
    assert "客户档案：Bob（wmBob）" in card
    assert "等级：活跃成员" in card and "积分 63" in card
    assert "红茶爱好者" in card and "tier:active" in card
    assert "渠道码 live-0912" in card and "添加人 staff01" in card
    assert "所在群：茶友1群" in card
    assert "茶友1群 3 条" in card  # today's messages in the group
    assert "潜客 → 活跃成员" in card  # the tier history
    assert "备注（1）" in card and "管理员：月底生日" in card
    assert "进行中的 SOP：" in card and "运行中" in card  # newcomer-7d started when Bob joined
    assert "转人工：无" in card and "合规告警：无" in card
    await harness.say("宝妈兼职日结，扫码领取福利", sender="wmBob", name="Bob", chat="g1", mention=False)
    await harness.say("我要转人工", sender="wmBob", name="Bob", group=False)
    (card,) = await harness.admin("/member @Bob")
    assert "转人工：等待接待" in card
    async with harness.app.db.read() as s:
        n = (await s.execute(select(func.count()).select_from(Alert).where(Alert.sender_id == "wmBob"))).scalar_one()
    assert n >= 1 and f"合规告警：待处理 {n} 条（共 {n} 条）" in card
    assert await harness.admin("/档案 @Bob") == [card]
    (unknown,) = await harness.admin("/member @wmNobody")
    assert "找不到成员 wmNobody" in unknown



# ── tags both ways with WeCom ──

TAG_IDS = json.dumps({"红茶爱好者": "etTea"})
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"],
                     TEST_ENV["SIYU_WECOM__CORP_ID"])


async def wecom_bot(make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], clock: FakeClock) -> BotApp:
    cfg = wecom_config(TIERS__WECOM_TAG_IDS=TAG_IDS)
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock))
    await app.start()
    return app


async def post(app: BotApp, xml: str) -> None:
    q, body = APP.app_post(xml, corp_id=TEST_ENV["SIYU_WECOM__CORP_ID"])
    async with serve(app) as client:
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    await app.settle()


async def admin_says(app: BotApp, text: str) -> None:
    await app.accept_event(MessageEvent(
        key=f"cmd:{text}:{app.clock.now().timestamp()}", time=app.clock.now(), channel="test",
        chat=Chat(id="admin01", type="single"), sender=Actor(id="admin01", name="管理员", staff=True), text=text,
        mentions_bot=True))
    await app.settle()


def contact_event(change: str, member: str = "wmBob", staff: str = "staff01", at: int = 1763800000) -> str:
    return event_xml("change_external_contact", create_time=at, ChangeType=change, UserID=staff,
                     ExternalUserID=member)


async def test_operator_tags_are_put_on_the_wecom_contact(
        make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], fake_wecom: FakeWeCom,
        clock: FakeClock) -> None:
    app = await wecom_bot(make_bot, wecom_config, clock)
    fake_wecom.add_contact("wmBob", "Bob", "staff01")
    await post(app, contact_event("add_external_contact"))
    await admin_says(app, "/tag add wmBob 红茶爱好者")
    await admin_says(app, "/tag add wmBob 直播课学员")
    # (the lifecycle SOP that starts with the contact tags them too: only what the operators did is looked at)
    ours = {"etTea", "直播课学员"}
    assert fake_wecom.contact_tags[("staff01", "wmBob")] >= ours  # the mapped id, else the name

    def tagged() -> list[Any]:
        return [r.body for r in fake_wecom.delivered("externalcontact/mark_tag")
                if set(r.body.get("add_tag", []) + r.body.get("remove_tag", [])) & ours]

    assert tagged()[0] == {"userid": "staff01", "external_userid": "wmBob", "add_tag": ["etTea"]}
    await admin_says(app, "/tag del wmBob 红茶爱好者")
    assert fake_wecom.contact_tags[("staff01", "wmBob")] & ours == {"直播课学员"}
    await admin_says(app, "/tag add wmBob 直播课学员")  # already there: nothing to send
    await admin_says(app, "/tag del wmBob 没有的标签")
    assert len(tagged()) == 3
    # a customer met only in a group has no staff member to tag them as
    await app.accept_event(MessageEvent(key="g-msg", time=clock.now(), channel="test", chat=Chat(id="g1"),
                                        sender=Actor(id="wmCarol", name="Carol"), text="你好"))
    await app.settle()
    await admin_says(app, "/tag add wmCarol 红茶爱好者")
    assert await tags_of(app, "wmCarol") == {"红茶爱好者": "operator"}
    assert len(tagged()) == 3


async def test_tags_edited_in_wecom_become_the_members_tags(
        make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config], fake_wecom: FakeWeCom,
        clock: FakeClock) -> None:
    app = await wecom_bot(make_bot, wecom_config, clock)
    fake_wecom.add_contact("wmBob", "Bob", "staff01", {"etTea": "红茶（企微）", "etHot": "高意向"})
    await post(app, contact_event("add_external_contact"))
    heard_before = len(fake_wecom.calls("externalcontact/get"))
    fake_wecom.contact_tags[("staff01", "wmBob")] = {"etTea", "etHot"}  # (the lifecycle SOP tagged them too)
    await post(app, contact_event("edit_external_contact", at=1763800100))
    assert len(fake_wecom.calls("externalcontact/get")) == heard_before + 1
    tags = await tags_of(app, "wmBob")
    assert {t: s for t, s in tags.items() if not t.startswith("tier:")} == {"红茶爱好者": "wecom", "高意向": "wecom"}
    # the staff member takes 高意向 off in WeCom: it goes here too; the ladder's tier tag stays
    fake_wecom.contact_tags[("staff01", "wmBob")] = {"etTea"}
    async with app.db.session() as s:
        await s.execute(MemberTag.__table__.insert().values(member_id="wmBob", tag="tier:prospect", source="tier",
                                                            added_at=clock.now()))
    await post(app, contact_event("edit_external_contact", at=1763800200))
    assert set(await tags_of(app, "wmBob")) == {"红茶爱好者", "tier:prospect"}
    # what came from WeCom is not sent back
    assert not [r for r in fake_wecom.delivered("externalcontact/mark_tag")
                if {"etTea", "etHot"} & set(r.body.get("add_tag", []) + r.body.get("remove_tag", []))]
    # another staff member's tags on the same customer are theirs: they change nothing here
    fake_wecom.contact_tags[("staff09", "wmBob")] = {"etOther"}
    await post(app, contact_event("edit_external_contact", staff="staff09", at=1763800250))
    assert set(await tags_of(app, "wmBob")) == {"红茶爱好者", "tier:prospect"}
    # a failed read leaves the tags as they are
    fake_wecom.fail("externalcontact/get", 48002, errmsg="api forbidden")
    fake_wecom.contact_tags[("staff01", "wmBob")] = set()
    await post(app, contact_event("edit_external_contact", at=1763800300))
    assert set(await tags_of(app, "wmBob")) == {"红茶爱好者", "tier:prospect"}
