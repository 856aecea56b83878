"""Knowledge pages: entries with search, an entry with its edit form, "try a question", the misses.

Reads come from the knowledge service; every change runs the ``/kb`` command it
mirrors (bot.pages.actions), so the page validates, checks and audits exactly as chat does.
"""

from __future__ import annotations

import asyncio
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
MISSES_KEPT = web.AppKey("misses_kept", dict)



def _kb(request: web.Request) -> Any:
    return bot_of(request).maybe(KNOWLEDGE)


def _search(matcher: Any, q: str) -> list[Any]:
    """The entries the matcher ranks for ``q``, then those whose id or text contains it (in a thread)."""
    ranked = [c.entry for c in matcher.match(q).candidates]
    words = q.lower()
    seen = {id(e) for e in ranked}
    ranked += [e for e in matcher.entries if id(e) not in seen and (words in e.id.lower() or any(
        words in x.lower() for x in (*e.questions, *e.keywords, e.answer)))]
    return ranked


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
    shown = await asyncio.to_thread(_search, kb.matcher, q) if q else all_entries
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
    # the matcher off the event loop, as the chat path runs it (bot.knowledge.answering.Answering.match)
    result = await asyncio.to_thread(kb.matcher.match, text) if text else None
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
    # Grouping thousands of misses takes seconds: the result is kept while the same rows (and what members
    # picked) meet the same matcher — any new miss, pick or reload computes it again.
    since, kept = bot.clock.now() - timedelta(days=days), request.app[MISSES_KEPT]
    async with bot.db.read() as s:
        marks = await store.recent_miss_marks(s, since)
        same = kept.get("marks") == marks and kept.get("matcher") is kb.matcher
        rows = [] if same else await store.recent_misses(s, since)
    if same:
        groups, best = kept["value"]
    else:
        matcher = kb.matcher
        groups, best = await asyncio.to_thread(_unanswered, matcher, rows)
        kept.clear()
        kept.update(marks=[(r.id, r.picked_entry) for r in rows], matcher=matcher, value=(groups, best))
    return {"page": "knowledge", "groups": groups, "best": best, "days": days}


def _unanswered(matcher: Any, rows: list[Any], limit: int = 50) -> tuple[list[Any], dict[str, Any]]:
    """The missed questions the base still cannot answer (at most ``limit``), each with its best three
    candidates — the grouping and the matching run in a thread."""
    groups, best = [], {}
    for g in group_misses(rows, matcher.analyzer):
        result = matcher.match(g.text)
        if result.answer is None:
            groups.append(g)
            best[g.text] = result.candidates[:3]
            if len(groups) == limit:
                break
    return groups, best


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
    app[MISSES_KEPT] = {}
    r = app.router
    r.add_get("/knowledge", entries)
    r.add_post("/knowledge/add", entry_add)
    r.add_post("/knowledge/try", try_question)
    r.add_get("/knowledge/misses", misses)
    r.add_post("/knowledge/misses/phrasing", add_phrasing)
    r.add_get("/knowledge/entry/{id}", entry)
    r.add_post("/knowledge/entry/{id}/edit", entry_edit)
