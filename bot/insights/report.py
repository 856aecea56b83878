"""The one query layer of the report: every figure of ``siyu report``, ``/stats`` and the console.

:meth:`Insights.report` computes the five dimensions of the seeds (用户、转化、行为、裂变、成交) and
NPS for a :class:`~bot.insights.period.Period`, each section with the same figures for the
period before under ``previous``. The statements are the features' (the tiers store, the
knowledge store, the SOP store's survey answers); what each figure counts is defined in docs/report.md, line by line.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.campaigns.store import CampaignsStore
from bot.insights.period import Period
from bot.knowledge import store as kb_store
from bot.sop import store as sop_store
from bot.storage.db import Database
from bot.tiers.rules import Rules
from bot.tiers.store import TiersStore

SECTIONS = ("users", "conversion", "behaviour", "referral", "deals", "nps")


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Insights:
    """The report over the tiers feature's members, ledger and purchases and the knowledge base's outcomes."""

    def __init__(self, db: Database, store: TiersStore, rules: Callable[[], Rules], *, silent_days: int,
                 channels: CampaignsStore | None = None) -> None:
        self.db = db
        self.store = store
        self.rules = rules          # the ladder in service (tiers.yaml is reloaded while the bot runs)
        self.silent_days = silent_days
        self.channels = channels    # the names of channel codes (渠道活码) by their state

    async def report(self, period: Period, chat_id: str | None = None) -> dict[str, Any]:
        """The whole report: ``period``, ``scope`` and one object per section, each with ``previous``.

        It reads on read sessions of its own, never in a writer's transaction (on SQLite a handler's
        session holds the write lock): the period and the one before at the same time, each on its own
        connection. Every figure is a SQL aggregate or a few rows (the database's threads do the work),
        so the event loop goes on serving pages and callbacks meanwhile."""
        now, before = await asyncio.gather(self._read_figures(period, chat_id),
                                           self._read_figures(period.previous(), chat_id))
        out: dict[str, Any] = {"period": {**period.to_json(), "previous": period.previous().to_json()},
                               "scope": {"group": chat_id}}
        for name in SECTIONS:
            out[name] = {**now[name], "previous": before[name]}
        return out

    async def _read_figures(self, period: Period, chat_id: str | None) -> dict[str, Any]:
        async with self.db.read() as session:
            return await self.figures(session, period, chat_id)

    async def figures(self, session: Any, period: Period, chat_id: str | None) -> dict[str, Any]:
        """The sections for one period (no ``previous``)."""
        users = await self.users(session, period, chat_id)
        buyers = await self.store.purchases_by_buyer(session, period.start, period.end, chat_id)
        return {
            "users": users,
            "conversion": await self.conversion(session, period, chat_id, users),
            "behaviour": await self.behaviour(session, period, chat_id, users["total"]),
            "referral": await self.referral(session, period, chat_id, buyers),
            "deals": self.deals(buyers),
            "nps": await self.nps(session, period, chat_id),
        }

    # ── NPS ──

    async def nps(self, session: Any, p: Period, chat_id: str | None = None) -> dict[str, Any]:
        """The survey scores answered in the period: NPS = % promoters (9–10) − % detractors (0–6), to one
        decimal; ``score`` None (and ``available`` false) without an answer."""
        counts = await sop_store.nps_counts(session, p.start, p.end, chat_id)
        n = sum(counts.values())
        score = round(100 * (counts["promoters"] - counts["detractors"]) / n, 1) if n else None
        return {"available": bool(n), "score": score, "responses": n, **counts}

    async def detractors(self, session: Any, p: Period, limit: int) -> list[Any]:
        """The latest detractors of the period with their comments (at most ``limit``)."""
        return await sop_store.detractor_comments(session, p.start, p.end, limit)

    # ── 用户维度 ──

    async def users(self, session: Any, p: Period, chat_id: str | None) -> dict[str, Any]:
        new, total = await self.store.member_counts(session, p.start, p.end, chat_id)
        by_tier = await self.store.tier_counts_at(session, p.end, chat_id)
        order = {t.id: i for i, t in enumerate(self.rules().tiers)}
        channels = await self.store.new_members_channels(session, p.start, p.end, chat_id)
        names = await self.channels.channel_names(session, (state for state, *_ in channels if state)) \
            if self.channels is not None else {}
        by_channel: dict[str, int] = {}
        for state, contact, scene, n in channels:
            channel = _channel(state, contact, scene, names)
            by_channel[channel] = by_channel.get(channel, 0) + int(n)
        return {"new": new, "total": total,
                "by_tier": dict(sorted(by_tier.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))),
                "by_channel": dict(sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0])))}

    # ── 转化维度 ──

    async def conversion(self, session: Any, p: Period, chat_id: str | None, users: dict[str, Any]
                         ) -> dict[str, Any]:
        tiers = self.rules().tiers
        index = {t.id: i for i, t in enumerate(tiers)}
        held = users["by_tier"]
        at_or_above = [sum(n for t, n in held.items() if index.get(t, -1) >= i) for i in range(len(tiers))]
        reached = [0] * len(tiers)                # per step: customers who reached it in the period
        middle: list[list[float]] = [[] for _ in tiers]  # per step: the median's one or two middle values, days
        for step, n, micros in await self.store.first_rises(session, p.start, p.end, chat_id, [t.id for t in tiers]):
            reached[step] = int(n)
            middle[step].append(int(micros) / 10**6 / 86400)  # as timedelta.total_seconds() / 86400
        funnel = []
        for k, t in enumerate(tiers):
            funnel.append({
                "tier": t.id, "name": t.name, "members": at_or_above[k],
                "rate": ratio(at_or_above[k], at_or_above[k - 1]) if k else None,
                "reached": users["new"] if k == 0 else reached[k],
                "median_days": round(statistics.median(middle[k]), 1) if k and middle[k] else None,
            })
        return {"funnel": funnel}

    # ── 行为维度 ──

    async def behaviour(self, session: Any, p: Period, chat_id: str | None, total: int) -> dict[str, Any]:
        since, until = p.since.isoformat(), p.until.isoformat()
        chats = await self.store.activity_by_chat(session, since, until, chat_id)
        active = await self.store.active_members(session, since, until, chat_id)
        sizes = await self.store.group_sizes(session, p.end, [c for c, _, _ in chats if c] +
                                             ([chat_id] if chat_id else []))
        per_chat = {c: (int(m), int(a)) for c, m, a in chats}
        groups = []
        for c, (name, members) in sizes.items():
            messages, speakers = per_chat.get(c, (0, 0))
            groups.append({"chat_id": c, "name": name, "members": members, "messages": messages,
                           "active": speakers, "active_rate": ratio(speakers, members)})
        groups.sort(key=lambda g: (-g["messages"], g["chat_id"]))
        checkins, checkin_members = await self.store.action_counts(session, "checkin", since, until, chat_id)
        homework, homework_members = await self.store.action_counts(session, "homework", since, until, chat_id)
        window = p.until - timedelta(days=self.silent_days - 1)
        quiet_since = p.midnight(window)
        silent = await self.store.silent_members(session, window.isoformat(), until, quiet_since, p.end, chat_id)
        kb = await kb_store.outcome_counts(session, since, until, chat_id)
        asked = kb["answered"] + kb["suggested"] + kb["missed"]
        return {
            "messages": sum(m for m, _ in per_chat.values()), "active": active, "active_rate": ratio(active, total),
            "checkins": checkins, "checkin_members": checkin_members, "checkin_rate": ratio(checkin_members, active),
            "homework": homework, "homework_members": homework_members,
            "homework_rate": ratio(homework_members, active),
            "silent": silent, "silent_days": self.silent_days, "groups": groups,
            "kb": {**kb, "questions": asked, "answered_rate": ratio(kb["answered"], asked),
                   "suggested_rate": ratio(kb["suggested"], asked), "missed_rate": ratio(kb["missed"], asked)},
        }

    # ── 裂变维度 ──

    async def referral(self, session: Any, p: Period, chat_id: str | None, buyers: Any) -> dict[str, Any]:
        return {"invites": await self.store.invitation_joins(session, p.start, p.end, chat_id),
                "joined": await self.store.invited_new(session, p.start, p.end, chat_id),
                "bought": sum(1 for b in buyers if b[4])}

    # ── 成交维度 ──

    def deals(self, buyers: Any) -> dict[str, Any]:
        """``buyers``: :meth:`~bot.tiers.store.TiersStore.purchases_by_buyer` of the period."""
        order = {t.id: i for i, t in enumerate(self.rules().tiers)}
        by_tier: dict[str, dict[str, Any]] = {}
        for _member, n, cents, _before_end, _invited, tier_now, tier_then in buyers:
            slot = by_tier.setdefault(tier_then or tier_now, {"purchases": 0, "cents": 0, "buyers": 0})
            slot["purchases"] += int(n)
            slot["cents"] += int(cents)
            slot["buyers"] += 1
        cents = sum(int(b[2]) for b in buyers)
        repeat = sum(1 for b in buyers if int(b[3]) >= 2)
        return {
            "purchases": sum(int(b[1]) for b in buyers), "buyers": len(buyers), "gmv": cents / 100,
            "repurchase_rate": ratio(repeat, len(buyers)), "repeat_buyers": repeat,
            "by_tier": {t: {"purchases": v["purchases"], "buyers": v["buyers"], "gmv": v["cents"] / 100}
                        for t, v in sorted(by_tier.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))},
        }


def _channel(state: str, contact: Any, scene: str | None, names: dict[str, str]) -> str:
    """A new customer's channel: ``channel:<name>`` (the state of a channel code made with /channel add),
    ``state:<code>`` (another contact way's state), else ``contact`` (added by staff), else
    ``group:<scene>`` of their earliest group join (invite, qrcode, other), else ``unknown``."""
    if state in names:
        return f"channel:{names[state]}"
    if state:
        return f"state:{state}"
    if contact:
        return "contact"
    return f"group:{scene}" if scene else "unknown"


def flatten(report: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(metric, value, previous) for every number of the report (``--csv``), e.g.
    ``users.by_tier.vip``, ``conversion.funnel.quality.rate``, ``behaviour.groups.<chat id>.messages``."""
    rows: list[tuple[str, Any, Any]] = []
    for name in SECTIONS:
        section = report[name]
        prev = _leaves(section.get("previous", {}), name)
        now = _leaves({k: v for k, v in section.items() if k != "previous"}, name)
        rows.extend((key, value, prev.get(key)) for key, value in now.items())
        rows.extend((key, None, value) for key, value in prev.items() if key not in now)
    return rows


def _leaves(obj: Any, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
    elif isinstance(obj, list):
        for item in obj:
            key = item.get("tier") or item.get("chat_id")
            out.update(_leaves({k: v for k, v in item.items() if k not in ("tier", "chat_id", "name")},
                               f"{prefix}.{key}"))
    else:
        out[prefix] = obj
    return out
