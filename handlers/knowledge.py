"""Knowledge base in chat: members' questions answered, operators' /kb commands.

Members ask in 1:1 chats, by @-mentioning the bot in a group, or with ``/ask``.
Whether and how the bot answers is decided in one place,
:meth:`bot.knowledge.answering.Answering.respond` (its docstring states the
rules: chatter, groups, ``group_auto``, cooldown, staff, threshold, suggestions, misses).
A number answers "did you mean" (priority 46, after a survey's score at 44: the
question asked last takes the number, bot.openquestions); answers run at priority 50
and block. The /kb commands each call one method of
:class:`bot.knowledge.service.KnowledgeService`.
"""

from __future__ import annotations

import re
from typing import Any

from bot.commands import Arg, strip_bot_mention
from bot.context import Context
from bot.events import MessageEvent
from bot.knowledge import KNOWLEDGE
from bot.roles import OPERATOR
from bot.routing import Predicate, Router, command_text
from bot.textnorm import fold

PICK_RX = re.compile(r"(?:第\s*)?([1-9一二三四五六七八九])\s*(?:个|条|项|号)?\s*[.。!！]?")
CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}

ADD_EXAMPLES = [
    "/kb add 怎么开发票 确认收货后在「订单详情-申请开票」填写抬头和税号即可～",
    "/kb add 怎么开发票\n确认收货后在订单详情里申请开票。\n需要专票请私信客服。",
    "/kb add\nid: invoice\n问题: 怎么开发票 | 能开专票吗\n关键词: 发票, 开票\n时间: 09:00-21:00\n"
    "答案:\n{{ member.name }}您好，确认收货后……",
]
EDIT_EXAMPLES = [
    "/kb edit invoice 答案 确认收货后 3 天内可以申请开票～",
    "/kb edit invoice +问题 发票怎么申请",
    "/kb edit invoice 关键词 发票, 开票, 税号",
    "/kb edit invoice 时间 09:00-18:00",
    "/kb edit invoice 等级 vip",
]


def _clean(event: MessageEvent, ctx: Context) -> str:
    return strip_bot_mention(event.text, ctx.app.bot_names).strip()


def _pick_number(text: str) -> int | None:
    m = PICK_RX.fullmatch(fold(text).strip())
    if not m:
        return None
    d = m.group(1)
    return CN_DIGITS[d] if d in CN_DIGITS else int(d)


def _is_pick(event: Any) -> bool:
    # A cheap pre-filter; the handler strips the bot's own name properly.
    return isinstance(event, MessageEvent) and _pick_number(re.sub(r"^\s*[@＠]\S+\s+", "", event.text)) is not None


is_question_text = Predicate(lambda e: isinstance(e, MessageEvent) and bool(e.text.strip())
                             and command_text(e.text) is None, "is_question_text")
is_pick_text = Predicate(_is_pick, "is_pick_text")
is_not_command = ~Predicate(lambda e: command_text(e.text) is not None, "command")

router = Router("knowledge")
router.describe("kb", "知识库：新增、修改、删除、查看、搜索知识，查看未答问题（运营）")
for alias, path in (("知识库", "kb"), ("问", "ask"), ("提问", "ask"), ("未答", "kb misses")):
    router.alias(alias, path)


# ── members ──

@router.message(is_pick_text & is_not_command, priority=46)
async def pick_suggestion(event: MessageEvent, ctx: Context) -> None:
    number = _pick_number(_clean(event, ctx))
    if number is not None:
        await ctx.get(KNOWLEDGE).answering.pick(ctx, event, number)


def _question(event: MessageEvent, app: Any) -> str | None:
    text = strip_bot_mention(event.text, app.bot_names).strip()
    if _pick_number(text) is not None or command_text(text) is not None:
        return None  # a number answers "did you mean" (priority 46); "@bot /cmd" is a command, not a question
    return text


async def match_first(event: MessageEvent, app: Any) -> Any:
    """Matching the question before the handler's transaction (and off the event loop)."""
    question = _question(event, app)
    return await app.get(KNOWLEDGE).answering.prepare(event, question) if question else None


@router.message(is_question_text, priority=50, block=True, prepare=match_first)
async def answer(event: MessageEvent, ctx: Context) -> None:
    question = _question(event, ctx.app)
    if question is not None:
        await ctx.get(KNOWLEDGE).answering.respond(ctx, event, question, prepared=ctx.prepared)


@router.command("ask", Arg("question", "问题", rest=True, optional=True),
                help="向知识库提问（群里不用 @ 也可以）", examples=["/ask 怎么退款", "/ask 直播几点开始"])
async def ask(event: MessageEvent, ctx: Context) -> None:
    question = (ctx.args["question"] or "").strip()
    if not question:
        await ctx.reply(ctx.render("knowledge/ask_usage.j2"))
        return
    await ctx.get(KNOWLEDGE).answering.respond(ctx, event, question, asked=True)


# ── operators ──

@router.command("kb add", Arg("content", "问题 答案", rest=True), roles=[OPERATOR], private=True,
                help="新增一条知识：一行写「问题 答案」；或第一行问题、后面几行答案；"
                     "或按「字段: 值」逐行写，答案放最后；"
                     "答案含合规词库的违规词（reject）不保存，敏感词（review）会提醒",
                examples=ADD_EXAMPLES)
async def kb_add(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).add(ctx, ctx.args["content"], actor=event.sender.id)


@router.command("kb edit", Arg("id", "id"), Arg("change", "字段 新值", rest=True), roles=[OPERATOR], private=True,
                help="修改一条知识的某个字段（答案、问题、+问题、-问题、关键词、匹配、优先级、时间、非服务时间回复、"
                     "群内自动、会话、群、等级；写 - 清空）；改文件里的条目会在数据库里保存一份覆盖版本",
                examples=EDIT_EXAMPLES)
async def kb_edit(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).edit(ctx, ctx.args["id"], ctx.args["change"], actor=event.sender.id)


@router.command("kb del", Arg("id", "id"), roles=[OPERATOR], private=True, confirm=True,
                help="删除一条知识（文件里的条目会被隐藏，/kb reset 可恢复）", examples=["/kb del invoice"])
async def kb_del(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).delete(ctx, ctx.args["id"], actor=event.sender.id)


@router.command("kb reset", Arg("id", "id"), roles=[OPERATOR], private=True,
                help="撤销群内对一条知识的修改或删除，恢复文件里的版本", examples=["/kb reset refund-policy"])
async def kb_reset(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).reset(ctx, ctx.args["id"], actor=event.sender.id)


@router.command("kb show", Arg("id", "id"), roles=[OPERATOR], private=True, help="查看一条知识的全部内容和来源",
                examples=["/kb show refund-policy"])
async def kb_show(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).show(ctx, ctx.args["id"])


@router.command("kb list", Arg("page", "页码", type="int", optional=True, default=1, min=1), roles=[OPERATOR],
                private=True,
                help="分页列出全部知识", examples=["/kb list", "/kb list 2"])
async def kb_list(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).list_page(ctx, ctx.args["page"])


@router.command("kb search", Arg("text", "问题", rest=True), roles=[OPERATOR], private=True,
                help="看一个问法会匹配到哪些知识：分数、匹配方式和原因", examples=["/kb search 退款多久到账"])
async def kb_search(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).search(ctx, ctx.args["text"])


@router.command("kb misses", Arg("days", "天数", type="int", optional=True, min=1, max=365), roles=[OPERATOR],
                private=True,
                help="成员问了但没答上的问题，相似问法归为一组，按次数排序",
                examples=["/kb misses", "/kb misses 7"])
async def kb_misses(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).misses(ctx, ctx.args["days"])


@router.command("kb reload", roles=[OPERATOR], private=True,
                help="立即重新加载知识库文件，并报告有错误的文件、行号和原因",
                examples=["/kb reload"])
async def kb_reload(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).reload_now(ctx)


@router.command("kb on", roles=[OPERATOR], where="group", help="在本群开启知识库自动回答（默认开启）",
                examples=["/kb on"])
async def kb_on(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).switch_group(ctx, event.chat.id, True, actor=event.sender.id)


@router.command("kb off", roles=[OPERATOR], where="group", help="在本群关闭知识库自动回答（成员仍可 /ask）",
                examples=["/kb off"])
async def kb_off(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(KNOWLEDGE).switch_group(ctx, event.chat.id, False, actor=event.sender.id)
