"""Customers lost (churn) and customers gone quiet (silence): stored events, batched notices, digests, SOP triggers."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.app import BotApp
from bot.config import Config
from bot.events import Actor, ContactChanged
from bot.senders.base import Delivery
from bot.sop.script import parse_script
from bot.testing import TEST_ENV, CallbackSigner, Harness, event_xml, serve
from bot.tiers.customers import CHURN_LISTED
from bot.tiers.models import ChurnEvent
from bot.yamldoc import FileProblems
from tests.sop_support import at, runs, sop_config, started, write_scripts

APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"],
                     TEST_ENV["SIYU_WECOM__CORP_ID"])


async def post(app: BotApp, xml: str) -> None:
    q, body = APP.app_post(xml, corp_id=TEST_ENV["SIYU_WECOM__CORP_ID"])
    async with serve(app) as client:
        assert (await client.post("/wecom/callback?" + q, data=body)).status == 200
    await app.settle()


async def churn_rows(app: BotApp) -> list[ChurnEvent]:
    async with app.db.read() as s:
        return list((await s.execute(select(ChurnEvent).order_by(ChurnEvent.id))).scalars().all())


def notices(sent: list[Delivery]) -> list[Delivery]:
    return [d for d in sent if d.kind == "app_message" and "客户流失提醒" in d.text]


async def fire(h: Harness, job: str) -> list[Delivery]:
    await h.app.scheduler.fire(job)
    return await h.settle()


# ── churn ──

async def test_a_purge_of_fifty_leaves_makes_one_notice_per_owner(harness: Harness) -> None:
    await harness.admin("/group owner @staff01", chat="g1")
    await harness.admin("/group owner @staff02", chat="g2")
    members = [(f"wmM{i:02d}", "g1" if i < 35 else "g2") for i in range(50)]
    for member_id, chat in members:
        await harness.join(member_id, f"成员{member_id[3:]}", chat=chat)
    await harness.say("我在", sender="wmM00", name="成员00", chat="g1", mention=False)
    await harness.admin("/note @wmM00 老客户，上月买过礼盒")
    during = []
    for member_id, chat in members:
        during += await harness.leave(member_id, chat=chat)
    assert notices(during) == []  # nothing while the purge goes on
    rows = await churn_rows(harness.app)
    assert len(rows) == 50 and {r.kind for r in rows} == {"left"}
    sent = [d for d in await fire(harness, "tiers-churn-notice") if d.kind == "app_message"]
    assert sorted(d.to[0] for d in sent) == ["staff01", "staff02"]  # one message per owner
    by_owner = {d.to[0]: d.text for d in sent}
    assert "客户流失提醒：35 位" in by_owner["staff01"] and "客户流失提醒：15 位" in by_owner["staff02"]
    assert f"还有 {35 - CHURN_LISTED} 位未列出" in by_owner["staff01"]
    assert "成员00 退出群聊「新人群」 · 潜客 · 最后发言 11-23 · 备注：老客户，上月买过礼盒" in by_owner["staff01"]
    assert "成员49" in by_owner["staff02"] and "成员00" not in by_owner["staff02"]
    assert notices(await fire(harness, "tiers-churn-notice")) == []  # each loss is told once
    assert all(r.notified_at is not None for r in await churn_rows(harness.app))


async def test_wecom_churn_events_are_decoded_stored_and_told_even_for_unknown_members(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Config]) -> None:
    from bot.testing import Harness

    app = make_bot(cfg=make_config(TIERS__CHURN_NOTIFY='["boss01"]'))
    await app.start()
    h = Harness(app)
    await h.add_contact("wmBob", "Bob", staff="staff01")
    await h.join("wmCarol", "Carol", chat="wrG1", chat_name="茶友1群")
    await h.join("wmDan", "Dan", chat="wrG2", chat_name="茶友2群")
    await h.admin("/group owner @staff02", chat="wrG1", chat_name="茶友1群")
    await post(app, event_xml("change_external_contact", ChangeType="del_follow_user", UserID="staff01",
                              ExternalUserID="wmBob"))
    await post(app, event_xml("change_external_contact", ChangeType="del_external_contact", UserID="staff03",
                              ExternalUserID="wmGhost"))  # the bot never saw wmGhost
    await post(app, event_xml("change_external_contact", ChangeType="del_external_contact", UserID="staff01",
                              ExternalUserID="wmEve", Source="DELETE_BY_TRANSFER"))  # handed over, not lost
    await post(app, event_xml("change_external_chat", ChatId="wrG1", ChangeType="update", UpdateDetail="del_member",
                              QuitScene="1", MemChangeCnt="1", MemChangeList="wmCarol"))
    await post(app, event_xml("change_external_chat", ChatId="wrG2", ChangeType="dismiss"))
    rows = {r.member_id: r for r in await churn_rows(app)}
    assert {m: (r.kind, r.staff_id, r.chat_id) for m, r in rows.items()} == {
        "wmBob": ("removed_by_customer", "staff01", ""), "wmGhost": ("removed_by_staff", "staff03", ""),
        "wmCarol": ("removed", "", "wrG1"), "wmDan": ("dismissed", "", "wrG2")}
    sent = {d.to[0]: d.text for d in notices(await fire(h, "tiers-churn-notice"))}
    assert set(sent) == {"staff01", "staff03", "staff02", "boss01"}
    assert "Bob 删除了员工" in sent["staff01"]
    assert "wmGhost（未建档） 被员工删除" in sent["staff03"]
    assert "Carol 被移出群聊「茶友1群」" in sent["staff02"]
    assert "Dan 所在群已解散「茶友2群」" in sent["boss01"]  # a group without an owner: tiers.churn_notify
    # the same callback again (WeCom retries) is stored once
    await post(app, event_xml("change_external_contact", ChangeType="del_follow_user", UserID="staff01",
                              ExternalUserID="wmBob"))
    assert len(await churn_rows(app)) == 4
    (card,) = await h.admin("/member @wmBob")
    assert "删除了员工" in card


CHURNED = """\
    id: winback
    name: 流失挽回
    trigger: churned
    steps:
      - id: tell
        at: "+0m"
        via: remind_staff
        text: "{{ member.name }} 流失了，请回访"
"""


async def test_a_churned_script_starts_when_a_customer_is_lost(make_bot: Callable[..., BotApp],
                                                               make_config: Callable[..., Config],
                                                               tmp_path: Path) -> None:
    directory = write_scripts(tmp_path / "sop", {"winback.yaml": CHURNED})
    app = await started(make_bot, sop_config(make_config, directory))
    h = Harness(app)
    at(app.clock, 2026, 11, 23, 10, 0)
    await h.add_contact("wmBob", "Bob", staff="staff01")
    sent = await h.push(ContactChanged(key=h.key(), time=app.clock.now(), channel="test", change="removed_by_customer",
                                       member=Actor(id="wmBob", name="Bob"), staff=Actor(id="staff01", staff=True)))
    (run,) = await runs(app)
    assert (run.script_id, run.member_id, run.staff_id) == ("winback", "wmBob", "staff01")
    assert [d.to for d in sent if d.kind == "remind_staff" and "Bob 流失了" in d.text] == [["staff01"]]
    await h.push(ContactChanged(key=h.key(), time=app.clock.now(), channel="test", change="edited",
                                member=Actor(id="wmCarol"), staff=Actor(id="staff01", staff=True)))
    assert len(await runs(app)) == 1  # an edit is not a loss
    await h.join("wmDan", "Dan", chat="g1")
    await h.leave("wmDan", chat="g1")
    assert [(r.member_id, r.chat_id) for r in await runs(app)][1:] == [("wmDan", "g1")]


# ── silence ──

async def test_members_silent_groups_by_group_and_tier_and_bounds_the_list(harness: Harness) -> None:
    clock = harness.app.clock
    for i in range(40):
        await harness.say("在吗", sender=f"wmQ{i:02d}", name=f"静{i:02d}", chat="g1" if i < 25 else "g2",
                          chat_name="茶友1群" if i < 25 else "茶友2群", mention=False)
    clock.advance(timedelta(days=20))
    await harness.say("我还在", sender="wmQ00", name="静00", chat="g1", chat_name="茶友1群", mention=False)
    (report,) = await harness.admin("/members silent 14")
    assert "沉默 14 天以上的客户：39 位" in report
    assert "茶友1群 · 潜客：24 位" in report and "茶友2群 · 潜客：15 位" in report
    assert "…还有 19 位未列出" in report and "静00" not in report
    (none,) = await harness.admin("/members silent 30")
    assert "没有沉默 30 天以上的客户" in none
    for bad in ("/members silent 0", "/members silent 366", "/members silent 很久", "/members silent"):
        (text,) = await harness.admin(bad)
        assert "用法" in text or "不能" in text, bad
    (denied,) = await harness.say_texts("/members silent 14", sender="wmQ01", name="静01")
    assert "权限" in denied


async def test_the_weekly_digest_tells_each_owner_of_their_quiet_customers(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Config]) -> None:
    app = make_bot(cfg=make_config(TIERS__SILENCE_DIGEST="0 10 * * 1", TIERS__SILENCE_DAYS="7"))
    await app.start()
    h = Harness(app)
    for i, staff in enumerate(("staff01", "staff01", "staff02")):
        await h.add_contact(f"wmS{i}", f"客户{i}", staff=staff)
    await h.add_contact("wmS9", "客户9", staff="staff02")
    app.clock.advance(timedelta(days=8))
    await h.say("我还在", sender="wmS9", name="客户9", group=False)
    await h.admin("/note @wmS0 怕苦")
    sent = [d for d in await fire(h, "tiers-silence-digest") if "沉默客户提醒" in d.text]
    by_owner = {d.to[0]: d.text for d in sent}
    assert sorted(by_owner) == ["staff01", "staff02"] and len(sent) == 2
    mine = by_owner["staff01"]
    assert "2 位已沉默 7 天以上" in mine and "客户0" in mine and "怕苦" in mine
    assert "1 位" in by_owner["staff02"] and "客户9" not in by_owner["staff02"]


async def test_the_digest_is_off_unless_configured(harness: Harness) -> None:
    assert "tiers-silence-digest" not in harness.app.scheduler.crons


SILENT = """\
    id: wake-up
    name: 沉默唤醒
    trigger: silent
    silent_days: 3
    steps:
      - id: nudge
        at: "+0m"
        via: remind_staff
        text: "{{ member.name }} 已经 3 天没说话了"
"""


async def test_a_silent_script_starts_once_per_silence(make_bot: Callable[..., BotApp],
                                                       make_config: Callable[..., Config], tmp_path: Path) -> None:
    directory = write_scripts(tmp_path / "sop", {"wake.yaml": SILENT})
    app = await started(make_bot, sop_config(make_config, directory))
    h = Harness(app)
    at(app.clock, 2026, 11, 23, 12, 0)
    await h.add_contact("wmBob", "Bob", staff="staff01")
    await h.say("你好", sender="wmBob", name="Bob", group=False)
    await h.add_contact("wmCarol", "Carol", staff="staff01")

    async def check(day: int) -> list[Any]:
        at(app.clock, 2026, 11, day, 10, 0)
        await fire(h, "sop-silent")
        return [r.member_id for r in await runs(app)]

    assert await check(25) == []           # 2 days quiet
    assert await check(26) == []           # 2 days 22 hours
    assert sorted(await check(27)) == ["wmBob", "wmCarol"]  # 3 days and more
    assert len(await check(28)) == 2       # still the same silence: not again
    at(app.clock, 2026, 11, 28, 12, 0)
    await h.say("我回来了", sender="wmBob", name="Bob", group=False)
    assert len(await check(30)) == 2       # Bob spoke 1 day 22 hours ago; Carol's silence was found already
    at(app.clock, 2026, 12, 1, 13, 0)
    await fire(h, "sop-silent")
    assert sorted(r.member_id for r in await runs(app)) == ["wmBob", "wmBob", "wmCarol"]  # a new silence


def test_a_silent_script_needs_its_days() -> None:
    for body, why in ((SILENT.replace("    silent_days: 3\n", ""), "需要 silent_days"),
                      (SILENT.replace("silent_days: 3", "silent_days: 400"), "需要 silent_days"),
                      (CHURNED.replace("trigger: churned", "trigger: churned\n    silent_days: 3"), "只用于")):
        try:
            parse_script(textwrap.dedent(body), "x.yaml")
        except FileProblems as exc:
            assert why in str(exc)
        else:
            raise AssertionError(body)
