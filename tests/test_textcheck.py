"""The bot's own texts against the compliance lexicon before they go out: knowledge answers, SOP steps, the
Moments calendar and /moments set; the shipped example content holds no reject term."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.cli import main
from bot.compliance.config import ModerationConfig
from bot.config import Config
from bot.knowledge.answers import answer_check, lexicon_warnings
from bot.knowledge.files import KnowledgeFiles
from bot.knowledge.models import KbEntryRow
from bot.sop.files import ScriptFiles
from bot.sop.moments import calendar_findings, load_calendar
from bot.templates import Templates
from bot.testing import Harness
from bot.textcheck import LexiconCheck, matcher_for, staff_categories
from handlers import FEATURES
from moderation.lexicon import lexicon_from_dir
from tests.sop_support import REPO, at, edit, posts, sop_config, started

SH = ZoneInfo("Asia/Shanghai")
CURE = "第 1 行：文案含违规词“包治百病”（广告法/夸大宣传，reject）"


def repo_lexicon() -> LexiconCheck:
    lexicon, problems = lexicon_from_dir(REPO / "moderation" / "lexicons")
    assert problems == []
    cfg = ModerationConfig()
    matcher = matcher_for(cfg, lexicon)
    return LexiconCheck(lambda: matcher, staff_categories(cfg))


def templates() -> Templates:
    from bot.knowledge.answers import TEMPLATES

    return Templates(SH, [TEMPLATES])


def test_a_finding_names_its_line_term_category_and_level() -> None:
    lexicon = repo_lexicon()
    (cure,) = lexicon.findings("您好\n口感醇厚\n这款茶包治百病")
    assert str(cure) == "第 3 行：文案含违规词“包治百病”（广告法/夸大宣传，reject）" and cure.refuses
    (best,) = lexicon.findings("我们的茶是最好的")
    assert str(best) == "第 1 行：文案含敏感词“最好的”（广告法/夸大宣传，review）" and not best.refuses
    assert lexicon.findings("欢迎来群里喝茶聊天") == []


def test_the_shipped_example_content_holds_no_reject_term() -> None:
    lexicon = repo_lexicon()
    tpl = templates()
    kb = KnowledgeFiles(REPO / "knowledge_base", check=answer_check(tpl, lambda: lexicon))
    assert kb.refresh(force=True).problems == [] and len(kb.entries) > 50
    assert [w for e in kb.entries for w in lexicon_warnings(tpl, lexicon, e)] == []
    scripts = ScriptFiles(REPO / "sop_templates", templates=tpl, exclude=("moments.yaml",), lexicon=lexicon)
    assert scripts.refresh(force=True).problems == [] and len(scripts.scripts) >= 5
    calendar = load_calendar(REPO / "sop_templates" / "moments.yaml", templates=tpl,
                             templates_dir=REPO / "sop_templates" / "templates")
    assert calendar.week and calendar_findings(calendar, tpl, lexicon) == []


def test_a_reject_term_refuses_a_script_and_a_knowledge_file(tmp_path: Path) -> None:
    lexicon = repo_lexicon()
    tpl = templates()
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "faq.yaml").write_text(textwrap.dedent("""\
        - id: health
          questions: [这茶有什么功效]
          answer: |
            {{ member.name }}您好：
            这款茶包治百病哦
        """), encoding="utf-8")
    kb = KnowledgeFiles(kb_dir, check=answer_check(tpl, lambda: lexicon))
    (problem,) = kb.refresh(force=True).problems
    assert problem.line == 5
    assert problem.message == "条目 health：answer 第 2 行：文案含违规词“包治百病”（广告法/夸大宣传，reject）"
    # without a lexicon the same file loads
    assert KnowledgeFiles(kb_dir, check=answer_check(tpl)).refresh(force=True).problems == []
    sop_dir = shutil.copytree(REPO / "sop_templates", tmp_path / "sop")
    edit(sop_dir / "first-order-care.yaml", "也一样受理。", "也一样受理。这茶包治百病。")
    scripts = ScriptFiles(sop_dir, templates=tpl, exclude=("moments.yaml",), lexicon=lexicon)
    (problem,) = scripts.refresh(force=True).problems
    assert "first-order-care.yaml" in problem.path
    assert "文案含违规词“包治百病”（广告法/夸大宣传，reject）" in problem.message


def test_kb_check_and_sop_check_refuse_reject_and_warn_of_review(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    faq = ("- id: cure\n  questions: [功效]\n  answer: 这款茶包治百病\n"
           "- id: best\n  questions: [哪款好]\n  answer: 我们的茶是最好的\n")
    (kb_dir / "faq.yaml").write_text(faq, encoding="utf-8")
    assert main(["kb", "check", str(kb_dir)]) == 1
    out = capsys.readouterr().out
    assert f"faq.yaml:3: 条目 cure：answer {CURE}" in out
    assert main(["kb", "check", str(kb_dir), "--no-lexicon"]) == 0
    capsys.readouterr()
    edit(kb_dir / "faq.yaml", "包治百病", "口感醇厚")
    assert main(["kb", "check", str(kb_dir)]) == 0
    out = capsys.readouterr().out
    assert "⚠ " in out and "条目 best：answer 第 1 行：文案含敏感词“最好的”（广告法/夸大宣传，review）" in out
    sop_dir = shutil.copytree(REPO / "sop_templates", tmp_path / "sop")
    edit(sop_dir / "moments.yaml", "这周也一起好好喝茶、好好生活", "这周也一起好好喝茶，喝了能降血压")
    assert main(["sop", "check", str(sop_dir)]) == 0  # a calendar slot is held, not refused
    out = capsys.readouterr().out
    assert ("时段 monday-0830（08:30）第 2 行：文案含违规词“能降血压”（广告法/夸大宣传，reject）"
            "；发布前需要 /moments approve 审批") in out
    edit(sop_dir / "first-order-care.yaml", "也一样受理。", "也一样受理。这茶包治百病。")
    assert main(["sop", "check", str(sop_dir)]) == 1
    assert "文案含违规词“包治百病”" in capsys.readouterr().out


# ── in chat ──

@pytest.fixture
async def h(make_bot: Callable[..., BotApp], make_config: Callable[..., Config], tmp_path: Path) -> Harness:
    (tmp_path / "kb").mkdir()
    app = make_bot(cfg=make_config(KNOWLEDGE__DIR=str(tmp_path / "kb")))
    await app.start()
    return Harness(app)


async def entries(app: BotApp) -> int:
    async with app.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(KbEntryRow))).scalar_one())


async def test_kb_add_and_edit_refuse_a_reject_term_and_warn_of_a_review_term(h: Harness) -> None:
    (text,) = await h.admin("/kb add 这茶有什么功效 这款茶包治百病", group=False)
    assert "没有保存" in text and CURE in text
    (text,) = await h.admin("/kb add 怎么喝\n先用热水温杯\n喝了能降血压", group=False)
    assert "第 2 行：文案含违规词“能降血压”（广告法/夸大宣传，reject）" in text
    assert await entries(h.app) == 0
    (text,) = await h.admin("/kb add\nid: best\n问题: 哪款茶好\n答案:\n我们的茶是最好的", group=False)
    assert "已新增" in text and "⚠️ answer 第 1 行：文案含敏感词“最好的”（广告法/夸大宣传，review）" in text
    (text,) = await h.admin("/kb edit best 答案 这款茶包治百病", group=False)
    assert "没有保存" in text and CURE in text
    (text,) = await h.admin("/kb show best", group=False)
    assert "最好的" in text and "包治百病" not in text


async def test_without_the_compliance_feature_nothing_is_checked(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Config], tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    app = make_bot(cfg=make_config(KNOWLEDGE__DIR=str(tmp_path / "kb")),
                   features=[f for f in FEATURES if getattr(f, "name", "") != "moderation"])
    await app.start()
    (text,) = await Harness(app).admin("/kb add 这茶有什么功效 这款茶包治百病", group=False)
    assert "已新增" in text and await entries(app) == 1


async def calendar_bot(make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> Harness:
    d = shutil.copytree(REPO / "sop_templates", tmp_path / "s")
    edit(d / "moments.yaml", "这周也一起好好喝茶、好好生活", "这周也一起好好喝茶，喝了能降血压")
    return Harness(await started(make_bot, sop_config(make_config, d, moments=True)))


async def test_a_calendar_slot_with_a_reject_term_waits_for_approval(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    h = await calendar_bot(make_config, make_bot, tmp_path)
    at(h.app.clock, 2026, 11, 23, 7, 0)
    held = "第 2 行：文案含违规词“能降血压”（广告法/夸大宣传，reject）"
    (text,) = await h.admin("/moments week", group=False)
    assert "【11-23 周一】 · 待审批：/moments approve 2026-11-23" in text
    assert f"08:30 早安茶语 · 待审批（{held}）" in text
    assert "【11-24 周二】\n" in text  # other days need no approval (approval is off)
    (text,) = await h.admin("/moments reload", group=False)
    assert f"时段 monday-0830（08:30）{held}；发布前需要 /moments approve 审批" in text
    at(h.app.clock, 2026, 11, 23, 8, 30)
    assert not [d for d in await h.settle() if d.key.startswith("moment:2026-11-23:monday-0830")]
    assert await posts(h.app) == []
    await h.admin("/moments approve 2026-11-23", group=False)
    at(h.app.clock, 2026, 11, 23, 8, 40)
    await h.settle()
    (sent,) = [d for d in h.app.sender.deliveries if d.key.startswith("moment:")]  # type: ignore[attr-defined]
    assert sent.key == "moment:2026-11-23:monday-0830" and "能降血压" in sent.text


async def test_moments_set_refuses_a_reject_term_and_warns_of_a_review_term(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    d = shutil.copytree(REPO / "sop_templates", tmp_path / "s")
    h = Harness(await started(make_bot, sop_config(make_config, d, moments=True)))
    at(h.app.clock, 2026, 11, 23, 7, 0)
    (text,) = await h.admin("/moments set 周三 12:00 午休喝杯茶，这款茶包治百病", group=False)
    assert "文案没有保存：第 1 行：文案含违规词“包治百病”（广告法/夸大宣传，reject）" in text
    (text,) = await h.admin("/moments week", group=False)
    assert "包治百病" not in text
    (text,) = await h.admin("/moments set 周三 12:00 午休喝杯茶，我们的白茶是最好的", group=False)
    assert "已设置每周三 12:00" in text
    assert "⚠️ 第 1 行：文案含敏感词“最好的”（广告法/夸大宣传，review）（提醒，已保存）" in text
