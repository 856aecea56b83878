"""Compliance: staff messages to customers watched for sensitive words; customers' ads and spam in groups.

The watcher is an observer at priority 5: it runs in its own transaction, never
blocks and never answers in the chat, so a failure there leaves the answer path
alone. Reviewers work the alerts with ``/alerts``; admins grow the lexicon with
``/word``. ``POST /archive/import`` takes the message archive (会话内容存档).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import and_, func, select, update

from bot.commands import Arg
from bot.context import Context
from bot.events import MessageEvent
from bot.pump import Reloader
from bot.roles import ADMIN, REVIEWER
from bot.routing import Router, command_text
from bot.services import ServiceKey
from moderation.lexicon import LEVELS, check_term_text
from moderation.models import ModerationFalsePositive
from moderation.service import ALERTS, ESCALATE_TASK, LEVEL_MARK, STAGE_LABEL, STATUS_LABEL, WORDS, Moderation, Observed

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.moderation")

MODERATION: ServiceKey[Moderation] = ServiceKey("moderation")
FALSE_POSITIVES = ModerationFalsePositive.__table__


def setup(app: BotApp) -> Router:
    service = Moderation(app)
    app.provide(MODERATION, service)
    async def reload(files: bool) -> bool:
        return bool(await service.reload(files=files))

    # The lexicon files every reload_interval_s; the /word rows at once when a command changed them.
    watcher = Reloader("moderation-lexicon", app.clock, service.cfg.reload_interval_s, reload)
    app.pumps.append(watcher)
    cfg = service.cfg

    async def load_on_start() -> None:
        await service.reload(force=True)
        watcher.looked()

    app.on_startup.append(load_on_start)
    app.timers.register(ESCALATE_TASK, service.escalate)

    async def digest(fire_time: datetime) -> None:
        async with app.db.session() as s:
            await send_digest(app, service, s, fire_time)
        app.outbox_pump.kick()

    hh, mm = (int(x) for x in cfg.digest_time.split(":"))
    app.scheduler.add_cron("moderation-digest", digest, hour=hh, minute=mm)

    async def prune(_fire_time: datetime) -> None:
        n = await service.prune(app.clock.now())
        log.info("moderation prune: %d old messages", n)

    app.scheduler.add_cron("moderation-prune", prune, hour=4, minute=53)
    app.http_routes.append(("POST", "/archive/import", archive_import_handler(app, service)))

    router = Router("moderation")
    router.describe("alerts", "合规预警：查看、确认、处理、标记误报（合规审核）")
    router.describe("word", "敏感词库：添加、删除、允许词、查看（管理员）")

    # ── the watcher ──
    @router.message(priority=5)
    async def watch(event: MessageEvent, ctx: Context) -> None:
        if command_text(event.text) is not None:
            return  # /word add 私下联系 加我微信 is an admin at work, not a violation
        await service.observe(ctx.session, Observed.from_event(event, frozenset(ctx.config.bot.staff_ids)))

    # ── reviewers ──
    async def listing(ctx: Context, scope: str, page: int) -> None:
        where = ALERTS.c.status == "open" if scope == "open" else ALERTS.c.status != "noted"
        total = (await ctx.session.execute(select(func.count()).select_from(ALERTS).where(where))).scalar_one()
        size = cfg.page_size
        pages = max(1, math.ceil(total / size))
        page = min(max(1, page), pages)
        rows = (await ctx.session.execute(select(ALERTS).where(where).order_by(ALERTS.c.id.desc())
                                          .offset((page - 1) * size).limit(size))).all()
        await ctx.reply(ctx.render("moderation/alerts_list.j2", rows=rows, total=total, page=page, pages=pages,
                                   scope=scope, mark=LEVEL_MARK, statuses=STATUS_LABEL))

    @router.command("alerts", roles=[REVIEWER], help="查看待处理的合规预警（第 1 页）")
    async def alerts_default(event: MessageEvent, ctx: Context) -> None:
        await listing(ctx, "open", 1)

    @router.command("alerts open", Arg("page", "页码", type="int", optional=True, default=1, min=1),
                    roles=[REVIEWER], help="待处理的预警，最新的在前", examples=["/alerts open", "/alerts open 2"])
    async def alerts_open(event: MessageEvent, ctx: Context) -> None:
        await listing(ctx, "open", ctx.args["page"])

    @router.command("alerts all", Arg("page", "页码", type="int", optional=True, default=1, min=1),
                    roles=[REVIEWER], help="全部预警（含已处理、误报）", examples=["/alerts all 3"])
    async def alerts_all(event: MessageEvent, ctx: Context) -> None:
        await listing(ctx, "all", ctx.args["page"])

    @router.command("alerts show", Arg("id", "编号", type="int", min=1), roles=[REVIEWER],
                    help="一条预警的全部信息：谁、在哪、何时、命中什么、为什么、上文", examples=["/alerts show 12"])
    async def alerts_show(event: MessageEvent, ctx: Context) -> None:
        row = (await ctx.session.execute(select(ALERTS).where(ALERTS.c.id == ctx.args["id"]))).first()
        if row is None:
            await ctx.reply(ctx.render("moderation/alert_done.j2", found=False, id=ctx.args["id"]))
            return
        await ctx.reply(ctx.render("moderation/alert_show.j2", a=row, mark=LEVEL_MARK, stages=STAGE_LABEL,
                                   statuses=STATUS_LABEL))

    async def change(ctx: Context, action: str, note: str = "") -> None:
        alert_id = ctx.args["id"]
        row = (await ctx.session.execute(select(ALERTS).where(ALERTS.c.id == alert_id))).first()
        values: dict[str, Any] = {"found": row is not None, "id": alert_id, "action": action, "note": note,
                                  "statuses": STATUS_LABEL}
        if row is None:
            await ctx.reply(ctx.render("moderation/alert_done.j2", **values))
            return
        values.update(term=row.term, category=row.category, status=row.status, proposal="")
        now, who = ctx.now(), ctx.event.sender.id if isinstance(ctx.event, MessageEvent) else ""
        allowed_from = {"ack": ("open", "noted"), "resolve": ("open", "acked", "noted"),
                        "fp": ("open", "acked", "resolved", "noted")}[action]
        if row.status not in allowed_from:
            await ctx.reply(ctx.render("moderation/alert_done.j2", changed=False, **values))
            return
        if action == "ack":
            upd = {"status": "acked", "acked_by": who, "acked_at": now}
        elif action == "resolve":
            upd = {"status": "resolved", "resolved_by": who, "resolved_at": now, "note": note[:1000]}
        else:
            upd = {"status": "false_positive", "resolved_by": who, "resolved_at": now, "note": note[:1000]}
            values["proposal"] = proposal_for(row)
            await ctx.session.execute(
                FALSE_POSITIVES.insert().values(alert_id=row.id, term=row.term, category=row.category,
                                                matched=row.matched, text=row.text[:2000],
                                                proposed_allow=values["proposal"][:64], by=who, note=note[:1000],
                                                at=now))
        if row.acked_at is None and action != "ack":
            upd.update(acked_by=who, acked_at=now)
        await ctx.session.execute(update(ALERTS).where(ALERTS.c.id == row.id).values(**upd))
        await ctx.app.timers.cancel(ctx.session, f"moderation:escalate:{row.id}")
        await ctx.reply(ctx.render("moderation/alert_done.j2", changed=True, **values))

    @router.command("alerts ack", Arg("id", "编号", type="int", min=1), roles=[REVIEWER],
                    help="确认收到一条预警（停止升级提醒）", examples=["/alerts ack 12"])
    async def alerts_ack(event: MessageEvent, ctx: Context) -> None:
        await change(ctx, "ack")

    @router.command("alerts resolve", Arg("id", "编号", type="int", min=1),
                    Arg("note", "备注", rest=True, optional=True, default=""), roles=[REVIEWER],
                    help="标记一条预警已处理，可附备注", examples=["/alerts resolve 12 已提醒员工，客户已道歉"])
    async def alerts_resolve(event: MessageEvent, ctx: Context) -> None:
        await change(ctx, "resolve", ctx.args["note"] or "")

    @router.command("alerts fp", Arg("id", "编号", type="int", min=1),
                    Arg("note", "说明", rest=True, optional=True, default=""), roles=[REVIEWER],
                    help="标记误报：记录下来，并建议一个允许词", examples=["/alerts fp 12 说的是微信支付"])
    async def alerts_fp(event: MessageEvent, ctx: Context) -> None:
        await change(ctx, "fp", ctx.args["note"] or "")

    # ── admins: the lexicon ──
    def reload_after_commit(ctx: Context) -> None:
        ctx.after_commit(watcher.request)

    async def word_problem(ctx: Context, path: str, problem: str) -> None:
        spec = ctx.app.commands.specs[tuple(path.split())]
        await ctx.reply(ctx.render("moderation/word_problem.j2", problem=problem, usage=spec.usage))

    async def upsert_word(ctx: Context, term: str, form: str, category: str, level: str, kind: str) -> bool:
        existing = (await ctx.session.execute(select(WORDS.c.id, WORDS.c.active).where(and_(
            WORDS.c.category == category, WORDS.c.form == form, WORDS.c.kind == kind)))).first()
        values = {"term": term, "level": level, "active": True, "added_by": ctx.event.sender.id,  # type: ignore[attr-defined]
                  "updated_at": ctx.now()}
        if existing is None:
            await ctx.session.execute(WORDS.insert().values(form=form, category=category, kind=kind, **values))
            return False
        await ctx.session.execute(update(WORDS).where(WORDS.c.id == existing.id).values(**values))
        return bool(existing.active)

    async def deactivate(ctx: Context, category: str, form: str, kind: str) -> bool:
        res = await ctx.session.execute(update(WORDS).where(and_(
            WORDS.c.category == category, WORDS.c.form == form, WORDS.c.kind == kind, WORDS.c.active.is_(True)))
            .values(active=False, updated_at=ctx.now(), added_by=ctx.event.sender.id))  # type: ignore[attr-defined]
        return bool(res.rowcount)

    @router.command("word add", Arg("category", "分类"), Arg("term", "词"),
                    Arg("level", "级别", type="choice", choices=LEVELS, optional=True, default="reject"),
                    roles=[ADMIN], help="添加敏感词（默认 reject），立即对所有副本生效",
                    examples=["/word add 私下联系 加我私人号", "/word add 夸大承诺/极限词 秒杀全网 review",
                              "/word add 竞品 某某茶 info"])
    async def word_add(event: MessageEvent, ctx: Context) -> None:
        form, problem = check_term_text(ctx.args["term"])
        if problem:
            await word_problem(ctx, "word add", problem)
            return
        category = ctx.args["category"].strip()[:64]
        await deactivate(ctx, category, form, "hide")
        existed = await upsert_word(ctx, ctx.args["term"].strip(), form, category, ctx.args["level"], "term")
        reload_after_commit(ctx)
        await ctx.reply(ctx.render("moderation/word_done.j2", action="add", term=ctx.args["term"].strip(),
                                   category=category, level=ctx.args["level"], existed=existed))

    @router.command("word allow", Arg("category", "分类"), Arg("term", "允许词"), roles=[ADMIN],
                    help="添加允许词：覆盖命中的允许词会取消这次命中（如 微信支付）",
                    examples=["/word allow 私下联系 微信支付"])
    async def word_allow(event: MessageEvent, ctx: Context) -> None:
        form, problem = check_term_text(ctx.args["term"])
        if problem:
            await word_problem(ctx, "word allow", problem)
            return
        category = ctx.args["category"].strip()[:64]
        await deactivate(ctx, category, form, "unallow")
        await upsert_word(ctx, ctx.args["term"].strip(), form, category, "info", "allow")
        reload_after_commit(ctx)
        await ctx.reply(ctx.render("moderation/word_done.j2", action="allow", term=ctx.args["term"].strip(),
                                   category=category))

    @router.command("word del", Arg("term", "词"), Arg("category", "分类", optional=True, default=""),
                    roles=[ADMIN], help="删除敏感词或允许词（文件里的词也会被隐藏）",
                    examples=["/word del 加我私人号", "/word del 微信 私下联系"])
    async def word_del(event: MessageEvent, ctx: Context) -> None:
        form, problem = check_term_text(ctx.args["term"])
        if problem:
            await word_problem(ctx, "word del", problem)
            return
        wanted = ctx.args["category"].strip()
        lexicon = service.matcher.lexicon
        removed: list[str] = []
        for t in lexicon.terms:
            if t.form == form and (not wanted or t.category == wanted):
                if t.source == "db":
                    await deactivate(ctx, t.category, form, "term")
                else:
                    await upsert_word(ctx, t.text, form, t.category, t.level, "hide")
                removed.append(f"{t.category}·敏感词")
        for t in lexicon.allow:
            if t.form == form and (not wanted or t.category == wanted):
                if t.source == "db":
                    await deactivate(ctx, t.category, form, "allow")
                else:
                    await upsert_word(ctx, t.text, form, t.category, "info", "unallow")
                removed.append(f"{t.category}·允许词")
        if removed:
            reload_after_commit(ctx)
        await ctx.reply(ctx.render("moderation/word_done.j2", action="del", term=ctx.args["term"].strip(),
                                   category=wanted, removed=removed))

    @router.command("word list", Arg("category", "分类", optional=True, default=""), roles=[ADMIN],
                    help="词库概况，或某个分类的全部词", examples=["/word list", "/word list 私下联系"])
    async def word_list(event: MessageEvent, ctx: Context) -> None:
        lexicon = service.matcher.lexicon
        category = ctx.args["category"].strip()
        if category:
            terms = sorted((t for t in lexicon.terms if t.category == category),
                           key=lambda t: (-{"reject": 2, "review": 1, "info": 0}[t.level], t.text))
            allow = sorted(t.text for t in lexicon.allow if t.category == category)
            if not terms and not allow:
                await word_problem(ctx, "word list", f"没有分类「{category}」。现有分类："
                                   + "、".join(sorted(lexicon.categories)))
                return
            await ctx.reply(ctx.render("moderation/word_list.j2", category=category, terms=terms, allow=allow,
                                       description=lexicon.categories.get(category, ""), mark=LEVEL_MARK))
            return
        counts: dict[str, int] = {}
        for t in lexicon.terms:
            counts[t.category] = counts.get(t.category, 0) + 1
        await ctx.reply(ctx.render("moderation/word_list.j2", category="", version=lexicon.version,
                                   total=lexicon.size, counts=sorted(counts.items()), problems=service.problems))

    return router


def proposal_for(row: Any) -> str:
    """An allow term for a false positive: the whole words around the hit (微信 → 微信支付)."""
    from moderation import words
    from moderation.normalize import fold_text

    text = row.text
    a, b = row.span_start, row.span_end
    lo = max(0, a - 8)
    window = text[lo:min(len(text), b + 8)]
    proposal = words.propose_allow(window, a - lo, b - lo, fold_text(row.term))
    form, problem = check_term_text(proposal)
    return proposal if form and not problem and form != fold_text(row.term) else ""


async def send_digest(app: BotApp, service: Moderation, session: Any, fire_time: datetime) -> int:
    data = await service.digest_data(session, fire_time)
    text = app.templates.render("moderation/digest.j2", d=data, mark=LEVEL_MARK)
    day = service.local(fire_time).strftime("%Y-%m-%d")
    n = 0
    cfg = service.cfg
    if cfg.robot:
        n += await app.outbox.enqueue(session, key=f"moderation:digest:{day}:robot", kind="group_robot", text=text,
                                      destination={"robot": cfg.robot}, source=f"moderation-digest:{day}")
    if cfg.reviewers:
        n += await app.outbox.enqueue(session, key=f"moderation:digest:{day}:app", kind="app_message", text=text,
                                      to=list(cfg.reviewers), source=f"moderation-digest:{day}")
    return n


def archive_import_handler(app: BotApp, service: Moderation) -> Any:
    from bot.web import signed_by
    from moderation import archive

    async def handle(request: web.Request) -> web.StreamResponse:
        secret = app.config.moderation.archive_secret.get_secret_value()
        if not secret:
            return web.json_response({"error": "archive import is not configured (moderation.archive_secret)"},
                                     status=404)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"body larger than {app.config.server.max_body_bytes} bytes "
                                               "(server.max_body_bytes); send smaller batches"}, status=413)
        if not signed_by(secret, body, request.headers.get("X-Siyu-Signature", "")):
            app.metrics.rejected.labels("archive", "signature").inc()
            return web.json_response({"error": "missing or wrong X-Siyu-Signature (sha256=<hex of HMAC-SHA256>)"},
                                     status=401)
        records, problems = archive.parse_lines(body.splitlines())
        if problems:
            return web.json_response({"error": "the batch was refused: fix these lines and send it again; "
                                               "nothing was stored",
                                      "problems": [p.to_json() for p in problems[:100]]}, status=400)
        if not records:
            return web.json_response({"error": "no records: send one JSON record per line"}, status=400)
        report = await archive.import_records(app, service, records)
        return web.json_response(report.to_json())

    return handle
