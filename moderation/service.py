"""Watching messages: the live matcher, alerts, routing, escalation, the digest.

``Moderation.observe`` is the one path for a message, live (handlers/moderation.py)
or from the message archive (moderation/archive.py): log it for context, scan it
with the categories of its audience, store alerts (deduplicated), queue the
deliveries and the escalation timer — all in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update

from bot.channels.parse import is_staff_id
from bot.events import Actor, Chat, MessageEvent
from bot.storage.db import insert_ignoring_conflicts
from moderation import words
from moderation.lexicon import DbWord, Lexicon, LexiconFiles
from moderation.matcher import Hit, Matcher
from moderation.models import ModerationAlert, ModerationMessage, ModerationWord

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.config import ModerationConfig, ModerationRoute

log = logging.getLogger("siyu.moderation")

MESSAGES = ModerationMessage.__table__
ALERTS = ModerationAlert.__table__
WORDS = ModerationWord.__table__
ESCALATE_TASK = "moderation.escalate"
ALERTING = ("reject", "review")
LEVEL_MARK = {"reject": "🔴", "review": "🟠", "info": "⚪"}
STAGE_LABEL = {"exact": "原词", "normalised": "规范化后命中（全半角/繁简/大小写/拆字符/重复字）",
               "variant": "变体词表（字母、谐音、数字写法）", "pinyin": "拼音谐音（待人工确认）",
               "detector": "联系方式/链接识别"}
STATUS_LABEL = {"open": "待处理", "acked": "已确认", "resolved": "已处理", "false_positive": "误报", "noted": "仅记录"}


@dataclass(slots=True)
class Observed:
    """One message as moderation sees it."""

    key: str            # unique per message: the event key, or archive:<msgid>
    chat: Chat
    sender: Actor
    staff: bool
    text: str
    at: datetime
    msg_id: str = ""
    source: str = "live"
    msgtype: str = "text"
    seq: int | None = None
    revoke_of: str | None = None
    internal: bool = False  # staff writing to staff: logged, not watched

    @classmethod
    def from_event(cls, event: MessageEvent, staff_ids: frozenset[str]) -> Observed:
        staff = event.sender.staff or is_staff_id(event.sender.id, staff_ids)
        return cls(key=event.key, chat=event.chat, sender=event.sender, staff=staff, text=event.text,
                   at=event.time, msg_id=event.msg_id)

    @property
    def audience(self) -> str | None:
        """staff: a staff member writing to customers; customer: a customer in a group; None: not watched."""
        if self.internal:
            return None
        if self.staff:
            if self.chat.is_group:
                return "staff"
            # 1:1: only a conversation with a customer (an external id), not a staff member talking to the bot
            return "staff" if self.chat.id.startswith(("wm", "wo")) or self.source == "archive" else None
        return "customer" if self.chat.is_group else None


@dataclass(slots=True)
class Observation:
    new_message: bool = False
    alerts: list[int] = field(default_factory=list)
    repeats: int = 0
    hits: list[Hit] = field(default_factory=list)
    queued: int = 0


def route_of(cfg: ModerationConfig) -> list[ModerationRoute]:
    from bot.config import ModerationRoute

    if cfg.routes:
        return list(cfg.routes)
    return [ModerationRoute(categories=[], levels=["reject", "review"], robot=cfg.robot, users=list(cfg.reviewers))]


class Moderation:
    """The feature's service: the current matcher and what happens to a message."""

    def __init__(self, app: BotApp) -> None:
        self.app = app
        self.cfg: ModerationConfig = app.config.moderation
        self.files = LexiconFiles(app.config.resolve(self.cfg.lexicon_dir))
        self.matcher = Matcher(Lexicon(), max_gap=self.cfg.max_gap)
        self.problems: list[str] = []
        self._db_fingerprint: tuple[Any, ...] | None = None
        self._lock = asyncio.Lock()

    # ── the lexicon ──
    def categories_for(self, audience: str) -> set[str] | None:
        """The categories checked for an audience (None = every category but the customer-only ones)."""
        if audience == "customer":
            return set(self.cfg.customer_categories)
        if self.cfg.staff_categories:
            return set(self.cfg.staff_categories)
        return None

    def applies(self, hit: Hit, audience: str) -> bool:
        cats = self.categories_for(audience)
        if cats is None:
            return hit.category not in self.cfg.customer_only_categories
        return hit.category in cats

    def build(self, db_words: list[DbWord]) -> Matcher:
        words.load()  # (in the reload's thread: the first message scanned does not wait for jieba)
        lexicon = self.files.build(db_words)
        return Matcher(lexicon, max_gap=self.cfg.max_gap, allowed_domains=self.cfg.allowed_domains,
                       detector_levels=self.cfg.detector_levels)

    async def db_words(self, session: Any) -> list[DbWord]:
        rows = (await session.execute(select(WORDS).where(WORDS.c.active.is_(True)).order_by(WORDS.c.id))).all()
        return [DbWord(term=r.term, category=r.category, level=r.level, kind=r.kind, by=r.added_by) for r in rows]

    async def fingerprint(self, session: Any) -> tuple[Any, ...]:
        row = (await session.execute(select(func.count(), func.max(WORDS.c.id), func.max(WORDS.c.updated_at))
                                     .select_from(WORDS))).one()
        return tuple(row)

    async def reload(self, *, files: bool = True, force: bool = False) -> bool:
        """Re-read changed files and database words; swap in a new matcher if anything changed."""
        async with self._lock:
            changed = False
            if files:
                report = await asyncio.to_thread(self.files.refresh, force)
                self.problems = [str(p) for p in report.problems]
                for p in self.problems:
                    log.error("lexicon problem (the previous version of the file stays live): %s", p)
                changed = report.changed
            async with self.app.db.read() as s:
                fp = await self.fingerprint(s)
                if fp != self._db_fingerprint or changed or force:
                    rows = await self.db_words(s)
                else:
                    return False
            self._db_fingerprint = fp
            matcher = await asyncio.to_thread(self.build, rows)
            if matcher.version != self.matcher.version or force:
                self.matcher = matcher  # one assignment: every scan sees the old or the new matcher, whole
                log.info("lexicon loaded: version %s, %d terms, %d patterns", matcher.version,
                         matcher.lexicon.size, matcher.pattern_count)
                return True
            return False

    # ── a message ──
    async def observe(self, session: Any, msg: Observed,
                      scanned: tuple[Matcher, list[Hit]] | None = None) -> Observation:
        """Log a message and alert on its hits. ``scanned``: the matcher and its hits for ``msg.text``,
        when the caller scanned a batch of messages at once (the archive import)."""
        out = Observation()
        audience = msg.audience
        now = self.app.clock.now()
        stmt = insert_ignoring_conflicts(self.app.db.dialect, MESSAGES, ["msg_key"]).values(
            msg_key=msg.key[:255], msg_id=msg.msg_id[:255], source=msg.source, chat_id=msg.chat.id[:200],
            chat_type=msg.chat.type, chat_name=msg.chat.name[:128], sender_id=msg.sender.id[:128],
            sender_name=msg.sender.name[:128], staff=msg.staff, msgtype=msg.msgtype[:24], text=msg.text[:2000],
            at=msg.at, seq=msg.seq, revoke_of=msg.revoke_of).returning(MESSAGES.c.id)
        row = (await session.execute(stmt)).first()
        if row is None:
            return out  # seen before (a redelivery, or the archive imported again): nothing twice
        out.new_message = True
        if msg.revoke_of is not None:
            await self._recalled(session, msg, now)
            return out
        if audience is None or msg.msgtype != "text" or not msg.text.strip():
            return out
        matcher, found = scanned if scanned is not None else (self.matcher, None)
        hits = [h for h in (matcher.scan(msg.text) if found is None else found) if self.applies(h, audience)]
        out.hits = hits
        if not hits:
            return out
        context = await self._context(session, msg, row.id)
        recalled = await self._recall_of(session, msg)
        new_alerts: list[dict[str, Any]] = []
        window = timedelta(minutes=self.cfg.dedup_window_min)
        for h in hits:
            if self.cfg.dedup_window_min and h.level in ALERTING:
                prev = (await session.execute(select(ALERTS.c.id).where(and_(
                    ALERTS.c.sender_id == msg.sender.id[:128], ALERTS.c.term == h.term[:64],
                    ALERTS.c.chat_id == msg.chat.id[:200], ALERTS.c.created_at >= now - window,
                    ALERTS.c.status != "noted")).order_by(ALERTS.c.id.desc()).limit(1))).first()
                if prev is not None:
                    await session.execute(update(ALERTS).where(ALERTS.c.id == prev.id).values(
                        repeats=ALERTS.c.repeats + 1, last_seen_at=now))
                    out.repeats += 1
                    continue
            values = dict(
                dedup_key=f"{msg.key}|{h.category}|{h.term}"[:255], msg_key=msg.key[:255], msg_id=msg.msg_id[:255],
                source=msg.source, audience=audience, chat_id=msg.chat.id[:200], chat_type=msg.chat.type,
                chat_name=msg.chat.name[:128], sender_id=msg.sender.id[:128], sender_name=msg.sender.name[:128],
                message_at=msg.at, created_at=now, text=msg.text[:2000], term=h.term[:64], category=h.category[:64],
                level=h.level, matched=h.matched[:255], span_start=h.start, span_end=h.end,
                normalised=h.normalised[:255], stage=h.stage, cut=h.cut, term_source=h.source[:255],
                lexicon_version=matcher.version, context=context,
                status="open" if h.level in ALERTING else "noted", notified=[], repeats=0, note="",
                recalled_at=recalled)
            ins = insert_ignoring_conflicts(self.app.db.dialect, ALERTS, ["dedup_key"]).values(**values) \
                .returning(ALERTS.c.id)
            got = (await session.execute(ins)).first()
            if got is None:
                continue
            out.alerts.append(got.id)
            values["id"] = got.id
            if h.level in ALERTING:
                new_alerts.append(values)
        if new_alerts:
            out.queued = await self._notify(session, msg, audience, new_alerts, context)
        return out

    async def _context(self, session: Any, msg: Observed, row_id: int) -> list[dict[str, Any]]:
        n = self.cfg.context_messages
        if n <= 0:
            return []
        rows = (await session.execute(
            select(MESSAGES.c.sender_id, MESSAGES.c.sender_name, MESSAGES.c.staff, MESSAGES.c.text, MESSAGES.c.at,
                   MESSAGES.c.msgtype)
            .where(and_(MESSAGES.c.chat_id == msg.chat.id[:200], MESSAGES.c.id != row_id,
                        MESSAGES.c.revoke_of.is_(None),
                        or_(MESSAGES.c.at < msg.at, and_(MESSAGES.c.at == msg.at, MESSAGES.c.id < row_id))))
            .order_by(MESSAGES.c.at.desc(), MESSAGES.c.id.desc()).limit(n))).all()
        return [{"sender": r.sender_id, "name": r.sender_name, "staff": r.staff, "text": r.text[:300],
                 "at": r.at.isoformat(), "time": self.local(r.at).strftime("%m-%d %H:%M"), "msgtype": r.msgtype}
                for r in reversed(rows)]

    async def _recall_of(self, session: Any, msg: Observed) -> datetime | None:
        """If the message was already recalled (the archive can deliver the recall first), when."""
        if not msg.msg_id:
            return None
        row = (await session.execute(select(MESSAGES.c.at).where(MESSAGES.c.revoke_of == msg.msg_id[:255])
                                     .limit(1))).first()
        if row is None:
            return None
        await session.execute(update(MESSAGES).where(MESSAGES.c.msg_key == msg.key[:255]).values(revoked_at=row.at))
        return row.at

    async def _recalled(self, session: Any, msg: Observed, now: datetime) -> None:
        assert msg.revoke_of is not None
        await session.execute(update(MESSAGES).where(and_(MESSAGES.c.msg_id == msg.revoke_of[:255],
                                                          MESSAGES.c.revoke_of.is_(None)))
                              .values(revoked_at=msg.at))
        res = await session.execute(update(ALERTS).where(and_(ALERTS.c.msg_id == msg.revoke_of[:255],
                                                              ALERTS.c.recalled_at.is_(None)))
                                    .values(recalled_at=msg.at))
        if res.rowcount:
            log.info("recall linked to %d alert(s)", res.rowcount)

    # ── deliveries ──
    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.app.config.bot.tz)

    async def _notify(self, session: Any, msg: Observed, audience: str, alerts: list[dict[str, Any]],
                      context: list[dict[str, Any]]) -> int:
        templates = self.app.templates
        queued = 0
        if audience == "customer":
            owners = await self.group_owners(session, msg.chat.id)
            text = templates.render("moderation/customer_alert.j2", msg=msg, alerts=alerts, context=context,
                                    at=self.local(msg.at), mark=LEVEL_MARK)
            queued += await self.app.outbox.enqueue(session, key=f"moderation:customer:{msg.key}"[:200],
                                                    kind="app_message", text=text, to=owners, source=msg.key)
            await self._mark_notified(session, alerts, [f"app:{u}" for u in owners])
            return queued
        robots: dict[str, list[dict[str, Any]]] = defaultdict(list)
        users: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in alerts:
            for r in route_of(self.cfg):
                if (r.categories and a["category"] not in r.categories) or a["level"] not in r.levels:
                    continue
                if r.robot:
                    robots[r.robot].append(a)
                for u in r.users:
                    users[u].append(a)
        ctx = {"msg": msg, "context": context, "at": self.local(msg.at), "mark": LEVEL_MARK, "stages": STAGE_LABEL}
        for robot, items in robots.items():
            text = templates.render("moderation/alert.j2", alerts=_unique(items), **ctx)
            queued += await self.app.outbox.enqueue(session, key=f"moderation:alert:{msg.key}:robot:{robot}"[:200],
                                                    kind="group_robot", text=text, destination={"robot": robot},
                                                    source=msg.key)
        by_text: dict[str, list[str]] = defaultdict(list)
        for user, items in users.items():
            by_text[templates.render("moderation/alert.j2", alerts=_unique(items), **ctx)].append(user)
        for i, (text, to) in enumerate(by_text.items()):
            queued += await self.app.outbox.enqueue(session, key=f"moderation:alert:{msg.key}:app:{i}"[:200],
                                                    kind="app_message", text=text, to=sorted(to), source=msg.key)
        for a in alerts:
            targets = [f"robot:{r}" for r, items in robots.items() if a in items]
            targets += [f"app:{u}" for u, items in users.items() if a in items]
            await session.execute(update(ALERTS).where(ALERTS.c.id == a["id"]).values(notified=targets))
            if a["level"] == "reject" and (self.cfg.escalate_to or self.cfg.escalate_robot):
                due = self.app.clock.now() + timedelta(hours=self.cfg.escalate_after_h)
                await self.app.timers.schedule(session, key=f"moderation:escalate:{a['id']}", name=ESCALATE_TASK,
                                               due_at=due, payload={"alert_id": a["id"]})
        return queued

    async def _mark_notified(self, session: Any, alerts: list[dict[str, Any]], targets: list[str]) -> None:
        ids = [a["id"] for a in alerts]
        await session.execute(update(ALERTS).where(ALERTS.c.id.in_(ids)).values(notified=targets))

    async def group_owners(self, session: Any, chat_id: str) -> list[str]:
        """The group's owner as the tiers feature knows it (``/group owner``), else the configured fallback."""
        try:
            from bot.tiers.models import Group

            g = Group.__table__
            row = (await session.execute(select(g.c.owner_id).where(g.c.chat_id == chat_id))).first()
        except Exception:  # the tiers feature is not installed
            log.debug("no group owner table", exc_info=True)
            row = None
        if row is not None and row.owner_id:
            return [row.owner_id]
        return list(self.cfg.group_owner_fallback)

    async def escalate(self, session: Any, payload: dict[str, Any], _task: Any) -> None:
        alert_id = int(payload["alert_id"])
        row = (await session.execute(select(ALERTS).where(ALERTS.c.id == alert_id))).first()
        if row is None or row.status != "open":
            return  # acknowledged, resolved or marked false positive in time
        now = self.app.clock.now()
        hours = (now - row.created_at).total_seconds() / 3600
        text = self.app.templates.render("moderation/escalation.j2", a=row, hours=hours, at=self.local(row.message_at),
                                         mark=LEVEL_MARK)
        if self.cfg.escalate_to:
            await self.app.outbox.enqueue(session, key=f"moderation:escalate:{alert_id}:app", kind="app_message",
                                          text=text, to=list(self.cfg.escalate_to), source=f"alert:{alert_id}")
        if self.cfg.escalate_robot:
            await self.app.outbox.enqueue(session, key=f"moderation:escalate:{alert_id}:robot", kind="group_robot",
                                          text=text, destination={"robot": self.cfg.escalate_robot},
                                          source=f"alert:{alert_id}")
        await session.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(escalated_at=now))

    # ── the digest ──
    async def digest_data(self, session: Any, end: datetime) -> dict[str, Any]:
        start = end - timedelta(days=1)
        week = end - timedelta(days=7)
        rows = (await session.execute(select(ALERTS.c.category, ALERTS.c.level, ALERTS.c.sender_id,
                                             ALERTS.c.sender_name, ALERTS.c.term, ALERTS.c.audience, ALERTS.c.repeats)
                                      .where(and_(ALERTS.c.created_at >= start, ALERTS.c.created_at < end,
                                                  ALERTS.c.status != "noted")))).all()
        top = self.cfg.digest_top
        by_cat: Counter[str] = Counter()
        by_level: Counter[str] = Counter()
        by_staff: Counter[str] = Counter()
        names: dict[str, str] = {}
        terms: Counter[str] = Counter()
        for r in rows:
            by_cat[r.category] += 1 + r.repeats
            by_level[r.level] += 1 + r.repeats
            if r.audience == "staff":
                by_staff[r.sender_id] += 1 + r.repeats
                names[r.sender_id] = r.sender_name or r.sender_id
            terms[r.term] += 1 + r.repeats
        open_rows = (await session.execute(select(ALERTS.c.id, ALERTS.c.level, ALERTS.c.category, ALERTS.c.term,
                                                  ALERTS.c.sender_id, ALERTS.c.sender_name, ALERTS.c.created_at)
                                           .where(ALERTS.c.status == "open").order_by(ALERTS.c.created_at)
                                           .limit(top))).all()
        open_count = (await session.execute(select(func.count()).select_from(ALERTS)
                                            .where(ALERTS.c.status == "open"))).scalar_one()
        keywords = await self.keyword_analysis(session, week, end)
        return {"start": self.local(start), "end": self.local(end), "total": len(rows),
                "by_category": by_cat.most_common(), "by_level": dict(by_level),
                "by_staff": [(names[s], s, n) for s, n in by_staff.most_common(top)],
                "terms": terms.most_common(top), "open_count": open_count,
                "open": [dict(r._mapping) | {"age_h": (end - r.created_at).total_seconds() / 3600} for r in open_rows],
                "keywords": keywords}

    async def keyword_analysis(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per staff member this week: messages, the lexicon terms they hit, their most used words."""
        from moderation import words

        top = self.cfg.digest_top
        msgs = (await session.execute(select(MESSAGES.c.sender_id, MESSAGES.c.sender_name, MESSAGES.c.text)
                                      .where(and_(MESSAGES.c.staff.is_(True), MESSAGES.c.at >= start,
                                                  MESSAGES.c.at < end, MESSAGES.c.msgtype == "text",
                                                  MESSAGES.c.revoke_of.is_(None)))
                                      .order_by(MESSAGES.c.id).limit(20000))).all()
        texts: dict[str, list[str]] = defaultdict(list)
        names: dict[str, str] = {}
        for m in msgs:
            texts[m.sender_id].append(m.text)
            names[m.sender_id] = m.sender_name or m.sender_id
        hit_rows = (await session.execute(select(ALERTS.c.sender_id, ALERTS.c.term, func.count())
                                          .where(and_(ALERTS.c.audience == "staff", ALERTS.c.created_at >= start,
                                                      ALERTS.c.created_at < end))
                                          .group_by(ALERTS.c.sender_id, ALERTS.c.term))).all()
        hit_terms: dict[str, Counter[str]] = defaultdict(Counter)
        for sender, term, n in hit_rows:
            hit_terms[sender][term] += n
        ranked = sorted(texts, key=lambda s: (-sum(hit_terms[s].values()), -len(texts[s]), s))[:top]
        out = []
        for sender in ranked:
            kw = await asyncio.to_thread(words.keywords, texts[sender], top)
            out.append({"sender": sender, "name": names[sender], "messages": len(texts[sender]),
                        "terms": hit_terms[sender].most_common(top), "words": kw})
        return out

    async def prune(self, now: datetime) -> int:
        from sqlalchemy import delete

        cut = now - timedelta(days=self.cfg.retention_days)
        async with self.app.db.session() as s:
            res = await s.execute(delete(MESSAGES).where(MESSAGES.c.at < cut))
        return int(res.rowcount or 0)

    def lexicon_dir(self) -> Path:
        return self.files.directory


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for a in items:
        if a["id"] not in seen:
            seen.add(a["id"])
            out.append(a)
    return out
