"""Channel codes through the pipeline: /channel add makes a contact way (QR) at the fake WeCom, a customer
added with its State is recorded, tagged with the channel's name and counted by /channel list and /stats."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.app import BotApp
from bot.campaigns.models import Channel
from bot.testing import Harness
from bot.tiers.models import Member, MemberTag
from tests import campaigns_support

wecom_harness = campaigns_support.wecom_harness  # the fixtures
make_wecom_harness = campaigns_support.make_wecom_harness


async def count(app: BotApp, model: type) -> int:
    async with app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_channel_add_makes_a_qr_contact_way_and_refuses_a_used_name(wecom_harness: Harness,
                                                                          fake_wecom: Any) -> None:
    h = wecom_harness
    (text,) = await h.admin("/channel add 抖音直播 staff01 @staff02", group=False)
    (way,) = fake_wecom.calls("externalcontact/add_contact_way")
    assert way.ok and way.body["type"] == 2 and way.body["scene"] == 2
    assert way.body["user"] == ["staff01", "staff02"] and way.body["remark"] == "抖音直播"
    state = way.body["state"]
    assert re.fullmatch(r"qd[0-9a-f]{8}", state)
    assert "渠道「抖音直播」已创建" in text and f"渠道码 {state}" in text and "staff01、staff02" in text
    assert way.answer["qr_code"] in text and f"where: {{states: [{state}]}}" in text

    (again,) = await h.admin("/channel add 抖音直播 staff03", group=False)
    assert "已经有叫「抖音直播」的渠道了" in again
    assert len(fake_wecom.calls("externalcontact/add_contact_way")) == 1 and await count(h.app, Channel) == 1

    fake_wecom.fail("externalcontact/add_contact_way", 60111, errmsg="invalid userid")
    (refused,) = await h.admin("/channel add 线下门店 nobody", group=False)
    assert "企业微信没有创建渠道「线下门店」的活码" in refused and "60111" in refused
    assert await count(h.app, Channel) == 1
    (mine,) = await h.admin("/channel add 线下门店", group=False)
    assert "接待员工：admin01" in mine  # no staff typed: the operator receives
    assert fake_wecom.calls("externalcontact/add_contact_way")[-1].body["type"] == 1


async def test_a_customer_added_through_a_channel_carries_it_and_is_counted(wecom_harness: Harness,
                                                                            fake_wecom: Any) -> None:
    h = wecom_harness
    await h.admin("/channel add 抖音直播 staff01", group=False)
    state = fake_wecom.calls("externalcontact/add_contact_way")[0].body["state"]
    await h.add_contact("wmE", "阿恩", staff="staff01", state=state, welcome_code="W-E")
    await h.add_contact("wmF", "阿飞", staff="staff01", state="other-way", welcome_code="W-F")
    await h.add_contact("wmG", "阿歌", staff="staff01", welcome_code="W-G")
    async with h.app.db.read() as s:
        member = (await s.execute(select(Member).where(Member.id == "wmE"))).scalar_one()
        tags = (await s.execute(select(MemberTag.tag, MemberTag.source).where(MemberTag.member_id == "wmE"))).all()
        others = (await s.execute(select(func.count()).select_from(MemberTag)
                                  .where(MemberTag.member_id.in_(["wmF", "wmG"])))).scalar_one()
    assert member.source_state == state and [tuple(t) for t in tags] == [("抖音直播", "channel")] and others == 0

    (listing,) = await h.admin("/channel list", group=False)
    assert "· 抖音直播" in listing and "已添加 1 人" in listing and "https://" in listing
    texts = await h.admin("/stats 今天", group=False)
    (stats,) = [t for t in texts if "来源：" in t]
    assert "渠道 抖音直播 1" in stats and "渠道码 other-way 1" in stats and "员工添加 1" in stats
    cards = {who: (await h.admin(f"/member @{who}", group=False))[0] for who in ("wmE", "wmF", "wmG")}
    assert "来源：渠道「抖音直播」" in cards["wmE"] and "来源：渠道码 other-way" in cards["wmF"]
    assert "来源：员工添加" in cards["wmG"]


async def test_bad_channel_names_and_no_wecom_api_create_nothing(harness: Harness) -> None:
    (bad,) = await harness.admin("/channel add 抖音 直播@x", group=False)
    assert "不是员工账号" in bad
    (name,) = await harness.admin("/channel add a/b", group=False)
    assert "渠道名「a/b」不行" in name
    (no_api,) = await harness.admin("/channel add 抖音直播", group=False)
    assert "bot.sender = \"wecom\"" in no_api
    assert await count(harness.app, Channel) == 0
    (listing,) = await harness.admin("/channel list", group=False)
    assert "还没有渠道" in listing


WELCOME = """\
id: channel-welcome
name: 渠道来的新朋友
trigger: contact_added
per: member
where: {states: ["qd*"]}
steps:
  - id: welcome
    at: "+0m"
    via: welcome
    text: 欢迎从直播间来的{{ member.name }}～
"""


async def test_a_channel_welcome_script_greets_only_its_customers(make_wecom_harness: Any, fake_wecom: Any,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "sop").mkdir()
    (tmp_path / "sop" / "channel-welcome.yaml").write_text(WELCOME, encoding="utf-8")
    h = await make_wecom_harness(SOP__DIR=str(tmp_path / "sop"))
    await h.admin("/channel add 抖音直播 staff01", group=False)
    state = fake_wecom.calls("externalcontact/add_contact_way")[0].body["state"]
    await h.add_contact("wmE", "阿恩", staff="staff01", state=state, welcome_code="W-E")
    await h.add_contact("wmG", "阿歌", staff="staff01", welcome_code="W-G")
    (welcome,) = fake_wecom.delivered("externalcontact/send_welcome_msg")
    assert welcome.body == {"welcome_code": "W-E", "text": {"content": "欢迎从直播间来的阿恩～"}}
