"""Chatter gets no reply and is no miss; short real questions are still answered; the optional greeting."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.cli import main
from bot.clock import FakeClock
from bot.config import Config
from bot.knowledge import store
from bot.knowledge.chatter import chatter_kind, parse_sections
from bot.knowledge.models import KbMiss
from bot.knowledge.text import Analyzer
from bot.testing import Harness

# Entries whose stored questions hold the words chatter is made of (收到, 消息, 打扰, 生日 …).
BASE = """\
- id: delivery-time
  questions: [发货后几天能收到, 快递多久能到]
  answer: 发货后 2-4 天送到
- id: mute-notice
  questions: [群消息太多了怎么办, 怎么设置免打扰]
  keywords: [免打扰]
  answer: 可以把群设成消息免打扰
- id: refund
  questions: [怎么退款, 退款流程是什么]
  answer: 7天内可以退款
- id: invoice
  questions: [怎么开发票, 能开专票吗]
  keywords: [发票]
  answer: 确认收货后申请开票
- id: live
  questions: [直播几点开始, 什么时候直播]
  keywords: [几点直播]
  group_auto: true
  answer: 每周三晚8点直播
- id: birthday
  questions: [生日有礼物吗, 会员生日有什么福利]
  answer: 生日当月送茶样
- id: class
  questions: [品鉴课怎么报名, 线下茶会在哪里]
  answer: 报名链接在群公告
"""

CHATTER = ["好的收到", "打扰了", "我来了", "不用了", "+1", "学到了", "收到", "好的", "大家好", "你好", "谢谢",
           "哈哈哈哈", "在吗", "👍", "🙏", "[微笑]", "晚安", "辛苦了", "明白", "ok", "嗯嗯", "你好，第17条消息",
           "收到发货了谢谢", "好的我看看退款", "生日快乐", "谢谢[抱拳]", "今天好忙"]


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kb"
    d.mkdir()
    write(d / "faq.yaml", BASE)
    return d


async def _harness(make_bot: Callable[..., BotApp], cfg: Config) -> AsyncIterator[Harness]:
    app = make_bot(cfg=cfg)
    await app.start()
    try:
        yield Harness(app)
    finally:
        await app.stop()


@pytest.fixture
async def h(make_bot: Callable[..., BotApp], make_config: Callable[..., Config],
            kb_dir: Path) -> AsyncIterator[Harness]:
    async for x in _harness(make_bot, make_config(KNOWLEDGE__DIR=str(kb_dir))):
        yield x


@pytest.fixture
async def greeter(make_bot: Callable[..., BotApp], make_config: Callable[..., Config],
                  kb_dir: Path) -> AsyncIterator[Harness]:
    cfg = make_config(KNOWLEDGE__DIR=str(kb_dir), KNOWLEDGE__GREETING="{{ member.name }}您好，有问题直接问我就好～")
    async for x in _harness(make_bot, cfg):
        yield x


async def misses(h: Harness) -> int:
    async with h.app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(KbMiss))).scalar_one())


async def test_chatter_gets_no_reply_anywhere_and_is_no_miss(h: Harness) -> None:
    for text in CHATTER:
        assert await h.say_texts(text, group=False) == [], text                        # 1:1
        assert await h.say_texts(text, mention=True) == [], text                       # group, @-mentioned
        assert await h.say_texts(text, mention=False, chat="g2") == [], text           # group, not mentioned
        assert await h.say_texts(f"/ask {text}", mention=False, chat="g3") == [], text  # /ask
    assert await misses(h) == 0


async def test_short_real_questions_are_still_answered(h: Harness) -> None:
    assert await h.say_texts("发票怎么开", group=False) == ["确认收货后申请开票"]
    assert await h.say_texts("几点直播", group=False) == ["每周三晚8点直播"]
    assert await h.say_texts("退款", group=False) == ["7天内可以退款"]
    assert await h.say_texts("快递多久能收到", group=False) == ["发货后 2-4 天送到"]
    # Chatter around a question does not hide it.
    assert await h.say_texts("你好 退款", group=False) == ["7天内可以退款"]
    assert await h.say_texts("好的，那什么时候直播？", mention=True) == ["每周三晚8点直播"]
    assert await h.say_texts("谢谢，发票怎么开", group=False) == ["确认收货后申请开票"]
    # A question nothing answers is still told so, and recorded.
    (text,) = await h.say_texts("你们卖咖啡吗", group=False)
    assert "暂时还答不上来" in text
    assert await misses(h) == 1


async def test_kb_misses_leaves_out_chatter_stored_before(h: Harness) -> None:
    now = h.app.clock.now()
    async with h.app.db.session() as s:
        for text in ("你好", "哈哈", "在吗", "谢谢", "你们卖咖啡吗"):
            await store.record_miss(s, text=text, norm=text, chat_id="g1", chat_type="group", member_id="wmA",
                                    member_name="A", outcome="none", best_entry="", best_score=0.0,
                                    now=now - timedelta(hours=1))
    (text,) = await h.admin("/kb misses", group=False)
    assert "咖啡" in text
    for chatter in ("你好", "哈哈", "在吗", "谢谢"):
        assert chatter not in text


async def test_kb_search_names_chatter(h: Harness) -> None:
    (text,) = await h.admin("/kb search 好的收到", group=False)
    assert "闲聊" in text


async def test_greeting_once_a_day_per_member_in_one_to_one(greeter: Harness, clock: FakeClock) -> None:
    h = greeter
    assert await h.say_texts("你好", group=False, name="小美") == ["小美您好，有问题直接问我就好～"]
    assert await h.say_texts("在吗", group=False, name="小美") == []           # once a day
    assert await h.say_texts("你好", group=False, sender="wmBob", name="Bob") == ["Bob您好，有问题直接问我就好～"]
    assert await h.say_texts("谢谢", group=False, sender="wmCarol") == []       # thanks is no greeting
    assert await h.say_texts("你好", mention=True) == []                        # groups: silence
    assert await h.say_texts("你好", group=False, sender="staff01", staff=True) == []
    clock.advance(24 * 3600)
    assert await h.say_texts("你好呀", group=False, name="小美") == ["小美您好，有问题直接问我就好～"]
    assert await misses(h) == 0


async def test_no_greeting_by_default(h: Harness) -> None:
    assert await h.say_texts("你好", group=False) == []


def test_kb_ask_json_on_chatter(kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("好的收到", "👍", "你好，第3条消息", "谢谢老师"):
        assert main(["kb", "ask", text, "--kb", str(kb_dir), "--json"]) == 0
        obj: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert obj["entry"] is None and obj["suggestions"] == [] and obj["mode"] == "chatter", text
    assert main(["kb", "ask", "发票怎么开", "--kb", str(kb_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entry"] == "invoice"


def test_a_knowledge_directory_adds_chatter_words(kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "ask", "直播打call", "--kb", str(kb_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entry"] == "live"
    write(kb_dir / "chatter.txt", "[称赞]\n打call\n")
    assert main(["kb", "ask", "直播打call", "--kb", str(kb_dir), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["mode"] == "chatter" and obj["entry"] is None


def test_chatter_file_problems_name_the_line() -> None:
    _, problems = parse_sections("好的\n[应答]\n嗯\n[寒暄]\n你好\n")
    assert [(p.line, "分组" in p.message) for p in problems] == [(1, True), (4, True)]


@pytest.mark.parametrize(("text", "kind"), [
    ("好的好的好的", "ack"), ("哈哈哈哈哈哈", "laughter"), ("[抱拳][抱拳]", "emoji"), ("ok thanks", "ack"),
    ("收到，茶很香", "ack"), ("谢谢老师的直播", "thanks"), ("您好 第2000条消息", "greeting"),
    ("收到了，盒子压坏了", None), ("好的，我想退货", None), ("你好 退款", None), ("好的，那退款多久到账", None),
    ("book", None), ("收到的时候盒子都压变形了", None),
])
def test_chatter_kinds(text: str, kind: str | None) -> None:
    assert chatter_kind(text, Analyzer()) == kind
