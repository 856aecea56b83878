"""Watching messages: the live matcher, what happens to a message, the reviewers' and admins' use cases.

``Moderation.observe`` is the one path for a message, live (handlers/moderation.py)
or from the message archive (bot/compliance/archive.py): log it for context, scan
it with the categories of its audience, store alerts (deduplicated) and hand the
new ones to :meth:`bot.compliance.alerts.AlertRouting.route` — all in the
caller's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.channels.parse import is_staff_id
from bot.compliance.alerts import ALERTING, ESCALATE_TASK, AlertRouting, escalation_key
from bot.compliance.digest import Digest
from bot.compliance.store import Store
from bot.events import Actor, Chat, MessageEvent
from bot.storage.keys import bounded_key
from bot.textcheck import LexiconCheck, matcher_for, staff_categories
from moderation import words
from moderation.lexicon import LEVEL_RANK, DbWord, Lexicon, LexiconFiles, Term, check_term_text
from moderation.matcher import Hit, Matcher, first_of_each_term, phrase_found
from moderation.normalize import fold_text

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.compliance.config import ModerationConfig
    from bot.effects import Effects

log = logging.getLogger("siyu.moderation")

__all__ = ["ESCALATE_TASK", "Moderation", "Observation", "Observed"]


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


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a reviewer looks at: status ("" or "all": every one a reviewer sees), category, level,
    staff member, chat, and created within [since, until)."""

    status: str = "open"
    category: str = ""
    level: str = ""
    staff: str = ""
    chat: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class AlertChange:
    """What a reviewer's ``/alerts ack|resolve|fp`` did (the values of ``moderation/alert_done.j2``)."""

    found: bool
    changed: bool = False
    term: str = ""
    category: str = ""
    status: str = ""
    proposal: str = ""


class Moderation:
    """The feature's service: the current matcher and what happens to a message."""

    def __init__(self, app: BotApp) -> None:
        self.app = app
        self.cfg: ModerationConfig = app.config.moderation
        self.store = Store(app.db)
        self.routing = AlertRouting(app, self.store)
        self.digest = Digest(app, self.store)
        self.files = LexiconFiles(app.config.resolve(self.cfg.lexicon_dir))
        self.matcher = Matcher(Lexicon(), max_gap=self.cfg.max_gap)
        self.problems: list[str] = []
        self.words_changed: Callable[[], None] = lambda: None  # feature.install: ask the lexicon reloader
        self._db_fingerprint: tuple[Any, ...] | None = None
        self._lock = asyncio.Lock()
        self._staff = staff_categories(self.cfg)

    # ── the lexicon ──
    def applies(self, hit: Hit, audience: str) -> bool:
        if audience == "staff":
            return self._staff(hit)
        return hit.category in set(self.cfg.customer_categories)

    def text_check(self) -> LexiconCheck:
        """What other features check the bot's own texts with (``bot.textcheck.TEXT_CHECK``): the live
        matcher, the categories of staff messages."""
        return LexiconCheck(lambda: self.matcher, self._staff)

    def build(self, db_words: list[DbWord]) -> Matcher:
        words.load()  # (in the reload's thread: the first message scanned does not wait for jieba)
        return matcher_for(self.cfg, self.files.build(db_words))

    async def reload(self, *, files: bool = True, force: bool = False) -> bool:
        """Re-read changed files and database words; swap in a new matcher if anything changed."""
        async with self._lock:
            changed = False
            if files:
                report = await asyncio.to_thread(lambda: self.files.refresh(force=force))
                self.problems = [str(p) for p in report.problems]
                for p in report.new_problems:
                    log.error("lexicon problem (the previous version of the file stays live): %s", p)
                changed = report.changed
            async with self.app.db.read() as s:
                fp = await self.store.words_fingerprint(s)
                if fp == self._db_fingerprint and not changed and not force:
                    return False
                rows = await self.store.active_words(s)
            self._db_fingerprint = fp
            matcher = await asyncio.to_thread(self.build, rows)
            if matcher.version != self.matcher.version or force:
                self.matcher = matcher  # one assignment: every scan sees the old or the new matcher, whole
                log.info("lexicon loaded: version %s, %d terms, %d patterns", matcher.version,
                         matcher.lexicon.size, matcher.pattern_count)
                return True
            return False

    def lexicon_dir(self) -> Path:
        return self.files.directory

    # ── a message ──
    async def observe(self, fx: Effects, msg: Observed,
                      scanned: tuple[Matcher, list[Hit]] | None = None) -> Observation:
        """Log a message and alert on its hits, in ``fx``'s session. ``scanned``: the matcher and its hits
        for ``msg.text``, when the caller scanned a batch of messages at once (the archive import)."""
        out = Observation()
        session = fx.session
        row_id = await self.store.log_message(session, msg)
        if row_id is None:
            return out  # seen before (a redelivery, or the archive imported again): nothing twice
        out.new_message = True
        if msg.revoke_of is not None:
            n = await self.store.link_recall(session, msg.revoke_of, msg.at)
            if n:
                log.info("recall linked to %d alert(s)", n)
            return out
        audience = msg.audience
        if audience is None or not msg.text.strip():
            return out
        matcher, found = scanned if scanned is not None else (self.matcher, None)
        out.hits = self._hits(msg, audience, matcher, found)
        if not out.hits:
            return out
        context = await self._context(session, msg, row_id)
        recalled = await self.store.recall_before(session, msg) if msg.msg_id else None
        now = self.app.clock.now()
        new_alerts: list[dict[str, Any]] = []
        for h in first_of_each_term(out.hits):
            if await self._fold_repeat(fx, msg, h, now):
                out.repeats += 1
                continue
            values = _alert_row(msg, h, audience, matcher.version, context, recalled, now)
            alert_id = await self.store.add_alert(session, values)
            if alert_id is None:
                continue
            out.alerts.append(alert_id)
            if h.level in ALERTING:
                new_alerts.append(values | {"id": alert_id})
        if new_alerts:
            out.queued = await self.routing.route(fx, msg, audience, new_alerts, context)
        return out

    def _hits(self, msg: Observed, audience: str, matcher: Matcher, found: list[Hit] | None) -> list[Hit]:
        """A text's hits for its audience; a staff member's red packet, transfer, card, mini-program or file
        to a customer (the archive's msgtype) is one hit at its ``behaviour_levels`` level."""
        if msg.msgtype == "text":
            return [h for h in (matcher.scan(msg.text) if found is None else found) if self.applies(h, audience)]
        hit = behaviour_hit(msg, self.cfg.behaviour_levels) if audience == "staff" else None
        return [hit] if hit is not None else []

    async def _fold_repeat(self, fx: Effects, msg: Observed, h: Hit, now: datetime) -> bool:
        """Whether the hit only repeats the sender's alert of this term in this chat within the dedup window
        (counted on it). The repeat that reaches ``repeat_notify_after`` tells the reviewers once and reopens
        the alert if it was acknowledged or resolved."""
        if not self.cfg.dedup_window_min or h.level not in ALERTING:
            return False
        prev = await self.store.fold_repeat(fx.session, msg.sender.id, h.term, msg.chat.id,
                                            now - timedelta(minutes=self.cfg.dedup_window_min), now)
        if prev is None:
            return False
        if self.cfg.repeat_notify_after and prev.repeats == self.cfg.repeat_notify_after:
            reopen = prev.status in ("acked", "resolved")
            if reopen:
                await self.store.update_alert(fx.session, prev.id, status="open")
                if prev.level == "reject" and (self.cfg.escalate_to or self.cfg.escalate_robot):
                    # escalated again if nobody acknowledges it this time either (the first timer was cancelled)
                    await fx.schedule(f"{escalation_key(prev.id)}:reopened", ESCALATE_TASK,
                                      now + timedelta(hours=self.cfg.escalate_after_h), {"alert_id": prev.id})
            await self.routing.repeated(fx, msg, prev, reopened=reopen)
        return True

    async def _context(self, session: Any, msg: Observed, row_id: int) -> list[dict[str, Any]]:
        n = self.cfg.context_messages
        if n <= 0:
            return []
        return [{"sender": r.sender_id, "name": r.sender_name, "staff": r.staff, "text": r.text[:300],
                 "at": r.at.isoformat(), "time": self.local(r.at).strftime("%m-%d %H:%M"), "msgtype": r.msgtype}
                for r in await self.store.context(session, msg.chat.id, msg.at, row_id, n)]

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.app.config.bot.tz)

    async def prune(self, _fire_time: datetime | None = None) -> int:
        """The nightly cron job: forget logged messages older than ``retention_days`` (alerts keep their copy)."""
        n = await self.store.prune_messages(self.app.clock.now() - timedelta(days=self.cfg.retention_days))
        log.info("moderation prune: %d old messages", n)
        return n

    # ── reviewers ──
    async def alerts_page(self, session: Any, scope: str, page: int) -> dict[str, Any]:
        """One page of ``open`` or ``all`` alerts, newest first: rows, total, page, pages."""
        total = await self.store.count_alerts(session, scope)
        size = self.cfg.page_size
        pages = max(1, math.ceil(total / size))
        page = min(max(1, page), pages)
        rows = await self.store.alerts_page(session, scope, (page - 1) * size, size)
        return {"rows": rows, "total": total, "page": page, "pages": pages, "scope": scope}

    async def member_facts(self, session: Any, member_id: str) -> list[str]:
        """Alerts on the member's own messages, for the profile (bot.memberfacts)."""
        open_, _ = await self.store.find_alerts(session, AlertFilter(status="open", staff=member_id), 0, 0)
        seen, _ = await self.store.find_alerts(session, AlertFilter(status="all", staff=member_id), 0, 0)
        return [f"待处理 {open_} 条（共 {seen} 条）"] if seen else []

    async def find_alerts(self, session: Any, where: AlertFilter, page: int = 1,
                          size: int | None = None, *, categories: bool = True) -> dict[str, Any]:
        """The reviewers' queue on the console: alerts by state, category, level, staff, chat and date
        (``categories``: with every category there is, for the filter's choices — a walk over all alerts)."""
        size = size or self.cfg.page_size
        total, rows = await self.store.find_alerts(session, where, (max(1, page) - 1) * size, size)
        return {"rows": rows, "total": total, "page": max(1, page), "pages": max(1, math.ceil(total / size)),
                "categories": await self.store.alert_categories(session) if categories else []}

    async def alert(self, session: Any, alert_id: int) -> Any:
        return await self.store.alert(session, alert_id)

    async def change_alert(self, session: Any, alert_id: int, action: str, who: str, note: str = "") -> AlertChange:
        """A reviewer acknowledges (``ack``), resolves or marks as false positive (``fp``) an alert; any of them
        stops the escalation. A false positive is recorded with the allow term it suggests."""
        row = await self.store.alert(session, alert_id)
        if row is None:
            return AlertChange(found=False)
        done = AlertChange(found=True, term=row.term, category=row.category, status=row.status)
        allowed_from = {"ack": ("open", "noted"), "resolve": ("open", "acked", "noted"),
                        "fp": ("open", "acked", "resolved", "noted")}[action]
        if row.status not in allowed_from:
            return done
        now = self.app.clock.now()
        if action == "ack":
            upd = {"status": "acked", "acked_by": who, "acked_at": now}
        else:
            upd = {"status": "resolved" if action == "resolve" else "false_positive", "resolved_by": who,
                   "resolved_at": now}
        if note:
            upd["note"] = note[:1000]  # the latest note given; none keeps the one given with the ack
        if action == "fp":
            done.proposal = proposal_for(row)
            await self.store.add_false_positive(
                session, alert_id=row.id, term=row.term, category=row.category, matched=row.matched,
                text=row.text[:2000], proposed_allow=done.proposal[:64], by=who, note=note[:1000], at=now)
        if row.acked_at is None and action != "ack":
            upd.update(acked_by=who, acked_at=now)
        await self.store.update_alert(session, row.id, **upd)
        await self.app.timers.cancel(session, escalation_key(row.id))
        done.changed = True
        return done

    # ── admins: the lexicon ──
    async def add_word(self, session: Any, who: str, category: str, term: str, level: str) -> bool:
        """``/word add``: a term (un-hiding a file term of the same form); whether it existed already."""
        form, _ = check_term_text(term)
        now = self.app.clock.now()
        await self.store.switch_off_word(session, category=category, form=form, kind="hide", by=who, now=now)
        existed = await self.store.put_word(session, term=term, form=form, category=category, level=level,
                                            kind="term", by=who, now=now)
        return existed

    async def allow_word(self, session: Any, who: str, category: str, term: str) -> None:
        """``/word allow``: an allow term (a hit it covers is cancelled)."""
        form, _ = check_term_text(term)
        now = self.app.clock.now()
        await self.store.switch_off_word(session, category=category, form=form, kind="unallow", by=who, now=now)
        await self.store.put_word(session, term=term, form=form, category=category, level="info", kind="allow",
                                  by=who, now=now)

    async def delete_word(self, session: Any, who: str, term: str, category: str = "") -> list[str]:
        """``/word del``: switch off a word added in chat, or hide a file's word; what was removed."""
        form, _ = check_term_text(term)
        now = self.app.clock.now()
        lexicon = self.matcher.lexicon
        removed: list[str] = []
        for t, what, off, hide in [*((t, "敏感词", "term", "hide") for t in lexicon.terms),
                                   *((t, "允许词", "allow", "unallow") for t in lexicon.allow)]:
            if t.form != form or (category and t.category != category):
                continue
            if t.source == "db":
                await self.store.switch_off_word(session, category=t.category, form=form, kind=off, by=who, now=now)
            else:
                await self.store.put_word(session, term=t.text, form=form, category=t.category,
                                          level=t.level if off == "term" else "info", kind=hide, by=who, now=now)
            removed.append(f"{t.category}·{what}")
        return removed

    def category_words(self, category: str) -> tuple[list[Term], list[str]]:
        """A category's terms (strongest level first) and allow terms."""
        lexicon = self.matcher.lexicon
        terms = sorted((t for t in lexicon.terms if t.category == category),
                       key=lambda t: (-LEVEL_RANK[t.level], t.text))
        return terms, sorted(t.text for t in lexicon.allow if t.category == category)

    def term_counts(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for t in self.matcher.lexicon.terms:
            counts[t.category] = counts.get(t.category, 0) + 1
        return sorted(counts.items())


BEHAVIOUR_TERMS = {"redpacket": "发红包", "external_redpacket": "发红包", "transfer": "转账", "card": "推名片",
                   "weapp": "发小程序", "file": "发文件"}


def behaviour_hit(msg: Observed, levels: dict[str, str]) -> Hit | None:
    """The hit of a message that is itself the behaviour (category 「行为：发红包」), or None when its type is
    not watched (``behaviour_levels``: absent or ``off``)."""
    term = BEHAVIOUR_TERMS.get(msg.msgtype)
    level = levels.get(msg.msgtype, "off")
    if term is None or level == "off":
        return None
    return Hit(term=term, category=f"行为：{term}", level=level, start=0, end=len(msg.text), matched=msg.text,
               stage="behaviour", normalised=term, source=f"msgtype:{msg.msgtype}")


def _alert_row(msg: Observed, h: Hit, audience: str, version: str, context: list[dict[str, Any]],
               recalled: datetime | None, now: datetime) -> dict[str, Any]:
    return dict(
        dedup_key=bounded_key(f"{msg.key}|{h.category}|{h.term}", 255), msg_key=msg.key[:255], msg_id=msg.msg_id[:255],
        source=msg.source, audience=audience, chat_id=msg.chat.id[:200], chat_type=msg.chat.type,
        chat_name=msg.chat.name[:128], sender_id=msg.sender.id[:128], sender_name=msg.sender.name[:128],
        message_at=msg.at, created_at=now, text=msg.text[:2000], term=h.term[:64], category=h.category[:64],
        level=h.level, matched=h.matched[:255], span_start=h.start, span_end=h.end, normalised=h.normalised[:255],
        stage=h.stage, cut=h.cut, term_source=h.source[:255], lexicon_version=version, context=context,
        status="open" if h.level in ALERTING else "noted", notified=[], repeats=0, note="", recalled_at=recalled)


def proposal_for(row: Any) -> str:
    """An allow term for a false positive: the whole words around the hit (微信 → 微信支付) — none for a hit at
    full strength (the term's characters, not cut, at ``reject``: 包治百病 in 这款茶包治百病), where any phrase
    around it would hide that very violation from then on."""
    if row.stage == "behaviour" or (row.level == "reject" and not row.cut and row.stage != "pinyin"):
        return ""
    text = row.text
    a, b = row.span_start, row.span_end
    lo = max(0, a - 8)
    window = text[lo:min(len(text), b + 8)]
    proposal = words.propose_allow(window, a - lo, b - lo, fold_text(row.term))
    form, problem = check_term_text(proposal)
    if not form or problem or form == fold_text(row.term) or phrase_found(proposal, (row.matched, row.term)):
        return ""  # an allow term inside the hit's own words would cancel that hit wherever it is written
    return proposal
