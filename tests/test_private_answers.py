"""Private answers stay private: every command whose answer holds staff, customer or compliance data,
typed in a customer group, answers its author 1:1 (an app message) and leaves only a neutral notice
in the group; compliance content never reaches a customer group."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.compliance.store import ALERTS
from bot.config import Config
from bot.senders.base import Delivery
from bot.testing import Harness

NOTICE = "已私信回复你～"
GROUP = "g1"

# Every private command, as an operator would type it, with a piece of the data its answer holds
# (checked in the private answer and absent from the group). "" where the answer has no fixed piece.
PRIVATE = {
    "alerts": ("/alerts", "加我微信"),
    "alerts open": ("/alerts open", "加我微信"),
    "alerts all": ("/alerts all", "加我微信"),
    "alerts show": ("/alerts show 1", "加我微信"),
    "alerts ack": ("/alerts ack 1", ""),
    "alerts resolve": ("/alerts resolve 1 已提醒员工", ""),
    "alerts fp": ("/alerts fp 1 说的是微信支付", ""),
    "word add": ("/word add 私下联系 测试私密词", "测试私密词"),
    "word allow": ("/word allow 私下联系 微信支付", "微信支付"),
    "word del": ("/word del 测试私密词", "测试私密词"),
    "word list": ("/word list 私下联系", "加我微信"),
    "kb add": ("/kb add 测试私密问题 测试私密答案", ""),
    "kb edit": ("/kb edit refund-policy 优先级 5", ""),
    "kb del": ("/kb del invoice", ""),
    "kb reset": ("/kb reset refund-policy", ""),
    "kb show": ("/kb show refund-policy", "refund-policy"),
    "kb list": ("/kb list", ""),
    "kb search": ("/kb search 退款多久到账", ""),
    "kb misses": ("/kb misses", ""),
    "kb reload": ("/kb reload", ""),
    "sop list": ("/sop list", "newcomer-7d"),
    "sop show": ("/sop show newcomer-7d", "newcomer-7d"),
    "sop preview": ("/sop preview newcomer-7d", ""),
    "sop start": ("/sop start vip-welcome @wmBob", ""),
    "sop pause": ("/sop pause 1", ""),
    "sop resume": ("/sop resume 1", ""),
    "sop stop": ("/sop stop 1", ""),
    "sop status": ("/sop status", ""),
    "sop migrate": ("/sop migrate newcomer-7d 1", ""),
    "sop reload": ("/sop reload", ""),
    "moments week": ("/moments week", ""),
    "moments today": ("/moments today", ""),
    "moments skip": ("/moments skip 2026-12-30", ""),
    "moments approve": ("/moments approve 2026-12-30", ""),
    "moments set": ("/moments set 周三 12:00 新品上市", ""),
    "moments unset": ("/moments unset 周三 12:00", ""),
    "moments reload": ("/moments reload", ""),
    "tier show": ("/tier show @wmBob", "Bob"),
    "tier set": ("/tier set @wmBob auto 恢复规则评定", ""),
    "tier stats": ("/tier stats", ""),
    "tier recompute": ("/tier recompute", ""),
    "points add": ("/points add @wmBob 3 分享心得", "Bob"),
    "purchase": ("/purchase @wmBob 18 茶包", "Bob"),
    "tag add": ("/tag add @wmBob 私密标签", "私密标签"),
    "tag del": ("/tag del @wmBob 私密标签", "私密标签"),
    "tag list": ("/tag list @wmBob", "Bob"),
    "note": ("/note @wmBob 私密备注", "私密备注"),
    "member": ("/member @wmBob", "Bob"),
    "members silent": ("/members silent 1", "沉默"),
    "group list": ("/group list", ""),
    "role grant": ("/role grant @staff02 operator", "staff02"),
    "role revoke": ("/role revoke @staff02 operator", "staff02"),
    "role list": ("/role list", "admin01"),
    "status": ("/status", "发件箱"),
    "console signout": ("/console signout @staff02", "staff02"),
    "handoff list": ("/handoff list", ""),
    "handoff take": ("/handoff take 1", ""),
    "handoff close": ("/handoff close 1", ""),
    "stats": ("/stats", ""),
    "send": ("/send tier:prospect 测试群发", "tier:prospect"),
    "sends": ("/sends", ""),
    "channel add": ("/channel add 私密渠道", ""),
    "channel list": ("/channel list", ""),
    "nps": ("/nps", "满意度（NPS）"),
}


@pytest.fixture
def trust_config(make_config: Callable[..., Config]) -> Config:
    return make_config(MODERATION__REVIEWERS='["rev01"]', MODERATION__ESCALATE_TO='["boss01"]',
                       MODERATION__ESCALATE_ROBOT="compliance", MODERATION__ESCALATE_AFTER_H="1",
                       MODERATION__GROUP_OWNER_FALLBACK='["owner01"]', GROUP_ROBOT__DEFAULT_KEY="customer-robot")


@pytest.fixture
async def tbot(make_bot: Callable[..., BotApp], trust_config: Config) -> AsyncIterator[BotApp]:
    app = make_bot(cfg=trust_config)
    await app.start()
    yield app


@pytest.fixture
async def h(tbot: BotApp) -> Harness:
    h = Harness(tbot)
    await h.join("wmBob", "Bob", chat=GROUP, chat_name="客户群")
    await h.say("这款茶怎么泡？", sender="wmBob", name="Bob", chat=GROUP, chat_name="客户群", mention=False)
    await h.say("您好，加 我 v x 吧，私下给您优惠", sender="staff01", name="张三", staff=True, chat=GROUP,
                chat_name="客户群", mention=False)
    return h


def in_group(d: Delivery) -> bool:
    return d.kind in ("reply", "group_robot", "appchat") and (d.chat_id == GROUP or d.chat.get("id") == GROUP)


async def test_every_private_command_has_a_case(tbot: BotApp) -> None:
    declared = {s.name for s in tbot.commands.specs.values() if s.private}
    assert declared == set(PRIVATE)


async def test_every_private_answer_typed_in_a_customer_group_goes_to_its_author_alone(h: Harness,
                                                                                      clock: FakeClock) -> None:
    for i, (name, (text, piece)) in enumerate(PRIVATE.items()):  # in order: /word del removes what /word add added
        clock.advance(timedelta(seconds=5))  # within the robot's 20/min and an app message's 30/min
        await h.say(text, sender="admin01", name="管理员", staff=True, chat=GROUP, chat_name="客户群", key=f"c{i}")
        sent = [d for d in h.sent if d.key.startswith(f"c{i}|")]  # the command's own deliveries
        private = [d for d in sent if d.kind == "app_message" and d.to == ["admin01"]]
        assert private, (name, [(d.kind, d.text) for d in sent])
        group = [d for d in sent if in_group(d)]
        assert [d.text for d in group] == [NOTICE], name
        assert group[0].destination.get("mention") == ["admin01"]
        if piece:
            assert any(piece in d.text for d in private), (name, [d.text for d in private])
        assert not [d for d in sent if d not in private and d not in group], name


async def test_a_confirmation_code_for_a_private_command_is_given_privately_and_works_in_the_group(
        h: Harness, tbot: BotApp) -> None:
    sent = await h.say("/tier recompute", sender="admin01", staff=True, chat=GROUP)
    (prompt,) = [d for d in sent if d.kind == "app_message"]
    code = next(w for w in prompt.text.replace("/confirm ", "/confirm\u0001").split("\u0001")[1:])[:4]
    assert code.isdigit() and all(code not in d.text for d in sent if in_group(d))
    sent = await h.say(f"/confirm {code}", sender="admin01", staff=True, chat=GROUP)
    assert [d.text for d in sent if in_group(d)] == [NOTICE]
    assert any(d.kind == "app_message" and d.to == ["admin01"] for d in sent)


async def test_public_commands_and_one_to_one_chats_answer_where_they_were_typed(h: Harness) -> None:
    sent = await h.say("/tier show @wmBob", sender="admin01", staff=True, group=False)
    assert [d.kind for d in sent] == ["reply"] and "Bob" in sent[0].text
    sent = await h.say("/tier rules", sender="wmBob", name="Bob", chat=GROUP)
    assert [d.kind for d in sent] == ["reply"] and sent[0].text != NOTICE
    # a member without the role is refused in the group, told nothing else, and no app message is attempted
    sent = await h.say("/alerts show 1", sender="wmBob", name="Bob", chat=GROUP)
    assert [d.kind for d in sent] == ["reply"] and "加我微信" not in sent[0].text


async def test_compliance_content_never_reaches_a_customer_group(h: Harness, tbot: BotApp, clock: FakeClock) -> None:
    """Alerts, escalations and the digest go to the compliance robot (by name, never the default key that
    customer groups' replies use) and to staff as app messages — never to a group chat."""
    await h.say("加我微信领红包 http://spam.example.com", sender="wmBob", name="Bob", chat=GROUP, mention=False)
    async with tbot.db.read() as s:
        rows = list((await s.execute(select(ALERTS))).all())
    assert {r.audience for r in rows} == {"staff", "customer"}
    clock.advance(timedelta(hours=2))
    await h.settle()  # escalation of the open reject alert
    clock.advance(timedelta(days=1))
    assert await tbot.scheduler.fire("moderation-digest", at=clock.now())
    await h.settle()
    alert_texts = [r.text for r in rows] + [r.term for r in rows]
    compliance = [d for d in h.sent if d.key.startswith("moderation:")]
    assert any(d.kind == "group_robot" for d in compliance)
    assert any("escalate" in d.key for d in compliance) and any("digest" in d.key for d in compliance)
    for d in compliance:
        if d.kind == "group_robot":
            assert d.destination["robot"] == "compliance" and d.destination.get("named_only") is True
            assert not d.chat_id and not d.chat
        else:
            assert d.kind == "app_message"
    for d in h.sent:
        if d.kind in ("reply", "group_robot", "appchat") and not d.key.startswith("moderation:"):
            assert not any(t and t in d.text for t in alert_texts if len(t) > 3), d.text


async def test_a_compliance_robot_without_its_own_key_is_refused_not_sent_with_the_default_key(
        trust_config: Config) -> None:
    from bot.senders.base import SendError
    from bot.senders.robot import GroupRobotClient

    posted: list[dict[str, object]] = []

    class Transport:
        async def request(self, method: str, url: str, **kw: object) -> dict[str, object]:
            posted.append(kw)
            return {"errcode": 0}

    cfg = trust_config.model_copy(update={"group_robot": trust_config.group_robot.model_copy(update={"keys": {}})})
    client = GroupRobotClient(cfg, Transport())  # type: ignore[arg-type]
    alert = Delivery(id=1, key="moderation:alert:x", kind="group_robot", chat_id="",
                     destination={"robot": "compliance", "named_only": True}, payload={"text": "预警"})
    with pytest.raises(SendError, match=r"group_robot\.keys\.compliance"):
        await client.send(alert)
    assert posted == []
    greeting = Delivery(id=2, key="k", kind="group_robot", chat_id="g9", destination={"chat": {"id": "g9"}},
                        payload={"text": "大家好"})
    await client.send(greeting)  # everything else still falls back to the default key
    assert posted and posted[0]["params"] == {"key": "customer-robot"}
