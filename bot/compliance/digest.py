"""The daily digest: yesterday's alerts by category, level, staff member and term, the oldest open alerts,
and a week of keyword analysis per staff member — to the compliance robot and the reviewers."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.compliance.alerts import LEVEL_MARK, robot_destination
from bot.effects import Effects

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.compliance.store import Store


class Digest:
    def __init__(self, app: BotApp, store: Store) -> None:
        self.app = app
        self.store = store
        self.cfg = app.config.moderation

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.app.config.bot.tz)

    async def send(self, fire_time: datetime) -> int:
        """The cron job: queue the digest of the day before ``fire_time`` (once per day, by key)."""
        day = self.local(fire_time).strftime("%Y-%m-%d")
        async with self.app.db.session() as s:
            fx = Effects(self.app, s, source=f"moderation-digest:{day}")
            text = self.app.templates.render("moderation/digest.j2", d=await self.data(s, fire_time), mark=LEVEL_MARK)
            if self.cfg.robot:
                await fx.send("group_robot", text=text, destination=robot_destination(self.cfg.robot),
                              key=f"moderation:digest:{day}:robot")
            if self.cfg.reviewers:
                await fx.send("app_message", text=text, to=self.cfg.reviewers, key=f"moderation:digest:{day}:app")
        fx.kick()
        return fx.queued

    async def data(self, session: Any, end: datetime) -> dict[str, Any]:
        start = end - timedelta(days=1)
        rows = await self.store.alerts_between(session, start, end)
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
        open_rows = await self.store.oldest_open(session, top)
        return {"start": self.local(start), "end": self.local(end), "total": len(rows),
                "repeats": sum(r.repeats for r in rows),
                "repeated": sorted(((r.sender_name or r.sender_id, r.term, r.repeats) for r in rows if r.repeats),
                                   key=lambda x: -x[2])[:top],
                "by_category": by_cat.most_common(), "by_level": dict(by_level),
                "by_staff": [(names[s], s, n) for s, n in by_staff.most_common(top)],
                "terms": terms.most_common(top), "open_count": await self.store.count_alerts(session, "open"),
                "open": [dict(r._mapping) | {"age_h": (end - r.created_at).total_seconds() / 3600} for r in open_rows],
                "keywords": await self.keyword_analysis(session, end - timedelta(days=7), end)}

    async def keyword_analysis(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per staff member this week: messages, the lexicon terms they hit, their most used words."""
        from moderation import words  # function-level: jieba loads only when a digest is made

        top = self.cfg.digest_top
        texts: dict[str, list[str]] = defaultdict(list)
        names: dict[str, str] = {}
        for m in await self.store.staff_texts(session, start, end):
            texts[m.sender_id].append(m.text)
            names[m.sender_id] = m.sender_name or m.sender_id
        hit_terms: dict[str, Counter[str]] = defaultdict(Counter)
        for sender, term, n in await self.store.staff_hits(session, start, end):
            hit_terms[sender][term] += n
        ranked = sorted(texts, key=lambda s: (-sum(hit_terms[s].values()), -len(texts[s]), s))[:top]
        out = []
        for sender in ranked:
            kw = await asyncio.to_thread(words.keywords, texts[sender], top)
            out.append({"sender": sender, "name": names[sender], "messages": len(texts[sender]),
                        "terms": hit_terms[sender].most_common(top), "words": kw})
        return out
