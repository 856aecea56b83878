"""The ladder: applies events to the points ledger and moves members between tiers.

Every write goes through :meth:`Ladder.award` (or ``purchase`` / ``set_tier``):
it locks the member's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one
writer), skips an event already in the ledger (unique ``source_event``), applies
the daily cap, adds the entry, updates the running totals atomically and
re-evaluates the member. A tier change writes ``TierChange``, tells the member
and whoever should act (invite them to the next group), queues ``mark_tag`` and
emits ``tier_changed`` — all in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, func, select, update

from bot.events import Actor, Chat, Event, TagAdded, TierChanged
from bot.members import MemberProfile
from bot.storage.db import insert_ignoring_conflicts
from bot.tiers.models import Group, GroupMembership, Member, MemberTag, PointsEntry, Purchase, Tag, TierChange
from bot.tiers.rules import ACTIONS, Decision, Rules, Stats, evaluate

log = logging.getLogger("siyu.tiers")

MEMBER = Member.__table__
LEDGER = PointsEntry.__table__
GROUP = Group.__table__
MEMBERSHIP = GroupMembership.__table__
TAGS = MemberTag.__table__
TAG_NAMES = Tag.__table__
CHANGES = TierChange.__table__
PURCHASES = Purchase.__table__

# Which running total an action feeds.
COUNTERS = {"message": "messages", "checkin": "checkins", "homework": "homework", "referral": "referrals",
            "purchase": "purchases"}


class Effects(Protocol):
    """How the ladder sends and emits: a handler's Context, or :class:`SessionEffects` elsewhere."""

    async def send(self, kind: str, *, text: str = "", chat: Chat | dict[str, Any] | None = None,
                   to: Sequence[str] = (), key: str | None = None, **kw: Any) -> int: ...

    async def emit(self, event: Event) -> bool: ...


class SessionEffects:
    """Effects for work outside a handler (cron, CLI): queue into the given session; kick after commit."""

    def __init__(self, app: Any, session: Any, source: str) -> None:
        self.app = app
        self.session = session
        self.source = source
        self.queued = 0
        self.emitted = 0

    async def send(self, kind: str, *, text: str = "", chat: Chat | dict[str, Any] | None = None,
                   to: Sequence[str] = (), key: str | None = None, **kw: Any) -> int:
        if key is None:
            raise ValueError("a key is required outside a handler")
        n = await self.app.outbox.enqueue(self.session, key=key, kind=kind, text=text, chat=chat, to=list(to),
                                          source=self.source, **kw)
        self.queued += n
        return n

    async def emit(self, event: Event) -> bool:
        new = await self.app.inbox_pump.emit(self.session, event)
        self.emitted += int(new)
        return new

    def kick(self) -> None:
        if self.queued:
            self.app.outbox_pump.kick()
        if self.emitted:
            self.app.inbox_pump.kick()


@dataclass(slots=True)
class Award:
    """What one ledger write did."""

    member_id: str
    action: str
    points: int = 0          # points actually added (after the cap)
    duplicate: bool = False  # the source event was already in the ledger
    capped: bool = False     # the daily cap swallowed some or all of it
    change: TierChange | None = None
    decision: Decision | None = None


@dataclass(slots=True)
class Difference:
    member_id: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (stored, recomputed)


def stats_of(row: Any) -> Stats:
    return Stats(points=row.points, messages=row.messages, checkins=row.checkins, homework=row.homework,
                 referrals=row.referrals, purchases=row.purchases, spend_cents=row.spend_cents,
                 joined_at=row.joined_at, last_active_at=row.last_active_at, override=row.tier_override)


class Ladder:
    def __init__(self, app: Any, rules: Rules) -> None:
        self.app = app
        self.rules = rules

    @property
    def dialect(self) -> str:
        return str(self.app.db.dialect)

    def local_day(self, at: datetime) -> str:
        return at.astimezone(self.app.config.bot.tz).strftime("%Y-%m-%d")

    # ── members and groups ──

    async def touch(self, session: Any, actor: Actor, at: datetime, *, chat: Chat | None = None,
                    active: bool = False, state: str | None = None, owner_staff: str | None = None,
                    inviter: str | None = None) -> Any:
        """Create or refresh a member and lock their row for the rest of the transaction.

        A known member costs one statement: the UPDATE (which also takes the row lock on PostgreSQL)
        returns the row; only a new member is inserted and read back.
        """
        values: dict[str, Any] = {}
        if actor.name:
            values["name"] = actor.name
        if active:
            values["last_active_at"] = at
            if chat is not None and chat.is_group:
                values["last_chat_id"] = chat.id
        if state:
            values["source_state"] = state
        if owner_staff:
            values["owner_staff"] = owner_staff
        if values:
            row = (await session.execute(update(MEMBER).where(MEMBER.c.id == actor.id).values(**values)
                                         .returning(*MEMBER.c))).first()
            if row is not None:
                return row
        else:
            row = await self.lock(session, actor.id)
            if row is not None:
                return row
        await session.execute(insert_ignoring_conflicts(self.dialect, MEMBER, ["id"]).values(
            id=actor.id, name=actor.name, staff=actor.staff, joined_at=at, source_state=state or "",
            inviter_id=inviter, owner_staff=owner_staff, tier=self.rules.lowest.id, tier_since=at, points=0,
            messages=0, checkins=0, homework=0, referrals=0, purchases=0, spend_cents=0,
            last_active_at=at if active else None, last_chat_id=chat.id if chat and chat.is_group else None))
        if values:  # another transaction may have inserted the member in between
            await session.execute(update(MEMBER).where(MEMBER.c.id == actor.id).values(**values))
        return await self.lock(session, actor.id)

    async def lock(self, session: Any, member_id: str) -> Any:
        q = select(MEMBER).where(MEMBER.c.id == member_id)
        if not self.app.db.is_sqlite:
            q = q.with_for_update()
        return (await session.execute(q)).first()

    async def group(self, session: Any, chat: Chat, at: datetime) -> Any:
        await session.execute(insert_ignoring_conflicts(self.dialect, GROUP, ["chat_id"]).values(
            chat_id=chat.id, name=chat.name, member_count=0, created_at=at))
        if chat.name:
            await session.execute(update(GROUP).where(and_(GROUP.c.chat_id == chat.id, GROUP.c.name != chat.name))
                                  .values(name=chat.name))
        return (await session.execute(select(GROUP).where(GROUP.c.chat_id == chat.id))).first()

    async def joined(self, session: Any, chat: Chat, member: Actor, at: datetime, *, scene: str,
                     inviter: str | None) -> bool:
        """Record a membership; False if the member was already in the group."""
        current = (await session.execute(select(MEMBERSHIP.c.left_at).where(and_(
            MEMBERSHIP.c.chat_id == chat.id, MEMBERSHIP.c.member_id == member.id)))).first()
        if current is not None and current.left_at is None:
            return False
        await self.group(session, chat, at)
        if current is None:
            await session.execute(MEMBERSHIP.insert().values(chat_id=chat.id, member_id=member.id, joined_at=at,
                                                             join_scene=scene, inviter_id=inviter))
        else:
            await session.execute(update(MEMBERSHIP).where(and_(
                MEMBERSHIP.c.chat_id == chat.id, MEMBERSHIP.c.member_id == member.id)).values(
                joined_at=at, join_scene=scene, inviter_id=inviter, left_at=None))
        await session.execute(update(GROUP).where(GROUP.c.chat_id == chat.id)
                              .values(member_count=GROUP.c.member_count + 1))
        return True

    async def left(self, session: Any, chat: Chat, member_id: str, at: datetime) -> None:
        res = await session.execute(update(MEMBERSHIP).where(and_(
            MEMBERSHIP.c.chat_id == chat.id, MEMBERSHIP.c.member_id == member_id, MEMBERSHIP.c.left_at.is_(None)))
            .values(left_at=at))
        if res.rowcount:
            await session.execute(update(GROUP).where(and_(GROUP.c.chat_id == chat.id, GROUP.c.member_count > 0))
                                  .values(member_count=GROUP.c.member_count - 1))

    async def resolve(self, session: Any, who: str) -> list[Any]:
        """Members matching an id or a display name (several when the name is ambiguous)."""
        rows = (await session.execute(select(MEMBER).where(MEMBER.c.id == who))).all()
        if rows:
            return list(rows)
        return list((await session.execute(select(MEMBER).where(MEMBER.c.name == who).limit(5))).all())

    # ── the ledger ──

    async def award(self, session: Any, fx: Effects, member_id: str, action: str, *, source_event: str,
                    at: datetime, points: int | None = None, reason: str = "", chat: Chat | None = None,
                    amount_cents: int = 0) -> Award:
        """Add one ledger entry (capped, once per source event) and re-evaluate the member.

        Concurrent awards for one member are serialised by the member's row lock (PostgreSQL) or
        the single writer (SQLite), taken before the cap is counted.
        """
        rule = self.rules.action(action) if action in ACTIONS else None
        wanted = points if points is not None else (rule.points if rule else 0)
        if not self.app.db.is_sqlite and await self.lock(session, member_id) is None:
            raise LookupError(f"no member {member_id!r}")
        result = Award(member_id, action)
        day = self.local_day(at)
        granted = wanted
        if rule is not None and rule.daily_cap is not None and points is None:
            # daily_cap counts the times an action earns points in one local day; beyond it the
            # action is not recorded at all, so it neither adds points nor counts as a check-in.
            earned_today = (await session.execute(select(func.count()).where(and_(
                LEDGER.c.member_id == member_id, LEDGER.c.action == action, LEDGER.c.day == day)))).scalar_one()
            if earned_today >= rule.daily_cap:
                result.capped = True
                return result
        inserted = (await session.execute(insert_ignoring_conflicts(self.dialect, LEDGER, ["source_event"]).values(
            member_id=member_id, action=action, points=granted, amount_cents=amount_cents, reason=reason[:500],
            source_event=source_event[:255], chat_id=chat.id if chat else "", day=day, at=at,
        ).returning(LEDGER.c.id))).first()
        if inserted is None:
            result.duplicate = True
            return result
        result.points = granted
        totals: dict[str, Any] = {"points": MEMBER.c.points + granted}
        if action in COUNTERS:
            col = COUNTERS[action]
            totals[col] = MEMBER.c[col] + 1
        if amount_cents:
            totals["spend_cents"] = MEMBER.c.spend_cents + amount_cents
        member = (await session.execute(update(MEMBER).where(MEMBER.c.id == member_id).values(**totals)
                                        .returning(*MEMBER.c))).first()
        if member is None:
            raise LookupError(f"no member {member_id!r}")  # rolls the entry back with the transaction
        result.decision, result.change = await self.reevaluate(
            session, fx, member_id, at, source_event=source_event, chat=chat,
            reason=f"{ACTIONS.get(action, action)} +{granted}", member=member)
        return result

    async def purchase(self, session: Any, fx: Effects, member_id: str, amount_cents: int, *, sku: str,
                       recorded_by: str, source: str, at: datetime, chat: Chat | None = None) -> Award | None:
        """Record a purchase (once per source) and its points; None if the source was already recorded."""
        row = (await session.execute(insert_ignoring_conflicts(self.dialect, PURCHASES, ["source"]).values(
            member_id=member_id, amount_cents=amount_cents, sku=sku, recorded_by=recorded_by, source=source[:255],
            at=at).returning(PURCHASES.c.id))).first()
        if row is None:
            return None
        return await self.award(session, fx, member_id, "purchase", source_event=f"purchase:{row.id}", at=at,
                                reason=f"购买 {sku or ''} ¥{amount_cents / 100:.2f}".strip(), chat=chat,
                                amount_cents=amount_cents)

    # ── evaluation and its effects ──

    async def reevaluate(self, session: Any, fx: Effects, member_id: str, at: datetime, *, source_event: str,
                         chat: Chat | None = None, reason: str = "", operator: str | None = None,
                         member: Any = None) -> tuple[Decision, TierChange | None]:
        """Evaluate the member (``member``: their current row, when the caller has it) and apply a change."""
        if member is None:
            member = (await session.execute(select(MEMBER).where(MEMBER.c.id == member_id))).first()
        decision = evaluate(self.rules, stats_of(member), at)
        if decision.tier == member.tier:
            return decision, None
        change = await self._change(session, fx, member, decision, at, source_event=source_event, chat=chat,
                                    reason=reason, operator=operator)
        return decision, change

    async def _change(self, session: Any, fx: Effects, member: Any, decision: Decision, at: datetime, *,
                      source_event: str, chat: Chat | None, reason: str, operator: str | None) -> TierChange:
        old, new = member.tier, decision.tier
        direction = "up" if self.rules.index(new) > self.rules.index(old) else "down"
        await session.execute(update(MEMBER).where(MEMBER.c.id == member.id).values(tier=new, tier_since=at))
        change_id = (await session.execute(CHANGES.insert().values(
            member_id=member.id, from_tier=old, to_tier=new, direction=direction, rule=decision.rule,
            operator=operator, reason=reason[:500], source_event=source_event[:255], at=at,
        ).returning(CHANGES.c.id))).scalar_one()
        change = TierChange(id=change_id, member_id=member.id, from_tier=old, to_tier=new, direction=direction,
                            rule=decision.rule, operator=operator, reason=reason, source_event=source_event, at=at)
        await self._retag(session, member.id, old, new, at)
        await self._tell(session, fx, member, change, chat)
        actor = Actor(id=member.id, name=member.name, staff=member.staff)
        last_chat = chat if chat is not None and chat.is_group else (
            Chat(id=member.last_chat_id, type="group") if member.last_chat_id else None)
        await fx.emit(TierChanged(key=f"tier_changed:{change_id}", time=at, member=actor, from_tier=old,
                                  to_tier=new, reason=reason, chat=last_chat))
        log.info("member %s moved %s: %s → %s (%s)", member.id, direction, old, new, decision.rule)
        return change

    async def _retag(self, session: Any, member_id: str, old: str, new: str, at: datetime) -> None:
        await session.execute(TAGS.delete().where(and_(TAGS.c.member_id == member_id, TAGS.c.tag == f"tier:{old}")))
        await session.execute(insert_ignoring_conflicts(self.dialect, TAGS, ["member_id", "tag"]).values(
            member_id=member_id, tag=f"tier:{new}", source="tier", added_at=at))

    async def add_tag(self, session: Any, fx: Effects, member: Any, tag: str, *, source: str, at: datetime,
                      key: str) -> bool:
        """Put ``tag`` on a member (once); emits ``tag_added`` for the SOP triggers. False if it was there."""
        await session.execute(insert_ignoring_conflicts(self.dialect, TAG_NAMES, ["name"]).values(
            name=tag, kind="static", created_at=at))
        added = (await session.execute(insert_ignoring_conflicts(self.dialect, TAGS, ["member_id", "tag"]).values(
            member_id=member.id, tag=tag, source=source[:32], added_at=at).returning(TAGS.c.tag))).first()
        if added is None:
            return False
        chat = Chat(id=member.last_chat_id, type="group") if member.last_chat_id else None
        await fx.emit(TagAdded(key=f"tag_added:{key}"[:200], time=at, tag=tag, chat=chat,
                               member=Actor(id=member.id, name=member.name, staff=member.staff)))
        return True

    async def remove_tag(self, session: Any, member_id: str, tag: str) -> bool:
        res = await session.execute(TAGS.delete().where(and_(TAGS.c.member_id == member_id, TAGS.c.tag == tag)))
        return bool(res.rowcount)

    async def tag_counts(self, session: Any) -> list[tuple[str, int]]:
        rows = (await session.execute(select(TAGS.c.tag, func.count()).group_by(TAGS.c.tag)
                                      .order_by(func.count().desc(), TAGS.c.tag))).all()
        return [(r[0], int(r[1])) for r in rows]

    async def next_group(self, session: Any, tier_id: str) -> Any:
        """The group serving ``tier_id`` (by its tier or its group_tag) with room left, fullest first."""
        tier = self.rules.tier(tier_id)
        keys = {tier_id} | ({tier.group_tag} if tier and tier.group_tag else set())
        rows = (await session.execute(select(GROUP).where(and_(GROUP.c.tier.in_(sorted(keys)),
                                                               GROUP.c.dismissed_at.is_(None)))
                                      .order_by(GROUP.c.member_count.desc(), GROUP.c.chat_id))).all()
        for g in rows:
            if g.capacity is None or g.member_count < g.capacity:
                return g
        return None

    async def _tell(self, session: Any, fx: Effects, member: Any, change: TierChange, chat: Chat | None) -> None:
        cfg = self.app.config.tiers
        tier = self.rules.tier(change.to_tier)
        old = self.rules.tier(change.from_tier)
        render = self.app.templates.render
        base = f"tier:{change.id}"
        actor = {"id": member.id, "name": member.name or member.id}
        if change.direction == "up":
            # Celebrate where the member is (升级打怪 is public); otherwise through their staff contact.
            text = render("tiers/upgraded.j2", member=actor, tier=tier, old=old)
            if chat is not None:  # the member's own doing: answer where it happened
                await fx.send("reply", text=text, chat=chat, to=[member.id], key=f"{base}:member",
                              destination={"mention": [member.id]})
            elif member.last_chat_id:  # an operator's or the clock's doing: announce in their group
                await fx.send("group_robot", text=text, chat={"id": member.last_chat_id, "type": "group"},
                              to=[member.id], key=f"{base}:member", destination={"mention": [member.id]})
            elif member.owner_staff and not member.staff:
                await fx.send("mass_send", text=text, key=f"{base}:member",
                              destination={"sender": member.owner_staff, "external_userids": [member.id]})
        elif member.owner_staff and not member.staff:
            await fx.send("mass_send", text=render("tiers/downgraded.j2", member=actor, tier=tier, old=old),
                          key=f"{base}:member", destination={"sender": member.owner_staff,
                                                              "external_userids": [member.id]})
        group = await self.next_group(session, change.to_tier)
        owner = None
        if member.last_chat_id:
            owner = (await session.execute(select(GROUP.c.owner_id).where(
                GROUP.c.chat_id == member.last_chat_id))).scalar_one_or_none()
        operators = [owner] if owner else list(cfg.notify_users)
        if operators:
            await fx.send("app_message", to=operators, key=f"{base}:operator",
                          text=render("tiers/operator_notice.j2", member=actor, change=change, tier=tier, old=old,
                                      group=group))
        if not member.staff and member.id.startswith(("wm", "wo")):
            add = [cfg.wecom_tag_ids.get(change.to_tier, f"tier:{change.to_tier}")]
            remove = [cfg.wecom_tag_ids.get(change.from_tier, f"tier:{change.from_tier}")]
            await fx.send("mark_tag", text=f"{change.from_tier} → {change.to_tier}", key=f"{base}:tag",
                          destination={"userid": member.owner_staff or "", "external_userid": member.id},
                          payload={"add_tag": add, "remove_tag": remove})

    async def set_tier(self, session: Any, fx: Effects, member_id: str, tier_id: str | None, *, operator: str,
                       reason: str, source_event: str, at: datetime) -> tuple[Decision, TierChange | None]:
        """An operator's decision: pin the member to ``tier_id``, or ``None`` to follow the rules again."""
        await self.lock(session, member_id)
        await session.execute(update(MEMBER).where(MEMBER.c.id == member_id).values(tier_override=tier_id))
        return await self.reevaluate(session, fx, member_id, at, source_event=source_event, reason=reason,
                                     operator=operator)

    # ── reading ──

    async def profile(self, session: Any, member_id: str) -> MemberProfile | None:
        """The MemberDirectory protocol (bot.members)."""
        m = (await session.execute(select(MEMBER).where(MEMBER.c.id == member_id))).first()
        if m is None:
            return None
        tags = (await session.execute(select(TAGS.c.tag).where(TAGS.c.member_id == member_id)
                                      .order_by(TAGS.c.tag))).scalars().all()
        groups = (await session.execute(select(MEMBERSHIP.c.chat_id).where(and_(
            MEMBERSHIP.c.member_id == member_id, MEMBERSHIP.c.left_at.is_(None))).order_by(MEMBERSHIP.c.chat_id)
        )).scalars().all()
        tier = self.rules.tier(m.tier)
        return MemberProfile(id=m.id, name=m.name, tier=m.tier, tier_name=tier.name if tier else m.tier,
                             points=m.points, checkins=m.checkins, homework=m.homework, purchases=m.purchases,
                             tags=tuple(tags), groups=tuple(groups), joined_at=m.joined_at, staff=m.staff,
                             extra={"messages": m.messages, "referrals": m.referrals,
                                    "spend": m.spend_cents / 100, "last_active_at": m.last_active_at})

    # ── full recompute ──

    async def recompute(self, session: Any, fx: Effects | None, at: datetime, *, apply: bool = True,
                        batch: int = 5000) -> list[Difference]:
        """Rebuild every member's totals from the ledger and their tier from the rules.

        Returns what differed from the stored values; with ``apply`` the stored
        values are corrected (tier changes go through the usual effects).
        """
        sums: dict[str, dict[str, int]] = {}
        q = select(LEDGER.c.member_id, LEDGER.c.action, func.coalesce(func.sum(LEDGER.c.points), 0),
                   func.count(), func.coalesce(func.sum(LEDGER.c.amount_cents), 0)).group_by(
            LEDGER.c.member_id, LEDGER.c.action)
        for member_id, action, pts, n, cents in (await session.execute(q)).all():
            agg = sums.setdefault(member_id, {"points": 0, "messages": 0, "checkins": 0, "homework": 0,
                                              "referrals": 0, "purchases": 0, "spend_cents": 0})
            agg["points"] += int(pts)
            if action in COUNTERS:
                agg[COUNTERS[action]] += int(n)
            agg["spend_cents"] += int(cents)
        empty = {"points": 0, "messages": 0, "checkins": 0, "homework": 0, "referrals": 0, "purchases": 0,
                 "spend_cents": 0}
        diffs: list[Difference] = []
        last = ""
        while True:
            rows = (await session.execute(select(MEMBER).where(MEMBER.c.id > last).order_by(MEMBER.c.id)
                                          .limit(batch))).all()
            if not rows:
                break
            last = rows[-1].id
            for m in rows:
                totals = sums.get(m.id, empty)
                stored = {k: getattr(m, k) for k in empty}
                diff = Difference(m.id, {k: (stored[k], totals[k]) for k in empty if stored[k] != totals[k]})
                fixed = replace(stats_of(m), **{k: totals[k] for k in empty})
                decision = evaluate(self.rules, fixed, at)
                if decision.tier != m.tier:
                    diff.fields["tier"] = (m.tier, decision.tier)
                if not diff.fields:
                    continue
                diffs.append(diff)
                if apply:
                    if any(k != "tier" for k in diff.fields):
                        await session.execute(update(MEMBER).where(MEMBER.c.id == m.id).values(**totals))
                    if "tier" in diff.fields and fx is not None:
                        member = (await session.execute(select(MEMBER).where(MEMBER.c.id == m.id))).first()
                        await self._change(session, fx, member, decision, at, chat=None, reason="全量重算",
                                           source_event=f"recompute:{at.isoformat()}", operator=None)
        return diffs

    async def reevaluate_all(self, session: Any, fx: Effects, at: datetime, *, batch: int = 2000) -> int:
        """Apply time-based rules (days since join, silence) to everyone; returns the number of changes."""
        changed = 0
        last = ""
        while True:
            rows = (await session.execute(select(MEMBER).where(MEMBER.c.id > last).order_by(MEMBER.c.id)
                                          .limit(batch))).all()
            if not rows:
                return changed
            last = rows[-1].id
            for m in rows:
                decision = evaluate(self.rules, stats_of(m), at)
                if decision.tier != m.tier:
                    await self._change(session, fx, m, decision, at, source_event=f"daily:{self.local_day(at)}",
                                       chat=None, reason="每日复核（入群天数 / 沉默）", operator=None)
                    changed += 1

    async def weekly_stats(self, session: Any, at: datetime) -> dict[str, Any]:
        per_tier = dict((await session.execute(select(MEMBER.c.tier, func.count()).where(MEMBER.c.staff.is_(False))
                                                .group_by(MEMBER.c.tier))).all())
        since = at - timedelta(days=7)
        moves = dict((await session.execute(select(CHANGES.c.direction, func.count()).where(CHANGES.c.at >= since)
                                             .group_by(CHANGES.c.direction))).all())
        return {"per_tier": per_tier, "up": moves.get("up", 0), "down": moves.get("down", 0)}
