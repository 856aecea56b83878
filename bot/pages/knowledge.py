"""Knowledge pages: entries with search, an entry with its edit form, "try a question", the misses.

Reads come from the knowledge service; every change runs the ``/kb`` command it
mirrors (bot.pages.actions), so the page validates, checks and audits exactly as chat does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
from aiohttp import web

from bot.knowledge import KNOWLEDGE, store
from bot.knowledge.misses import group_misses
from bot.pages.actions import run_command
from bot.pages.security import STAFF, requires
from bot.pages.views import bot_of
from bot.roles import OPERATOR

if TYPE_CHECKING:
    pass

# The /kb edit fields a page may change, as the command names them.
EDIT_FIELDS = ["答案", "+问题", "-问题", "问题", "关键词", "匹配", "优先级", "时间", "非服务时间回复", "群内自动",
               "会话", "群", "等级"]
PAGE = 30



def _kb(request: web.Request) -> Any:
    return bot_of(request).maybe(KNOWLEDGE)


def _one_line(text: str) -> str:
    """Form values become one command argument: newlines kept only where the command takes the rest."""
    return " ".join(text.split())


@requires(OPERATOR)
@aiohttp_jinja2.template("knowledge.html")
async def entries(request: web.Request) -> dict[str, Any]:
    kb = _kb(request)
    if kb is None:
        return {"page": "knowledge", "installed": False}
    q = request.query.get("q", "").strip()
    all_entries = list(kb.matcher.entries)
    if q:
        result = kb.matcher.match(q)
        ranked = [c.entry for c in result.candidates]
        words = q.lower()
        ranked += [e for e in all_entries if e not in ranked and (words in e.id.lower() or any(
            words in x.lower() for x in (*e.questions, *e.keywords, e.answer)))]
        shown = ranked
    else:
        shown = all_entries
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, (len(shown) + PAGE - 1) // PAGE)
    return {"page": "knowledge", "installed": True, "q": q, "entries": shown[(page - 1) * PAGE: page * PAGE],
            "total": len(all_entries), "found": len(shown), "page_no": min(page, pages), "pages": pages,
            "problems": kb.base.files.problems if kb.base.files is not None else []}


@requires(OPERATOR)
@aiohttp_jinja2.template("knowledge_entry.html")
async def entry(request: web.Request) -> dict[str, Any]:
    bot, eid = bot_of(request), request.match_info["id"]
    kb = bot.get(KNOWLEDGE)
    async with bot.db.read() as s:
        data, row, file_entry = await kb.current(s, eid)
    if data is None and row is None:
        raise web.HTTPNotFound(text=f"没有 id 为 {eid} 的知识", content_type="text/plain")
    return {"page": "knowledge", "id": eid, "data": data, "row": row, "file_entry": file_entry,
            "fields": EDIT_FIELDS, "outcome": None}


@requires(OPERATOR)
async def entry_edit(request: web.Request) -> web.StreamResponse:
    eid = request.match_info["id"]
    form = await request.post()
    field, value = str(form.get("field", "")), str(form.get("value", "")).strip()
    if field not in EDIT_FIELDS:
        raise web.HTTPBadRequest(text="不能修改这个字段", content_type="text/plain")
    body = f"kb edit {eid} {field} {value if field == '答案' else _one_line(value)}"
    outcome = await run_command(bot_of(request), request[STAFF], body)
    bot = bot_of(request)
    async with bot.db.read() as s:
        data, row, file_entry = await bot.get(KNOWLEDGE).current(s, eid)
    context = {"page": "knowledge", "id": eid, "data": data, "row": row, "file_entry": file_entry,
               "fields": EDIT_FIELDS, "outcome": outcome}
    return aiohttp_jinja2.render_template("knowledge_entry.html", request, context)


@requires(OPERATOR)
async def entry_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    question, answer = _one_line(str(form.get("question", ""))), str(form.get("answer", "")).strip()
    outcome = await run_command(bot_of(request), request[STAFF], f"kb add {question}\n{answer}")
    return aiohttp_jinja2.render_template("outcome.html", request, {
        "page": "knowledge", "title": "新增知识", "outcome": outcome, "back": "/console/knowledge"})


@requires(OPERATOR)
async def try_question(request: web.Request) -> web.StreamResponse:
    """The answer a question would get now: verdict, score, the answer text and the runner-ups (htmx partial)."""
    form = await request.post()
    text = str(form.get("text", "")).strip()[:500]
    kb = bot_of(request).get(KNOWLEDGE)
    result = kb.matcher.match(text) if text else None
    return aiohttp_jinja2.render_template("knowledge_try.html", request, {
        "text": text, "result": result, "threshold": kb.base.settings.threshold})


@requires(OPERATOR)
@aiohttp_jinja2.template("knowledge_misses.html")
async def misses(request: web.Request) -> dict[str, Any]:
    bot = bot_of(request)
    kb = bot.get(KNOWLEDGE)
    try:
        days = min(365, max(1, int(request.query.get("days", str(kb.cfg.misses_days)))))
    except ValueError:
        days = kb.cfg.misses_days
    async with bot.db.read() as s:
        rows = await store.recent_misses(s, bot.clock.now() - timedelta(days=days))
    groups = [g for g in group_misses(rows, kb.matcher.analyzer) if kb.matcher.match(g.text).answer is None]
    best = {g.text: kb.matcher.match(g.text).candidates[:3] for g in groups[:50]}
    return {"page": "knowledge", "groups": groups[:50], "best": best, "days": days}


@requires(OPERATOR)
async def add_phrasing(request: web.Request) -> web.StreamResponse:
    """A missed question becomes a phrasing of an entry (``/kb edit ID +问题 …``)."""
    form = await request.post()
    eid = str(form.get("other_id", "")).strip() or str(form.get("id", "")).strip()
    text = _one_line(str(form.get("text", "")))
    outcome = await run_command(bot_of(request), request[STAFF], f"kb edit {eid} +问题 {text}")
    return aiohttp_jinja2.render_template("outcome.html", request, {
        "page": "knowledge", "title": "加为问法", "outcome": outcome, "back": "/console/knowledge/misses"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/knowledge", entries)
    r.add_post("/knowledge/add", entry_add)
    r.add_post("/knowledge/try", try_question)
    r.add_get("/knowledge/misses", misses)
    r.add_post("/knowledge/misses/phrasing", add_phrasing)
    r.add_get("/knowledge/entry/{id}", entry)
    r.add_post("/knowledge/entry/{id}/edit", entry_edit)
