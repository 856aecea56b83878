"""Knowledge base in chat: members' questions answered, operators' /kb commands.

Members ask in 1:1 chats, by @-mentioning the bot in a group, or with ``/ask``.
In groups the bot also answers unprompted, but only questions that match an
entry marked ``group_auto`` outright; it never repeats an answer in the same
group within the cooldown, never answers staff unless asked directly, and stays
quiet in groups switched off with ``/kb off`` (``/ask`` still works there).
When unsure it offers numbered suggestions the member can answer with a number
(priority 25, a follow-up); questions it could not answer are stored for
``/kb misses``. Answers run at priority 50 and block.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.commands import Arg, CommandError, strip_bot_mention
from bot.context import Context
from bot.events import MessageEvent
from bot.knowledge import KNOWLEDGE, KnowledgeBase, store
from bot.knowledge.answers import render_answer
from bot.knowledge.chatform import apply_edit, fields_to_data, parse_add
from bot.knowledge.entry import Entry, Source, Where
from bot.knowledge.loader import EntryInvalid, entry_from_data
from bot.knowledge.matcher import MatchSettings
from bot.knowledge.misses import group_misses
from bot.knowledge.text import looks_like_question
from bot.members import MemberProfile, profile_of
from bot.pump import Reloader
from bot.roles import OPERATOR
from bot.routing import Predicate, Router, command_text
from bot.textnorm import fold

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.knowledge")

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


def settings_of(app: BotApp) -> MatchSettings:
    return MatchSettings.from_config(app.config.knowledge)


def _clean(event: MessageEvent, app: BotApp) -> str:
    return strip_bot_mention(event.text, app.bot_names).strip()


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


class Answering:
    """Answering one member's message: scope, rules, rendering, suggestions, misses."""

    def __init__(self, app: BotApp, kb: KnowledgeBase) -> None:
        self.app = app
        self.kb = kb
        self.cfg = app.config.knowledge

    def where(self, event: MessageEvent, profile: MemberProfile) -> Where:
        return Where(chat=event.chat.type, chat_id=event.chat.id, chat_name=event.chat.name, tier=profile.tier,
                     tier_name=profile.tier_name)

    def render(self, entry: Entry, profile: MemberProfile, event: MessageEvent, now: datetime) -> str:
        chat = event.chat
        group = {"id": chat.id, "name": chat.name, "type": chat.type} if chat.is_group else \
            {"id": "", "name": "", "type": "single"}
        return render_answer(self.app.templates, self.app.config.bot.tz, entry, profile.for_template(), group, now)

    async def deliver(self, ctx: Context, event: MessageEvent, entry: Entry, profile: MemberProfile, *,
                      direct: bool) -> bool:
        """Send ``entry``'s answer unless it was just given in this group; True if sent."""
        now = ctx.now()
        group = event.chat.is_group
        if group and self.cfg.group_cooldown_s:
            last = await store.answered_recently(ctx.session, event.chat.id, entry.id,
                                                 now - timedelta(seconds=self.cfg.group_cooldown_s))
            if last is not None:
                if direct:
                    minutes = int((now - last).total_seconds() // 60)
                    await ctx.reply(ctx.render("knowledge/cooldown.j2", minutes=minutes, title=entry.title),
                                    mention=True)
                return False
        if group:
            await store.mark_answered(ctx.session, event.chat.id, entry.id, now)
        await ctx.reply(self.render(entry, profile, event, now), mention=group)
        return True

    async def respond(self, ctx: Context, event: MessageEvent, question: str, *, direct: bool,
                      explicit: bool = False) -> None:
        app = self.app
        if not question:
            return
        chat = event.chat
        if chat.is_group and not explicit and not await store.group_enabled(ctx.session, chat.id):
            return
        if event.sender.staff and not direct:
            return
        profile = await profile_of(app, ctx.session, event.sender)
        result = self.kb.matcher.match(question, self.where(event, profile))
        if not direct:
            # Unprompted in a group: only a clear answer of a group_auto entry, and only to a question.
            found = result.answer
            if found is not None and found.entry.group_auto and looks_like_question(question, found.keywords):
                await self.deliver(ctx, event, found.entry, profile, direct=False)
            return
        if result.answer is not None:
            await self.deliver(ctx, event, result.answer.entry, profile, direct=True)
            return
        now = ctx.now()
        suggestions = list(result.suggestions) if self.cfg.max_suggestions else []
        best = result.candidates[0] if result.candidates else None
        miss_id = await store.record_miss(
            ctx.session, text=question, norm=self.kb.matcher.analyzer.canon(question), chat_id=chat.id,
            chat_type=chat.type, member_id=event.sender.id, member_name=profile.name or event.sender.name,
            outcome="suggested" if suggestions else "none", best_entry=best.entry.id if best else "",
            best_score=best.score if best else 0.0, now=now)
        name = profile.for_template()["name"]
        if suggestions:
            await store.offer(ctx.session, chat_id=chat.id, member_id=event.sender.id, question=question,
                              entries=[s.entry.id for s in suggestions], miss_id=miss_id, now=now,
                              ttl_s=self.cfg.suggestion_ttl_s)
            await ctx.reply(ctx.render("knowledge/did_you_mean.j2", name=name, suggestions=suggestions,
                                       minutes=max(1, self.cfg.suggestion_ttl_s // 60)), mention=chat.is_group)
        else:
            await ctx.reply(ctx.render("knowledge/no_answer.j2", name=name), mention=chat.is_group)

    async def pick(self, ctx: Context, event: MessageEvent, number: int) -> None:
        offer = await store.pending_offer(ctx.session, event.chat.id, event.sender.id)
        if offer is None:
            return
        if offer.expires_at <= ctx.now():
            await store.drop_offer(ctx.session, offer.id)
            await ctx.reply(ctx.render("knowledge/pick_expired.j2"), mention=event.chat.is_group)
            return
        if number > len(offer.entries):
            await ctx.reply(ctx.render("knowledge/pick_out_of_range.j2", count=len(offer.entries)),
                            mention=event.chat.is_group)
            return
        await store.drop_offer(ctx.session, offer.id)
        entry = self.kb.matcher.by_id.get(offer.entries[number - 1])
        if entry is None:
            await ctx.reply(ctx.render("knowledge/pick_gone.j2"), mention=event.chat.is_group)
            return
        if offer.miss_id:
            await store.mark_picked(ctx.session, offer.miss_id, entry.id)
        profile = await profile_of(self.app, ctx.session, event.sender)
        await self.deliver(ctx, event, entry, profile, direct=True)


def setup(app: BotApp) -> Router:
    cfg = app.config.knowledge
    kb = KnowledgeBase(app.config.resolve(cfg.dir), settings=settings_of(app), check=app.templates.check)
    app.provide(KNOWLEDGE, kb)
    async def reload(files: bool) -> bool:
        return (await kb.refresh(app.db, files=files)).rebuilt

    # Files every reload_interval_s; the database rows at once when a /kb command changed them.
    reloader = Reloader("knowledge-reload", app.clock, cfg.reload_interval_s, reload)
    app.pumps.append(reloader)
    answering = Answering(app, kb)

    async def load_on_start() -> None:
        report = await kb.refresh(app.db, force=True)
        reloader.looked()
        for p in report.problems:
            log.error("knowledge problem: %s", p)

    app.on_startup.append(load_on_start)

    async def prune(_fire_time: Any) -> None:
        async with app.db.session() as s:
            offers, misses = await store.prune(s, app.clock.now(), cfg.misses_retention_days)
        log.info("knowledge prune: %d expired suggestions, %d old misses", offers, misses)

    app.scheduler.add_cron("knowledge-prune", prune, hour=4, minute=41)

    router = Router("knowledge")
    router.describe("kb", "知识库：新增、修改、删除、查看、搜索知识，查看未答问题（运营）")

    # ── members ──
    @router.message(is_pick_text & ~Predicate(lambda e: command_text(e.text) is not None, "command"),
                    priority=25)
    async def pick_suggestion(event: MessageEvent, ctx: Context) -> None:
        number = _pick_number(_clean(event, ctx.app))
        if number is not None:
            await answering.pick(ctx, event, number)

    @router.message(is_question_text, priority=50, block=True)
    async def answer(event: MessageEvent, ctx: Context) -> None:
        text = _clean(event, ctx.app)
        if _pick_number(text) is not None or command_text(text) is not None:
            return  # a number answers "did you mean" (priority 25); "@bot /cmd" is a command, not a question
        # A member writing to the bot 1:1 is always asking it; staff only when they address it.
        direct = event.mentions_bot or (not event.chat.is_group and not event.sender.staff)
        await answering.respond(ctx, event, text, direct=direct)

    @router.command("ask", Arg("question", "问题", rest=True, optional=True),
                    help="向知识库提问（群里不用 @ 也可以）", examples=["/ask 怎么退款", "/ask 直播几点开始"])
    async def ask(event: MessageEvent, ctx: Context) -> None:
        question = (ctx.args["question"] or "").strip()
        if not question:
            await ctx.reply(ctx.render("knowledge/ask_usage.j2"))
            return
        await answering.respond(ctx, event, question, direct=True, explicit=True)

    # ── operators ──
    async def form_error(ctx: Context, path: str, problem: str, problems: list[str] | None = None) -> None:
        spec = ctx.app.commands.specs[tuple(path.split())]
        await ctx.reply(ctx.render("knowledge/form_error.j2", problem=problem, problems=problems or [],
                                   usage=spec.usage, examples=spec.examples))

    def actor(event: MessageEvent) -> str:
        return event.sender.id

    async def current(ctx: Context, entry_id: str) -> tuple[dict[str, Any] | None, Any, Entry | None]:
        """(the entry's data as it serves now, its database row, the file entry) — from the database itself."""
        row = await store.row_of(ctx.session, entry_id)
        file_entry = kb.file_entry(entry_id)
        if row is not None and row.state == "active":
            return dict(row.data), row, file_entry
        if row is not None and row.state == "deleted":
            return None, row, file_entry
        return (file_entry.to_data() if file_entry else None), row, file_entry

    def new_id(question: str, taken: set[str]) -> str:
        """A readable id from the question's pinyin ("怎么开发票" → kai-fa-piao), made unique."""
        from pypinyin import lazy_pinyin

        analyzer = kb.matcher.analyzer
        words = [w for w in analyzer.tokenizer.cut(analyzer.prepare(question), HMM=False)
                 if w.strip() and w not in analyzer.stopwords] or [question]
        parts = [p for p in lazy_pinyin("".join(words)) if re.fullmatch(r"[a-z0-9]+", p)]
        base = "-".join(parts)[:40].strip("-") or "kb"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def duplicate_questions(entry: Entry) -> list[str]:
        analyzer = kb.matcher.analyzer
        warnings = []
        for q in entry.questions:
            key = analyzer.canon(q)
            for other in kb.matcher.entries:
                if other.id != entry.id and any(analyzer.canon(x) == key for x in other.questions):
                    warnings.append(f"问法「{q}」和 {other.id} 的问法相同，成员这样问时会按优先级选一条")
        return warnings

    @router.command("kb add", Arg("content", "问题 答案", rest=True), roles=[OPERATOR],
                    help="新增一条知识：一行写「问题 答案」；或第一行问题、后面几行答案；"
                         "或按「字段: 值」逐行写，答案放最后",
                    examples=ADD_EXAMPLES)
    async def kb_add(event: MessageEvent, ctx: Context) -> None:
        try:
            fields = parse_add(ctx.args["content"])
        except CommandError as exc:
            await form_error(ctx, "kb add", exc.message)
            return
        data = fields_to_data(fields)
        rows = await store.load_entries(ctx.session)
        file_ids = {e.id for e in kb.files.entries} if kb.files is not None else set()
        if "id" in data:
            eid = data["id"]
            row = rows.get(eid)
            exists = (row.state == "active") if row is not None else eid in file_ids
            if row is not None and row.state == "reset":
                exists = eid in file_ids
            if exists:
                await form_error(ctx, "kb add", f"id {eid} 已经存在，修改请用 /kb edit {eid} …")
                return
        else:
            first = (data.get("questions") or data.get("keywords"))[0]
            data = {"id": new_id(first, set(rows) | file_ids), **data}
        try:
            entry = entry_from_data(data, Source("db"), check=ctx.app.templates.check)
        except EntryInvalid as exc:
            await form_error(ctx, "kb add", "这条知识有问题，没有保存：", [p.message for p in exc.problems])
            return
        await store.save_entry(ctx.session, entry, actor=actor(event), now=ctx.now())
        ctx.after_commit(reloader.request)
        await ctx.reply(ctx.render("knowledge/saved.j2", action="已新增", entry=entry, note="保存在数据库",
                                   warnings=duplicate_questions(entry)))

    @router.command("kb edit", Arg("id", "id"), Arg("change", "字段 新值", rest=True), roles=[OPERATOR],
                    help="修改一条知识的某个字段（答案、问题、+问题、-问题、关键词、匹配、优先级、时间、非服务时间回复、"
                         "群内自动、会话、群、等级；写 - 清空）；改文件里的条目会在数据库里保存一份覆盖版本",
                    examples=EDIT_EXAMPLES)
    async def kb_edit(event: MessageEvent, ctx: Context) -> None:
        eid = ctx.args["id"]
        data, _, file_entry = await current(ctx, eid)
        if data is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        try:
            changed = apply_edit(data, ctx.args["change"])
        except CommandError as exc:
            await form_error(ctx, "kb edit", exc.message)
            return
        overrides = ""
        if file_entry is not None:
            overrides = f"{file_entry.source.path}:{file_entry.source.line}"
        try:
            entry = entry_from_data(changed, Source("db", overrides=overrides), check=ctx.app.templates.check)
        except EntryInvalid as exc:
            await form_error(ctx, "kb edit", "改完以后这条知识有问题，没有保存：", [p.message for p in exc.problems])
            return
        await store.save_entry(ctx.session, entry, actor=actor(event), now=ctx.now(), overrides=overrides)
        ctx.after_commit(reloader.request)
        note = f"覆盖文件 {overrides} 的版本，文件重新加载也保留；/kb reset {eid} 可撤销" if overrides else "已保存"
        await ctx.reply(ctx.render("knowledge/saved.j2", action="已修改", entry=entry, note=note,
                                   warnings=duplicate_questions(entry)))

    @router.command("kb del", Arg("id", "id"), roles=[OPERATOR], confirm=True,
                    help="删除一条知识（文件里的条目会被隐藏，/kb reset 可恢复）", examples=["/kb del invoice"])
    async def kb_del(event: MessageEvent, ctx: Context) -> None:
        eid = ctx.args["id"]
        data, _, file_entry = await current(ctx, eid)
        if data is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        await store.set_state(ctx.session, eid, "deleted", actor=actor(event), now=ctx.now(), data=data)
        ctx.after_commit(reloader.request)
        await ctx.reply(ctx.render("knowledge/deleted.j2", id=eid,
                                   from_file=file_entry.source.path if file_entry else ""))

    @router.command("kb reset", Arg("id", "id"), roles=[OPERATOR],
                    help="撤销群内对一条知识的修改或删除，恢复文件里的版本", examples=["/kb reset refund-policy"])
    async def kb_reset(event: MessageEvent, ctx: Context) -> None:
        eid = ctx.args["id"]
        row = await store.row_of(ctx.session, eid)
        if row is None or row.state == "reset":
            if kb.file_entry(eid) is None:
                await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            else:
                await ctx.reply(ctx.render("knowledge/reset.j2", id=eid, restored="", unchanged=True))
            return
        await store.set_state(ctx.session, eid, "reset", actor=actor(event), now=ctx.now())
        ctx.after_commit(reloader.request)
        file_entry = kb.file_entry(eid)
        await ctx.reply(ctx.render("knowledge/reset.j2", id=eid, unchanged=False,
                                   restored=f"{file_entry.source.path}:{file_entry.source.line}" if file_entry
                                   else ""))

    @router.command("kb show", Arg("id", "id"), roles=[OPERATOR], help="查看一条知识的全部内容和来源",
                    examples=["/kb show refund-policy"])
    async def kb_show(event: MessageEvent, ctx: Context) -> None:
        eid = ctx.args["id"]
        data, row, file_entry = await current(ctx, eid)
        if data is None and row is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        entry = None
        if data is not None:
            try:
                entry = entry_from_data(data, Source("db"))
            except EntryInvalid:
                entry = file_entry
        hint = ""
        if row is not None and row.state == "deleted":
            source = f"已在群内删除（{row.updated_by}）"
            hint = f"/kb reset {eid} 恢复文件版本" if file_entry else ""
            entry = None
        elif row is not None and row.state == "active":
            when = row.updated_at.astimezone(ctx.app.config.bot.tz).strftime("%Y-%m-%d %H:%M")
            source = f"数据库（{row.updated_by} 于 {when} 修改）"
            if file_entry:
                source += f"，覆盖文件 {file_entry.source.path}:{file_entry.source.line}"
                hint = f"/kb reset {eid} 恢复文件版本"
        else:
            source = f"文件 {file_entry.source.path}:{file_entry.source.line}" if file_entry else "数据库"
        await ctx.reply(ctx.render("knowledge/show.j2", id=eid, entry=entry, source=source,
                                   state=row.state if row is not None else "file", hint=hint))

    @router.command("kb list", Arg("page", "页码", type="int", optional=True, default=1, min=1), roles=[OPERATOR],
                    help="分页列出全部知识", examples=["/kb list", "/kb list 2"])
    async def kb_list(event: MessageEvent, ctx: Context) -> None:
        entries = kb.matcher.entries
        size = cfg.page_size
        pages = max(1, (len(entries) + size - 1) // size)
        page = ctx.args["page"]
        if page > pages:
            await form_error(ctx, "kb list", f"只有 {pages} 页")
            return
        db_count = sum(1 for e in entries if e.source.kind == "db")
        await ctx.reply(ctx.render("knowledge/list.j2", entries=entries[(page - 1) * size: page * size],
                                   total=len(entries), files=len(entries) - db_count, db=db_count, page=page,
                                   pages=pages))

    @router.command("kb search", Arg("text", "问题", rest=True), roles=[OPERATOR],
                    help="看一个问法会匹配到哪些知识：分数、匹配方式和原因", examples=["/kb search 退款多久到账"])
    async def kb_search(event: MessageEvent, ctx: Context) -> None:
        text = ctx.args["text"]
        result = kb.matcher.match(text)
        verdict = "answer" if result.answer else ("suggest" if result.suggestions else "none")
        await ctx.reply(ctx.render("knowledge/search.j2", text=text, verdict=verdict, answer=result.answer,
                                   candidates=result.candidates[:5], threshold=kb.settings.threshold))

    @router.command("kb misses", Arg("days", "天数", type="int", optional=True, min=1, max=365), roles=[OPERATOR],
                    help="成员问了但没答上的问题，相似问法归为一组，按次数排序",
                    examples=["/kb misses", "/kb misses 7"])
    async def kb_misses(event: MessageEvent, ctx: Context) -> None:
        days = ctx.args["days"] or cfg.misses_days
        rows = await store.recent_misses(ctx.session, ctx.now() - timedelta(days=days))
        groups = group_misses(rows, kb.matcher.analyzer)
        open_groups, answerable = [], 0
        for g in groups:
            if kb.matcher.match(g.text).answer is not None:
                answerable += 1
            else:
                open_groups.append(g)
        await ctx.reply(ctx.render("knowledge/misses.j2", groups=open_groups[: cfg.misses_top], days=days,
                                   total=sum(g.count for g in open_groups), open=len(open_groups),
                                   answerable=answerable))

    @router.command("kb reload", roles=[OPERATOR], help="立即重新加载知识库文件，并报告有错误的文件、行号和原因",
                    examples=["/kb reload"])
    async def kb_reload(event: MessageEvent, ctx: Context) -> None:
        report = await kb.refresh(ctx.app.db, force=True)
        reloader.looked()
        await ctx.reply(ctx.render("knowledge/reload.j2", r=report))

    async def switch(event: MessageEvent, ctx: Context, enabled: bool) -> None:
        changed = await store.set_group(ctx.session, event.chat.id, enabled, actor=actor(event), now=ctx.now())
        await ctx.reply(ctx.render("knowledge/group_switch.j2", enabled=enabled, changed=changed,
                                   bot=ctx.app.config.bot.name))

    @router.command("kb on", roles=[OPERATOR], where="group", help="在本群开启知识库自动回答（默认开启）",
                    examples=["/kb on"])
    async def kb_on(event: MessageEvent, ctx: Context) -> None:
        await switch(event, ctx, True)

    @router.command("kb off", roles=[OPERATOR], where="group", help="在本群关闭知识库自动回答（成员仍可 /ask）",
                    examples=["/kb off"])
    async def kb_off(event: MessageEvent, ctx: Context) -> None:
        await switch(event, ctx, False)

    return router
