"""Compliance: staff messages to customers watched for sensitive words; customers' ads and spam in groups.

The watcher is an observer at priority 5: it runs in its own transaction, never
blocks and never answers in the chat, so a failure there leaves the answer path
alone. Reviewers work the alerts with ``/alerts``; admins grow the lexicon with
``/word``. The service is ``bot.compliance.service.Moderation``; where an alert
goes is ``bot.compliance.alerts.AlertRouting.route``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.commands import Arg
from bot.compliance import MODERATION
from bot.compliance.alerts import LEVEL_MARK, STAGE_LABEL, STATUS_LABEL
from bot.compliance.service import Observed
from bot.context import Context
from bot.events import MessageEvent
from bot.roles import ADMIN, REVIEWER
from bot.routing import Router, command_text
from moderation.lexicon import LEVELS, check_term_text
from moderation.matcher import Hit, Matcher

__all__ = ["MODERATION", "router"]

router = Router("moderation")
router.describe("alerts", "合规预警：查看、确认、处理、标记误报（合规审核）")
router.describe("word", "敏感词库：添加、删除、允许词、查看（管理员）")
for alias, path in (("告警", "alerts"), ("预警", "alerts"), ("alerts list", "alerts open"), ("敏感词", "word")):
    router.alias(alias, path)

PAGE = Arg("page", "页码", type="int", optional=True, default=1, min=1)
ALERT_ID = Arg("id", "编号", type="int", min=1)


# ── the watcher ──
async def scan_first(event: MessageEvent, app: Any) -> tuple[Matcher, list[Hit]] | None:
    """The scan of a message costs time in proportion to its length: off the event loop, before the
    transaction opens (Router.on(prepare=…)); the watcher reads it as ``ctx.prepared``."""
    if command_text(event.text) is not None:
        return None
    matcher = app.get(MODERATION).matcher
    return matcher, await asyncio.to_thread(matcher.scan, event.text)


@router.message(priority=5, prepare=scan_first)
async def watch(event: MessageEvent, ctx: Context) -> None:
    if command_text(event.text) is not None:
        return  # /word add 私下联系 加我微信 is an admin at work, not a violation
    await ctx.get(MODERATION).observe(ctx, Observed.from_event(event, frozenset(ctx.config.bot.staff_ids)),
                                      ctx.prepared)


# ── reviewers ──
async def listing(ctx: Context, scope: str, page: int) -> None:
    found = await ctx.get(MODERATION).alerts_page(ctx.session, scope, page)
    await ctx.reply(ctx.render("moderation/alerts_list.j2", **found, mark=LEVEL_MARK, statuses=STATUS_LABEL))


@router.command("alerts", roles=[REVIEWER], private=True, help="查看待处理的合规预警（第 1 页）")
async def alerts_default(event: MessageEvent, ctx: Context) -> None:
    await listing(ctx, "open", 1)


@router.command("alerts open", PAGE, roles=[REVIEWER], private=True, help="待处理的预警，最新的在前",
                examples=["/alerts open", "/alerts open 2"])
async def alerts_open(event: MessageEvent, ctx: Context) -> None:
    await listing(ctx, "open", ctx.args["page"])


@router.command("alerts all", PAGE, roles=[REVIEWER], private=True,
                help="全部预警（含已处理、误报）", examples=["/alerts all 3"])
async def alerts_all(event: MessageEvent, ctx: Context) -> None:
    await listing(ctx, "all", ctx.args["page"])


@router.command("alerts show", ALERT_ID, roles=[REVIEWER], private=True,
                help="一条预警的全部信息：谁、在哪、何时、命中什么、为什么、上文", examples=["/alerts show 12"])
async def alerts_show(event: MessageEvent, ctx: Context) -> None:
    row = await ctx.get(MODERATION).alert(ctx.session, ctx.args["id"])
    if row is None:
        await ctx.reply(ctx.render("moderation/alert_done.j2", found=False, id=ctx.args["id"]))
        return
    await ctx.reply(ctx.render("moderation/alert_show.j2", a=row, mark=LEVEL_MARK, stages=STAGE_LABEL,
                               statuses=STATUS_LABEL))


async def change(ctx: Context, event: MessageEvent, action: str, note: str = "") -> None:
    done = await ctx.get(MODERATION).change_alert(ctx.session, ctx.args["id"], action, event.sender.id, note)
    await ctx.reply(ctx.render("moderation/alert_done.j2", found=done.found, changed=done.changed, id=ctx.args["id"],
                               action=action, note=note, statuses=STATUS_LABEL, term=done.term,
                               category=done.category, status=done.status, proposal=done.proposal))


@router.command("alerts ack", ALERT_ID, Arg("note", "备注", rest=True, optional=True, default=""), roles=[REVIEWER],
                private=True, help="确认收到一条预警（停止升级提醒），可附备注",
                examples=["/alerts ack 12", "/alerts ack 12 已联系员工"])
async def alerts_ack(event: MessageEvent, ctx: Context) -> None:
    await change(ctx, event, "ack", ctx.args["note"] or "")


@router.command("alerts resolve", ALERT_ID, Arg("note", "备注", rest=True, optional=True, default=""),
                roles=[REVIEWER], private=True, help="标记一条预警已处理，可附备注",
                examples=["/alerts resolve 12 已提醒员工，客户已道歉"])
async def alerts_resolve(event: MessageEvent, ctx: Context) -> None:
    await change(ctx, event, "resolve", ctx.args["note"] or "")


@router.command("alerts fp", ALERT_ID, Arg("note", "说明", rest=True, optional=True, default=""), roles=[REVIEWER],
                private=True,
                help="标记误报：记录下来，并建议一个允许词", examples=["/alerts fp 12 说的是微信支付"])
async def alerts_fp(event: MessageEvent, ctx: Context) -> None:
    await change(ctx, event, "fp", ctx.args["note"] or "")


# ── admins: the lexicon ──
async def word_problem(ctx: Context, path: str, problem: str) -> None:
    spec = ctx.app.commands.specs[tuple(path.split())]
    await ctx.reply(ctx.render("moderation/word_problem.j2", problem=problem, usage=spec.usage))


async def checked_term(ctx: Context, path: str) -> str | None:
    """The command's term, stripped; None (and the problem told) when it is not a usable term."""
    _, problem = check_term_text(ctx.args["term"])
    if problem:
        await word_problem(ctx, path, problem)
        return None
    return str(ctx.args["term"]).strip()


@router.command("word add", Arg("category", "分类"), Arg("term", "词"),
                Arg("level", "级别", type="choice", choices=LEVELS, optional=True, default="reject"),
                roles=[ADMIN], private=True, help="添加敏感词（默认 reject），立即对所有副本生效",
                examples=["/word add 私下联系 加我私人号", "/word add 广告法/夸大宣传 秒杀全网 review",
                          "/word add 竞品 某某茶 info"])
async def word_add(event: MessageEvent, ctx: Context) -> None:
    if (term := await checked_term(ctx, "word add")) is None:
        return
    svc = ctx.get(MODERATION)
    category = ctx.args["category"].strip()[:64]
    existed = await svc.add_word(ctx.session, event.sender.id, category, term, ctx.args["level"])
    ctx.after_commit(svc.words_changed)
    await ctx.reply(ctx.render("moderation/word_done.j2", action="add", term=term, category=category,
                               level=ctx.args["level"], existed=existed))


@router.command("word allow", Arg("category", "分类"), Arg("term", "允许词"), roles=[ADMIN], private=True,
                help="添加允许词：覆盖命中的允许词会取消这次命中（如 微信支付）",
                examples=["/word allow 私下联系 微信支付"])
async def word_allow(event: MessageEvent, ctx: Context) -> None:
    if (term := await checked_term(ctx, "word allow")) is None:
        return
    svc = ctx.get(MODERATION)
    category = ctx.args["category"].strip()[:64]
    await svc.allow_word(ctx.session, event.sender.id, category, term)
    ctx.after_commit(svc.words_changed)
    await ctx.reply(ctx.render("moderation/word_done.j2", action="allow", term=term, category=category))


@router.command("word del", Arg("term", "词"), Arg("category", "分类", optional=True, default=""),
                roles=[ADMIN], private=True, help="删除敏感词或允许词（文件里的词也会被隐藏）",
                examples=["/word del 加我私人号", "/word del 微信 私下联系"])
async def word_del(event: MessageEvent, ctx: Context) -> None:
    if (term := await checked_term(ctx, "word del")) is None:
        return
    svc = ctx.get(MODERATION)
    category = ctx.args["category"].strip()
    removed = await svc.delete_word(ctx.session, event.sender.id, term, category)
    if removed:
        ctx.after_commit(svc.words_changed)
    await ctx.reply(ctx.render("moderation/word_done.j2", action="del", term=term, category=category,
                               removed=removed))


@router.command("word list", Arg("category", "分类", optional=True, default=""), roles=[ADMIN], private=True,
                help="词库概况，或某个分类的全部词", examples=["/word list", "/word list 私下联系"])
async def word_list(event: MessageEvent, ctx: Context) -> None:
    svc = ctx.get(MODERATION)
    lexicon = svc.matcher.lexicon
    category = ctx.args["category"].strip()
    if not category:
        await ctx.reply(ctx.render("moderation/word_list.j2", category="", version=lexicon.version,
                                   total=lexicon.size, counts=svc.term_counts(), problems=svc.problems))
        return
    terms, allow = svc.category_words(category)
    if not terms and not allow:
        known = "、".join(sorted(lexicon.categories))
        await word_problem(ctx, "word list", f"没有分类「{category}」。现有分类：{known}")
        return
    await ctx.reply(ctx.render("moderation/word_list.j2", category=category, terms=terms, allow=allow,
                               description=lexicon.categories.get(category, ""), mark=LEVEL_MARK))
