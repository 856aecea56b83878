"""The knowledge base's use cases: members' questions (through :class:`~bot.knowledge.answering.Answering`)
and the operators' ``/kb`` commands, one method each. handlers/knowledge.py calls them.

Entries made or changed in chat are database rows (:mod:`bot.knowledge.store`);
a change is saved in the handler's transaction and the matcher is rebuilt once
it committed (``reloader.request``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.commands import CommandError
from bot.knowledge import store
from bot.knowledge.answering import Answering
from bot.knowledge.answers import lexicon_warnings
from bot.knowledge.chatform import apply_edit, fields_to_data, parse_add
from bot.knowledge.chatter import CHATTER_NAMES, is_chatter
from bot.knowledge.entry import Entry, Source
from bot.knowledge.loader import EntryInvalid, entry_from_data
from bot.knowledge.misses import group_misses
from bot.pump import Reloader
from bot.textcheck import TEXT_CHECK

if TYPE_CHECKING:
    from bot.context import Context
    from bot.knowledge.base import KnowledgeBase
    from bot.knowledge.config import KnowledgeConfig
    from bot.knowledge.matcher import Matcher

log = logging.getLogger("siyu.knowledge")


class KnowledgeService:
    """The knowledge base in service: the live entries (``base``), answering, and the /kb operations."""

    def __init__(self, app: Any, base: KnowledgeBase, cfg: KnowledgeConfig) -> None:
        self.app = app
        self.base = base
        self.cfg = cfg
        # Files every reload_interval_s; the database rows at once when a /kb command changed them.
        self.reloader = Reloader("knowledge-reload", app.clock, cfg.reload_interval_s, self.reload)
        self.answering = Answering(app, base, cfg)

    @property
    def matcher(self) -> Matcher:
        """The matcher in service (swapped whole on every reload)."""
        return self.base.matcher

    # ── lifecycle ──
    async def load_on_start(self) -> None:
        report = await self.base.refresh(self.app.db, force=True)
        self.reloader.looked()
        for p in report.problems:
            log.error("knowledge problem: %s", p)

    async def reload(self, files: bool) -> bool:
        """The reloader's work: files when the interval came round, database rows when a command changed them."""
        return (await self.base.refresh(self.app.db, files=files)).rebuilt

    async def prune(self, _fire_time: Any) -> None:
        async with self.app.db.session() as s:
            offers, misses = await store.prune(s, self.app.clock.now(), self.cfg.misses_retention_days)
        log.info("knowledge prune: %d expired suggestions, %d old misses", offers, misses)

    # ── operators ──
    async def add(self, ctx: Context, content: str, *, actor: str) -> None:
        """``/kb add``: a new database entry from one of the three chat forms."""
        try:
            fields = parse_add(content)
        except CommandError as exc:
            await form_error(ctx, "kb add", exc.message)
            return
        data = fields_to_data(fields)
        rows = await store.load_entries(ctx.session)
        file_ids = {e.id for e in self.base.files.entries} if self.base.files is not None else set()
        if "id" in data:
            eid = data["id"]
            row = rows.get(eid)
            exists = eid in file_ids if row is None or row.state == "reset" else row.state == "active"
            if exists:
                await form_error(ctx, "kb add", f"id {eid} 已经存在，修改请用 /kb edit {eid} …")
                return
        else:
            first = (data.get("questions") or data.get("keywords"))[0]
            data = {"id": self.new_id(first, set(rows) | file_ids), **data}
        try:
            # the answer is tried (a budgeted render): off the event loop
            entry = await asyncio.to_thread(entry_from_data, data, Source("db"), check=self.base.check)
        except EntryInvalid as exc:
            await form_error(ctx, "kb add", "这条知识有问题，没有保存：", [p.message for p in exc.problems])
            return
        await store.save_entry(ctx.session, entry, actor=actor, now=ctx.now())
        ctx.after_commit(self.reloader.request)
        await ctx.reply(ctx.render("knowledge/saved.j2", action="已新增", entry=entry, note="保存在数据库",
                                   warnings=await self.warnings(entry)))

    async def edit(self, ctx: Context, eid: str, change: str, *, actor: str) -> None:
        """``/kb edit``: one field changed; a file entry gets a database version that overrides it."""
        data, _, file_entry = await self.current(ctx.session, eid)
        if data is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        try:
            changed = apply_edit(data, change)
        except CommandError as exc:
            await form_error(ctx, "kb edit", exc.message)
            return
        overrides = f"{file_entry.source.path}:{file_entry.source.line}" if file_entry is not None else ""
        try:
            entry = await asyncio.to_thread(entry_from_data, changed, Source("db", overrides=overrides),
                                            check=self.base.check)
        except EntryInvalid as exc:
            await form_error(ctx, "kb edit", "改完以后这条知识有问题，没有保存：", [p.message for p in exc.problems])
            return
        await store.save_entry(ctx.session, entry, actor=actor, now=ctx.now(), overrides=overrides)
        ctx.after_commit(self.reloader.request)
        note = f"覆盖文件 {overrides} 的版本，文件重新加载也保留；/kb reset {eid} 可撤销" if overrides else "已保存"
        await ctx.reply(ctx.render("knowledge/saved.j2", action="已修改", entry=entry, note=note,
                                   warnings=await self.warnings(entry)))

    async def delete(self, ctx: Context, eid: str, *, actor: str) -> None:
        """``/kb del``: a ``deleted`` row (hides a file entry until ``/kb reset``)."""
        data, _, file_entry = await self.current(ctx.session, eid)
        if data is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        await store.set_state(ctx.session, eid, "deleted", actor=actor, now=ctx.now(), data=data)
        ctx.after_commit(self.reloader.request)
        await ctx.reply(ctx.render("knowledge/deleted.j2", id=eid,
                                   from_file=file_entry.source.path if file_entry else ""))

    async def reset(self, ctx: Context, eid: str, *, actor: str) -> None:
        """``/kb reset``: the file version serves again (the row becomes inert)."""
        row = await store.row_of(ctx.session, eid)
        file_entry = self.base.file_entry(eid)
        if row is None or row.state == "reset":
            if file_entry is None:
                await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            else:
                await ctx.reply(ctx.render("knowledge/reset.j2", id=eid, restored="", unchanged=True))
            return
        await store.set_state(ctx.session, eid, "reset", actor=actor, now=ctx.now())
        ctx.after_commit(self.reloader.request)
        restored = f"{file_entry.source.path}:{file_entry.source.line}" if file_entry else ""
        await ctx.reply(ctx.render("knowledge/reset.j2", id=eid, unchanged=False, restored=restored))

    async def show(self, ctx: Context, eid: str) -> None:
        """``/kb show``: the entry as it serves, and where that version comes from."""
        data, row, file_entry = await self.current(ctx.session, eid)
        if data is None and row is None:
            await ctx.reply(ctx.render("knowledge/not_found.j2", id=eid))
            return
        entry = None
        if data is not None:
            try:
                entry = entry_from_data(data, Source("db"))
            except EntryInvalid:
                entry = file_entry
        where = f"{file_entry.source.path}:{file_entry.source.line}" if file_entry else ""
        hint = ""
        if row is not None and row.state == "deleted":
            source = f"已在群内删除（{row.updated_by}）"
            hint = f"/kb reset {eid} 恢复文件版本" if file_entry else ""
            entry = None
        elif row is not None and row.state == "active":
            source = f"数据库（{row.updated_by} 于 {self._local(row.updated_at)} 修改）"
            if file_entry:
                source += f"，覆盖文件 {where}"
                hint = f"/kb reset {eid} 恢复文件版本"
        else:
            source = f"文件 {where}" if file_entry else "数据库"
        await ctx.reply(ctx.render("knowledge/show.j2", id=eid, entry=entry, source=source,
                                   state=row.state if row is not None else "file", hint=hint))

    async def list_page(self, ctx: Context, page: int) -> None:
        """``/kb list``: one page of every entry in service."""
        entries = self.matcher.entries
        size = self.cfg.page_size
        pages = max(1, (len(entries) + size - 1) // size)
        if page > pages:
            await form_error(ctx, "kb list", f"只有 {pages} 页")
            return
        db_count = sum(1 for e in entries if e.source.kind == "db")
        await ctx.reply(ctx.render("knowledge/list.j2", entries=entries[(page - 1) * size: page * size],
                                   total=len(entries), files=len(entries) - db_count, db=db_count, page=page,
                                   pages=pages))

    async def search(self, ctx: Context, text: str) -> None:
        """``/kb search``: what a wording would get — scores, match modes and reasons."""
        result = await asyncio.to_thread(self.matcher.match, text)
        verdict = "chatter" if result.chatter else \
            ("answer" if result.answer else ("suggest" if result.suggestions else "none"))
        await ctx.reply(ctx.render("knowledge/search.j2", text=text, verdict=verdict, answer=result.answer,
                                   chatter=CHATTER_NAMES.get(result.chatter, result.chatter),
                                   candidates=result.candidates[:5], threshold=self.base.settings.threshold))

    async def misses(self, ctx: Context, days: int | None) -> None:
        """``/kb misses``: unanswered questions of the last days, similar ones grouped, still unanswerable first."""
        days = days or self.cfg.misses_days
        rows = await store.recent_misses(ctx.session, ctx.now() - timedelta(days=days))
        # Chatter is never a miss; rows stored before it was recognised are left out (in _open_misses).
        open_groups, answerable = await asyncio.to_thread(self._open_misses, rows)
        await ctx.reply(ctx.render("knowledge/misses.j2", groups=open_groups[: self.cfg.misses_top], days=days,
                                   total=sum(g.count for g in open_groups), open=len(open_groups),
                                   answerable=answerable))

    async def reload_now(self, ctx: Context) -> None:
        """``/kb reload``: every file re-read now, with the problems of the refused ones."""
        report = await self.base.refresh(self.app.db, force=True)
        self.reloader.looked()
        await ctx.reply(ctx.render("knowledge/reload.j2", r=report))

    async def switch_group(self, ctx: Context, chat_id: str, enabled: bool, *, actor: str) -> None:
        """``/kb on`` / ``/kb off``: unprompted answers in this group."""
        changed = await store.set_group(ctx.session, chat_id, enabled, actor=actor, now=ctx.now())
        await ctx.reply(ctx.render("knowledge/group_switch.j2", enabled=enabled, changed=changed,
                                   bot=self.app.config.bot.name))

    # ── helpers of the operations ──
    def _open_misses(self, rows: list[Any]) -> tuple[list[Any], int]:
        """(the groups of misses the base still cannot answer, how many it can now): matching, off the loop."""
        matcher = self.matcher
        analyzer = matcher.analyzer
        rows = [r for r in rows if not is_chatter(r.text, analyzer)]
        open_groups, answerable = [], 0
        for g in group_misses(rows, analyzer):
            found = matcher.match(g.text)
            if found.chatter:
                continue
            if found.answer is not None:
                answerable += 1
            else:
                open_groups.append(g)
        return open_groups, answerable

    async def current(self, session: Any, entry_id: str) -> tuple[dict[str, Any] | None, Any, Entry | None]:
        """(the entry's data as it serves now, its database row, the file entry) — from the database itself."""
        row = await store.row_of(session, entry_id)
        file_entry = self.base.file_entry(entry_id)
        if row is not None and row.state == "active":
            return dict(row.data), row, file_entry
        if row is not None and row.state == "deleted":
            return None, row, file_entry
        return (file_entry.to_data() if file_entry else None), row, file_entry

    def new_id(self, question: str, taken: set[str]) -> str:
        """A readable id from the question's pinyin ("怎么开发票" → kai-fa-piao), made unique."""
        from pypinyin import lazy_pinyin  # pypinyin's tables load only when an operator adds an entry

        analyzer = self.matcher.analyzer
        words = [w for w in analyzer.tokenizer.cut(analyzer.prepare(question), HMM=False)
                 if w.strip() and w not in analyzer.stopwords] or [question]
        parts = [p for p in lazy_pinyin("".join(words)) if re.fullmatch(r"[a-z0-9]+", p)]
        base = "-".join(parts)[:40].strip("-") or "kb"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    async def warnings(self, entry: Entry) -> list[str]:
        """What a saved entry is warned of: questions another entry has, review terms of the compliance lexicon."""
        lexicon = await asyncio.to_thread(lexicon_warnings, self.app.templates, self.app.maybe(TEXT_CHECK), entry)
        return self.duplicate_questions(entry) + lexicon

    def duplicate_questions(self, entry: Entry) -> list[str]:
        """Warnings for questions another entry also has (members asking them get the higher priority)."""
        analyzer = self.matcher.analyzer
        warnings = []
        for q in entry.questions:
            key = analyzer.canon(q)
            for other in self.matcher.entries:
                if other.id != entry.id and any(analyzer.canon(x) == key for x in other.questions):
                    warnings.append(f"问法「{q}」和 {other.id} 的问法相同，成员这样问时会按优先级选一条")
        return warnings

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.app.config.bot.tz).strftime("%Y-%m-%d %H:%M")


async def form_error(ctx: Context, path: str, problem: str, problems: list[str] | None = None) -> None:
    """A command's problem with its usage and examples (what /help shows for it)."""
    spec = ctx.app.commands.specs[tuple(path.split())]
    await ctx.reply(ctx.render("knowledge/form_error.j2", problem=problem, problems=problems or [],
                               usage=spec.usage, examples=spec.examples))
