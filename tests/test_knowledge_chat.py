"""The knowledge base in chat: members' questions, group rules, "did you mean", and every /kb command."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.knowledge import KNOWLEDGE
from bot.knowledge.models import KbEntryRow, KbMiss
from bot.members import MEMBERS, MemberProfile
from bot.storage.models import AuditLog
from bot.testing import Harness

BASE = """\
- id: refund
  questions: [怎么退款, 退款流程是什么]
  keywords: [七天无理由]
  answer: "{{ member.name }}您好，收到商品7天内可以退款"
- id: refund-time
  questions: [退款多久到账]
  answer: 退款1-3个工作日到账
- id: points-earn
  questions: [积分怎么获得]
  answer: 打卡得积分
- id: points-use
  questions: [积分怎么兑换礼品]
  answer: 积分商城兑换
- id: points-expire
  questions: [积分会过期吗]
  answer: 积分次年底过期
- id: live
  questions: [直播几点开始, 什么时候直播]
  keywords: [几点直播]
  group_auto: true
  answer: 每周三晚8点直播
- id: rules
  questions: [群规是什么]
  scope: {chat: group}
  answer: "欢迎来到{{ group.name }}，不发广告"
- id: vip
  questions: [VIP专属福利有哪些]
  scope: {tiers: [vip]}
  answer: "{{ member.name }}的VIP福利：全年包邮"
- id: human
  match: contains
  keywords: [联系客服]
  active_hours: "09:00-21:00"
  off_hours: "{{ member.name }}，客服下班了"
  answer: 客服马上来
- id: wholesale
  questions: [可以批发吗]
  active_hours: "09:00-18:00"
  answer: 请联系商务
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


class Directory:
    """A tiers stand-in: profiles with a tier for some members."""

    def __init__(self) -> None:
        self.tiers: dict[str, str] = {"wmVip": "vip"}

    async def profile(self, session: Any, member_id: str) -> MemberProfile | None:
        tier = self.tiers.get(member_id)
        return MemberProfile(id=member_id, tier=tier, tier_name="茶师", points=1200) if tier else None


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kb"
    d.mkdir()
    write(d / "faq.yaml", BASE)
    write(d / "synonyms.txt", "退款 退钱\n多久 几天\n")
    return d


@pytest.fixture
def kb_config(make_config: Callable[..., Config], kb_dir: Path) -> Config:
    return make_config(KNOWLEDGE__DIR=str(kb_dir), KNOWLEDGE__GROUP_COOLDOWN_S="600",
                       KNOWLEDGE__SUGGESTION_TTL_S="300")


@pytest.fixture
async def h(make_bot: Callable[..., BotApp], kb_config: Config) -> AsyncIterator[Harness]:
    app = make_bot(cfg=kb_config)
    app.provide(MEMBERS, Directory())
    await app.start()
    try:
        yield Harness(app)
    finally:
        await app.stop()


async def dm(h: Harness, text: str, **kw: Any) -> list[str]:
    return await h.say_texts(text, group=False, **kw)


async def count(h: Harness, model: Any) -> int:
    async with h.app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def operator(h: Harness, text: str, **kw: Any) -> list[str]:
    kw.setdefault("group", False)
    return await h.admin(text, **kw)


# ── members ──

async def test_one_to_one_answer_renders_the_member(h: Harness) -> None:
    assert await dm(h, "怎麼退款？", name="小美") == ["小美您好，收到商品7天内可以退款"]
    assert await dm(h, "退钱要几天到账", mention=False) == ["退款1-3个工作日到账"]
    # Staff writing 1:1 without addressing the bot (an archived conversation) get nothing.
    assert await dm(h, "退款多久到账", mention=False, sender="staff01", staff=True) == []


async def test_group_answers_only_when_mentioned_unless_group_auto(h: Harness) -> None:
    assert await h.say_texts("怎么退款", mention=False) == []
    replies = await h.say("@小域 怎么退款", mention=True)
    assert [d.text for d in replies] == ["Alice您好，收到商品7天内可以退款"]
    assert replies[0].destination.get("mention") == ["wmAlice"]
    # group_auto: a clear question about live sessions is answered without a mention …
    assert await h.say_texts("请问今晚几点直播呀？", mention=False, chat="g2") == ["每周三晚8点直播"]
    # … but not a remark that merely contains the keyword, nor an unclear question.
    assert await h.say_texts("几点直播的那个链接我发了", mention=False, chat="g3") == []


async def test_never_the_same_answer_twice_in_a_group_within_the_cooldown(h: Harness, clock: FakeClock) -> None:
    assert await h.say_texts("什么时候直播？", mention=False) == ["每周三晚8点直播"]
    assert await h.say_texts("直播几点开始呢", mention=False, sender="wmBob") == []   # silent repeat
    (note,) = await h.say_texts("直播几点开始", sender="wmCarol")                    # asked directly: a pointer
    assert "刚刚在群里回答过" in note and "每周三" not in note
    assert await h.say_texts("直播几点开始", chat="g2") == ["每周三晚8点直播"]          # other groups unaffected
    clock.advance(601)
    assert await h.say_texts("直播几点开始？", mention=False) == ["每周三晚8点直播"]


async def test_staff_only_when_asked_directly(h: Harness) -> None:
    assert await h.say_texts("什么时候直播？", mention=False, sender="staff01", staff=True) == []
    assert await h.say_texts("怎么退款", mention=False, sender="staff01", staff=True) == []
    assert await h.say_texts("退款多久到账", mention=True, sender="staff01", staff=True) == ["退款1-3个工作日到账"]
    assert await h.say_texts("/ask 退款多久到账", mention=False, sender="staff01", staff=True, chat="g2") == \
        ["退款1-3个工作日到账"]


async def test_group_switch_off_and_on(h: Harness) -> None:
    (text,) = await h.admin("/kb off")
    assert "已关闭" in text
    assert await h.say_texts("怎么退款") == []
    assert await h.say_texts("什么时候直播？", mention=False) == []
    assert await h.say_texts("/ask 怎么退款") == ["Alice您好，收到商品7天内可以退款"]   # explicit still works
    assert await h.say_texts("怎么退款", chat="g2") != []                             # only this group
    (text,) = await h.admin("/kb off")
    assert "本来就是关闭的" in text
    (text,) = await h.admin("/kb on")
    assert "已开启" in text
    assert await h.say_texts("退款多久到账") == ["退款1-3个工作日到账"]
    (text,) = await operator(h, "/kb on")
    assert "只能在群聊中使用" in text


async def test_ask_command(h: Harness) -> None:
    assert await h.say_texts("/ask 退款多久到账", mention=False) == ["退款1-3个工作日到账"]
    (text,) = await dm(h, "/ask")
    assert "/ask 怎么退款" in text


async def test_scopes_chat_and_tier(h: Harness) -> None:
    assert await h.say_texts("群规是什么", chat_name="禾屿茶友会") == ["欢迎来到禾屿茶友会，不发广告"]
    (text,) = await dm(h, "群规是什么")
    assert "不发广告" not in text
    (text,) = await dm(h, "VIP专属福利有哪些")
    assert "全年包邮" not in text
    assert await dm(h, "VIP专属福利有哪些", sender="wmVip", name="阿禾") == ["阿禾的VIP福利：全年包邮"]


async def test_active_hours_with_off_hours_answer_and_fallback(h: Harness, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))   # 11:00 in Shanghai
    assert await dm(h, "怎么联系客服") == ["客服马上来"]
    assert await dm(h, "可以批发吗") == ["请联系商务"]
    clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))  # 22:00 in Shanghai
    assert await dm(h, "怎么联系客服", name="小美") == ["小美，客服下班了"]
    (text,) = await dm(h, "可以批发吗", name="小美")
    assert "09:00-18:00" in text and "请联系商务" not in text


async def test_did_you_mean_numbered_follow_up(h: Harness) -> None:
    (text,) = await dm(h, "积分")
    assert "1." in text and "2." in text and "3." in text
    lines = {int(m.group(1)): m.group(2) for m in re.finditer(r"(\d)\. (.+)", text)}
    expected = {"积分怎么获得": "打卡得积分", "积分怎么兑换礼品": "积分商城兑换", "积分会过期吗": "积分次年底过期"}
    assert await dm(h, "２") == [expected[lines[2]]]       # full-width digit
    assert await dm(h, "2") == []                           # the offer is used up
    (miss,) = await (lambda: _misses(h))()
    assert miss.outcome == "suggested" and miss.picked_entry is not None


async def _misses(h: Harness) -> list[Any]:
    async with h.app.db.read() as s:
        return list((await s.execute(select(KbMiss.__table__))).all())


async def test_did_you_mean_expires_and_range(h: Harness, clock: FakeClock) -> None:
    await dm(h, "积分")
    (text,) = await dm(h, "7")
    assert "1-3" in text
    clock.advance(301)
    (text,) = await dm(h, "第1个")
    assert "过期" in text
    assert await dm(h, "1") == []


async def test_did_you_mean_in_a_group_is_per_member(h: Harness) -> None:
    (text,) = await h.say_texts("积分")
    assert "1." in text
    assert await h.say_texts("1", sender="wmBob", mention=False) == []
    assert len(await h.say_texts("1", mention=False)) == 1


async def test_unanswered_questions_are_recorded_and_grouped(h: Harness) -> None:
    asked = [("wmA", "你们卖咖啡吗"), ("wmB", "你们卖咖啡吗？"), ("wmC", "有卖咖啡的吗"), ("wmD", "明天天气如何")]
    for who, q in asked:
        (text,) = await dm(h, q, sender=who)
        assert "暂时还答不上来" in text
    assert await count(h, KbMiss) == 4
    (text,) = await operator(h, "/kb misses")
    assert "4 条" in text and "×3" in text and "3 人" in text and "×1" in text
    assert text.index("咖啡") < text.index("天气")
    # Unprompted group chatter is never a miss.
    await h.say_texts("大家晚上好", mention=False)
    assert await count(h, KbMiss) == 4
    # Once an entry answers it, the group leaves the list.
    await operator(h, "/kb add 你们卖咖啡吗 我们只卖茶，不卖咖啡")
    (text,) = await operator(h, "/kb misses")
    assert "咖啡" not in text and "现在已经能回答" in text


# ── operators ──

async def test_kb_commands_need_the_operator_role(h: Harness) -> None:
    for cmd in ("/kb add 问 答", "/kb list", "/kb reload", "/kb misses", "/kb del refund"):
        (text,) = await dm(h, cmd)
        assert "需要" in text and "权限" in text, cmd
    assert await count(h, KbEntryRow) == 0
    await h.admin("/role grant @op1 operator")
    (text,) = await dm(h, "/kb list", sender="op1", staff=True)
    assert "知识库共" in text
    async with h.app.db.read() as s:
        denied = (await s.execute(select(AuditLog.__table__.c.outcome).where(
            AuditLog.__table__.c.actor == "wmAlice"))).scalars().all()
    assert "denied" in denied


async def test_kb_add_single_line_multi_line_and_labelled(h: Harness) -> None:
    (text,) = await operator(h, "/kb add 怎么开发票 确认收货后在订单详情申请开票")
    assert "已新增知识 kai-fa-piao" in text
    assert await dm(h, "怎么开发票") == ["确认收货后在订单详情申请开票"]
    (text,) = await operator(h, "/kb add 能开专票吗\n可以开专票。\n请私信客服提供资料。")
    assert "已新增" in text
    assert await dm(h, "能开专票吗") == ["可以开专票。\n请私信客服提供资料。"]
    (text,) = await operator(h, "/kb add\nid: gift\n问题: 送礼买哪个 | 有礼盒吗\n关键词: 礼盒\n时间: 09:00-21:00\n"
                                "群内自动: 是\n答案:\n{{ member.name }}，推荐山海礼盒\n附手提袋")
    assert "已新增知识 gift" in text
    assert await dm(h, "想买个礼盒送人", name="小美") == ["小美，推荐山海礼盒\n附手提袋"]
    (text,) = await operator(h, "/kb show gift")
    assert "送礼买哪个 | 有礼盒吗" in text and "09:00-21:00" in text and "群内自动回复：是" in text
    assert await count(h, KbEntryRow) == 3


@pytest.mark.parametrize("command", [
    "/kb add",                                       # nothing
    "/kb add 只有问题",                                # no answer
    "/kb add\nid: x\n问题: 测试\n答案: {{ member.name }",  # template error
    "/kb add\nid: bad id\n问题: 测试\n答案: 好",          # bad id
    "/kb add\n颜色: 红\n答案: 好",                       # unknown label
    "/kb add\nid: refund\n问题: 另一个\n答案: 好",        # id taken by a file entry
])
async def test_kb_add_bad_input_changes_nothing(h: Harness, command: str) -> None:
    (text,) = await operator(h, command)
    assert text.startswith("❌") and "/kb add" in text
    assert await count(h, KbEntryRow) == 0


async def test_kb_edit_a_file_entry_overrides_it_and_survives_reloads(h: Harness, kb_dir: Path,
                                                                      clock: FakeClock) -> None:
    (text,) = await operator(h, "/kb edit refund-time 答案 退款 1 个工作日内到账")
    assert "已修改" in text and "覆盖文件" in text
    assert await dm(h, "退款多久到账") == ["退款 1 个工作日内到账"]
    (text,) = await operator(h, "/kb edit refund-time +问题 钱什么时候退回来")
    assert await dm(h, "钱什么时候退回来") == ["退款 1 个工作日内到账"]
    (text,) = await operator(h, "/kb edit refund-time -问题 钱什么时候退回来")
    assert "钱什么时候退回来" not in text
    write(kb_dir / "faq.yaml", BASE.replace("退款1-3个工作日到账", "文件里的新版本"))
    (text,) = await operator(h, "/kb reload")
    assert "重新加载" in text
    assert await dm(h, "退款多久到账") == ["退款 1 个工作日内到账"]     # the override stays
    (text,) = await operator(h, "/kb show refund-time")
    assert "覆盖文件" in text and "/kb reset refund-time" in text
    (text,) = await operator(h, "/kb reset refund-time")
    assert "已恢复为文件" in text
    assert await dm(h, "退款多久到账") == ["文件里的新版本"]


@pytest.mark.parametrize(("command", "needle"), [
    ("/kb edit nosuch 答案 x", "没有 id 为 nosuch"),
    ("/kb edit refund 颜色 红", "不认识的字段"),
    ("/kb edit refund 优先级 高", "优先级应是整数"),
    ("/kb edit refund 匹配 fuzzy", "match 只能是"),
    ("/kb edit refund 时间 早上", "HH:MM-HH:MM"),
    ("/kb edit refund -问题 不存在的问法", "没有这个问题"),
    ("/kb edit refund id other", "id 不能修改"),
    ("/kb edit refund", "缺少参数"),
])
async def test_kb_edit_bad_input_changes_nothing(h: Harness, command: str, needle: str) -> None:
    (text,) = await operator(h, command)
    assert needle in text and text.startswith("❌")
    assert await count(h, KbEntryRow) == 0
    assert await dm(h, "怎么退款") == ["Alice您好，收到商品7天内可以退款"]


async def test_kb_del_asks_for_confirmation_and_hides_a_file_entry(h: Harness) -> None:
    (prompt,) = await operator(h, "/kb del refund")
    code = re.search(r"/confirm (\d{4})", prompt).group(1)
    assert await count(h, KbEntryRow) == 0
    (text,) = await operator(h, f"/confirm {code}")
    assert "已删除知识 refund" in text and "/kb reset refund" in text
    (text,) = await dm(h, "怎么退款")
    assert "7天内可以退款" not in text
    (text,) = await operator(h, "/kb show refund")
    assert "已删除" in text
    (text,) = await operator(h, "/kb del nosuch")
    code = re.search(r"/confirm (\d{4})", text).group(1)
    (text,) = await operator(h, f"/confirm {code}")
    assert "没有 id 为 nosuch" in text
    await operator(h, "/kb reset refund")
    assert await dm(h, "怎么退款") == ["Alice您好，收到商品7天内可以退款"]


async def test_kb_del_a_chat_entry(h: Harness) -> None:
    await operator(h, "/kb add 怎么开发票 在订单详情申请")
    (prompt,) = await operator(h, "/kb del kai-fa-piao")
    code = re.search(r"/confirm (\d{4})", prompt).group(1)
    await operator(h, f"/confirm {code}")
    (text,) = await dm(h, "怎么开发票")
    assert "在订单详情申请" not in text
    (text,) = await operator(h, "/kb add 怎么开发票 新的答案")      # the id may be used again
    assert "已新增知识 kai-fa-piao" in text


async def test_kb_show_list_and_search(h: Harness) -> None:
    (text,) = await operator(h, "/kb show refund")
    assert "faq.yaml:1" in text and "怎么退款 | 退款流程是什么" in text and "七天无理由" in text
    (text,) = await operator(h, "/kb show nosuch")
    assert "没有 id 为 nosuch" in text
    (text,) = await operator(h, "/kb list")
    assert "共 10 条" in text and "第 1/1 页" in text and "refund — 怎么退款" in text
    (text,) = await operator(h, "/kb list 2")
    assert "只有 1 页" in text
    (text,) = await operator(h, "/kb list 二")
    assert "页码 应是整数" in text
    (text,) = await operator(h, "/kb search 退钱要几天")
    assert "refund-time" in text and "bm25" in text and "共同的词" in text and "成员这样问会得到" in text
    (text,) = await operator(h, "/kb search 几点直播")
    assert "命中关键词：几点直播" in text
    (text,) = await operator(h, "/kb search 积分")
    assert "您是不是想问" in text


async def test_live_reload_keeps_serving_the_old_version_of_a_broken_file(h: Harness, kb_dir: Path,
                                                                         clock: FakeClock) -> None:
    kb = h.app.get(KNOWLEDGE)
    before = kb.matcher
    write(kb_dir / "faq.yaml", BASE.replace("每周三晚8点直播", "每周五晚8点直播"))
    assert await dm(h, "直播几点开始") == ["每周三晚8点直播"]   # not yet: the poll interval has not passed
    clock.advance(3)
    await h.settle()
    assert kb.matcher is not before
    assert await dm(h, "直播几点开始") == ["每周五晚8点直播"]
    serving = kb.matcher
    write(kb_dir / "faq.yaml", BASE + "- id: broken\n  questions: [坏]\n  answer: {{ x }\n")
    clock.advance(3)
    await h.settle()
    assert kb.matcher is serving                                   # nothing swapped
    assert await dm(h, "直播几点开始") == ["每周五晚8点直播"]
    (text,) = await operator(h, "/kb reload")
    assert "faq.yaml:" in text and "出错的文件继续使用上一版本" in text
    write(kb_dir / "extra.yaml", "- id: extra\n  questions: [新文件]\n  answer: 新文件里的答案\n")
    (text,) = await operator(h, "/kb reload")
    assert "extra.yaml" in text and await dm(h, "新文件") == ["新文件里的答案"]


async def test_chat_changes_reach_other_replicas(h: Harness, make_bot: Callable[..., BotApp],
                                                 kb_config: Config, clock: FakeClock) -> None:
    other = make_bot(cfg=kb_config)
    await other.start()
    try:
        await operator(h, "/kb add 怎么开发票 在订单详情申请")
        kb2 = other.get(KNOWLEDGE)
        await other.settle()
        assert "kai-fa-piao" not in kb2.matcher.by_id   # until its next poll
        clock.advance(3)
        await other.settle()
        assert "kai-fa-piao" in kb2.matcher.by_id
    finally:
        await other.stop()


async def test_help_kb_lists_every_command_with_examples(h: Harness) -> None:
    text = "\n".join(await operator(h, "/help kb"))
    for sub in ("add", "edit", "del", "show", "list", "search", "misses", "reload", "on", "off", "reset"):
        assert f"/kb {sub}" in text
    assert text.count("例：") >= 11


@pytest.mark.parametrize(("command", "needle"), [
    ("/kb show", "缺少参数"),
    ("/kb del", "缺少参数"),
    ("/kb reset", "缺少参数"),
    ("/kb reset nosuch", "没有 id 为 nosuch"),
    ("/kb search", "缺少参数"),
    ("/kb misses 七", "天数 应是整数"),
    ("/kb misses 0", "不能小于"),
    ("/kb list 0", "不能小于"),
    ("/kb reload now", "多余的参数"),
    ("/kb frobnicate", "没有子命令 frobnicate"),
])
async def test_kb_bad_arguments_get_usage_and_change_nothing(h: Harness, command: str, needle: str) -> None:
    text = "\n".join(await operator(h, command))   # a long help may come in two messages
    assert needle in text, text
    assert await count(h, KbEntryRow) == 0


async def test_reset_of_an_unchanged_file_entry_says_so(h: Harness) -> None:
    (text,) = await operator(h, "/kb reset refund")
    assert "没有群内修改" in text
    assert await count(h, KbEntryRow) == 0


async def test_mentioned_command_is_not_taken_for_a_question(h: Harness) -> None:
    await h.say_texts("@小域 /whoami")
    assert await count(h, KbMiss) == 0


async def test_a_group_switched_in_a_batch_or_by_another_replica_is_seen_by_the_next_question(
        h: Harness, make_bot: Callable[..., BotApp], kb_config: Config) -> None:
    """The groups switched off are read once per transaction: a switch in the same batch is seen by the
    events after it, and a switch committed by another replica by the next batch."""
    app = h.app
    for text, sender in (("怎么退款", "wmAlice"), ("/kb off", "admin01"), ("退款多久到账", "wmAlice")):
        await app.accept_event(h.message(text, sender=sender, staff=sender == "admin01"))
    assert await app.inbox_pump.drain_once() == 3  # one batch
    texts = [d.text for d in await h.settle()]
    assert texts[0] == "Alice您好，收到商品7天内可以退款" and "已关闭" in texts[1] and len(texts) == 2

    other = make_bot(cfg=kb_config)  # a second replica on the same database switches the group back on
    other.provide(MEMBERS, Directory())
    await other.start()
    try:
        await other.accept_event(h.message("/kb on", sender="admin01", staff=True))
        await other.settle()
        assert await h.say_texts("退款多久到账") == ["退款1-3个工作日到账"]
        await other.accept_event(h.message("/kb off", sender="admin01", staff=True))
        await other.settle()
        assert await h.say_texts("退款多久到账") == []
    finally:
        await other.stop()
