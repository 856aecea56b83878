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
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bot.commands import strip_bot_mention
from bot.events import Actor, Chat, MessageEvent, TagAdded, TierChanged
from bot.routing import command_text
from bot.storage.keys import bounded_key
from bot.tiers.models import TierChange
from bot.tiers.rules import (
    ACTIONS,
    LEDGER_ACTIONS,
    POINTS_TOTAL_LIMIT,
    REQUIREMENTS,
    SPEND_TOTAL_LIMIT_CENTS,
    STREAK,
    Decision,
    Rules,
    Stats,
    Tier,
    evaluate,
)
from bot.tiers.store import TiersStore

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.effects import Effects

log = logging.getLogger("siyu.tiers")

# Which running total an action feeds.
COUNTERS = {"message": "messages", "checkin": "checkins", "homework": "homework", "referral": "referrals",
            "purchase": "purchases"}
TOTALS = ("points", "messages", "checkins", "homework", "referrals", "purchases", "spend_cents")
LEAD_RX = re.compile(r"^[\s#＃【\[「(（]+")  # what may come before a keyword: #打卡, 【打卡】, 「交作业」
KEYWORD_ACTIONS = ("checkin", "homework")
# What makes a message that starts with a keyword a question about it (「打卡有积分吗」, 「交作业 要求是什么？」),
# not a check-in or homework: a question mark or 吗/么/嘛 at its end, or a question word right after the keyword.
QUESTION_END_RX = re.compile(r"([?？]|[吗么嘛][\s。.!！~～]*)$")
QUESTION_WORDS = ("怎么", "怎样", "如何", "为什么", "为啥", "咋", "是什么", "有什么", "有没有", "有积分", "能不能",
                  "可以", "可不可以", "规则", "要求", "在哪", "几点", "多少", "算不算", "是不是", "会不会")


def asks_about(text: str, keyword: str) -> bool:
    """Whether ``text`` (starting with ``keyword``) asks about the action instead of doing it."""
    rest = text[len(keyword):].lstrip(" \t:：,，+＋")
    return bool(QUESTION_END_RX.search(text.rstrip())) or rest.startswith(QUESTION_WORDS)


@dataclass(slots=True)
class Award:
    """What one ledger write did."""

    member_id: str
    action: str
    points: int = 0          # points actually added (after the cap)
    duplicate: bool = False  # the source event was already in the ledger
    capped: bool = False     # the daily cap swallowed some or all of it
    limited: bool = False    # not recorded: the member's totals would leave their bounds (rules.POINTS_TOTAL_LIMIT …)
    change: TierChange | None = None
    decision: Decision | None = None
    streak: Award | None = None  # a check-in that completed a streak: the bonus it earned


@dataclass(slots=True)
class Seen:
    """A member's row as :meth:`Ladder.refresh` left it (locked), with what their next ledger entries need,
    read in the same statement. Good for the rest of one event's handler only: the awards and the
    membership it records keep it current, nothing else does."""

    row: Any
    day: str                      # the local day of ``today``
    chat_id: str | None = None    # the chat ``in_chat`` is about (None: not asked)
    in_chat: int | None = None    # 1 in that group now, 0 left it, None never in it
    today: dict[str, int] = field(default_factory=dict)  # ledger entries per action on ``day`` (those read)


@dataclass(slots=True)
class Difference:
    member_id: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (stored, recomputed)


def beyond_limits(member: Any, points: int, amount_cents: int) -> bool:
    """Whether adding ``points`` and ``amount_cents`` takes the member's totals beyond their bounds."""
    after = member.points + points
    # a correction towards zero is always allowed (a total already out of bounds can be brought back)
    return (abs(after) > POINTS_TOTAL_LIMIT and abs(after) >= abs(member.points) and points != 0) or (
        amount_cents > 0 and member.spend_cents + amount_cents > SPEND_TOTAL_LIMIT_CENTS)


def stats_of(row: Any) -> Stats:
    return Stats(points=row.points, messages=row.messages, checkins=row.checkins, homework=row.homework,
                 referrals=row.referrals, purchases=row.purchases, spend_cents=row.spend_cents,
                 joined_at=row.joined_at, last_active_at=row.last_active_at, override=row.tier_override)


class Ladder:
    """The tiers service: every command and event handler of the feature calls one of its methods."""

    def __init__(self, app: BotApp, rules: Rules, store: TiersStore | None = None) -> None:
        self.app = app
        self.rules = rules
        self.store = store or TiersStore(app.db)

    def local_day(self, at: datetime) -> str:
        return at.astimezone(self.app.config.bot.tz).strftime("%Y-%m-%d")

    def submissions(self, event: MessageEvent) -> list[str]:
        """The actions a member's message performs by starting with their keyword (「打卡 白牡丹 清甜」);
        a question about one (「打卡有积分吗」) performs none."""
        if event.sender.staff or command_text(event.text) is not None:
            return []
        text = LEAD_RX.sub("", strip_bot_mention(event.text, self.app.bot_names))
        return [a for a in KEYWORD_ACTIONS if (rule := self.rules.action(a)) is not None
                and any(text.startswith(k) and not asks_about(text, k) for k in rule.keywords)]

    # ── members and groups ──

    async def touch(self, session: Any, actor: Actor, at: datetime, *, chat: Chat | None = None,
                    active: bool = False, state: str | None = None, owner_staff: str | None = None,
                    inviter: str | None = None) -> Any:
        """Create or refresh a member and lock their row for the rest of the transaction; their row."""
        seen = await self.refresh(session, actor, at, chat=chat, active=active, state=state,
                                  owner_staff=owner_staff, inviter=inviter)
        return seen.row

    async def refresh(self, session: Any, actor: Actor, at: datetime, *, chat: Chat | None = None,
                      active: bool = False, state: str | None = None, owner_staff: str | None = None,
                      inviter: str | None = None, actions: tuple[str, ...] = ()) -> Seen:
        """:meth:`touch`, and in the same statement what the event's next steps need: whether the member is in
        ``chat`` (a group; for :meth:`joined`) and, on SQLite, their entries of ``actions`` today (the daily
        caps of :meth:`award`). Pass the result to those two as ``seen``.

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
        day, chat_id = self.local_day(at), chat.id if chat is not None and chat.is_group else None
        asked = tuple(a for a in actions if (rule := self.rules.action(a)) is not None and rule.daily_cap is not None)
        row = await self.store.refresh_member(session, actor.id, values, chat_id=chat_id, day=day, actions=asked)
        if row is None:
            await self.store.insert_member(
                session, id=actor.id, name=actor.name, staff=actor.staff, joined_at=at, source_state=state or "",
                inviter_id=inviter, owner_staff=owner_staff, tier=self.rules.lowest.id, tier_since=at,
                **dict.fromkeys(TOTALS, 0), last_active_at=at if active else None,
                last_chat_id=chat.id if chat and chat.is_group else None)
            # another transaction may have inserted the member in between: values again, and read back
            row = await self.store.refresh_member(session, actor.id, values, chat_id=chat_id, day=day,
                                                  actions=asked)
        extra = row._mapping
        return Seen(row, day, chat_id, extra["in_chat"] if chat_id is not None else None,
                    {a: extra[f"today_{i}"] for i, a in enumerate(asked) if f"today_{i}" in extra})

    async def group(self, session: Any, chat: Chat, at: datetime) -> Any:
        """The group's row (created on first sight)."""
        return await self.store.ensure_group(session, chat, at)

    async def group_created(self, session: Any, chat: Chat, owner_id: str | None, at: datetime) -> None:
        row = await self.store.ensure_group(session, chat, at)
        if owner_id is not None and row.owner_id is None:
            await self.store.set_group(session, chat.id, owner_id=owner_id)

    async def group_dismissed(self, session: Any, chat_id: str, at: datetime) -> None:
        await self.store.set_group(session, chat_id, dismissed_at=at)

    async def serve(self, session: Any, chat: Chat, tier: Tier, capacity: int | None, at: datetime) -> Any:
        """``/group set``: the group serves ``tier`` (up to ``capacity`` members); its row afterwards."""
        await self.store.ensure_group(session, chat, at)
        await self.store.set_group(session, chat.id, tier=tier.id, capacity=capacity)
        return await self.store.group(session, chat.id)

    async def set_owner(self, session: Any, chat: Chat, owner_id: str, at: datetime) -> Any:
        """``/group owner``: who runs the group (told of its members' tier changes); its row afterwards."""
        await self.store.ensure_group(session, chat, at)
        await self.store.set_group(session, chat.id, owner_id=owner_id)
        return await self.store.group(session, chat.id)

    async def tiered_groups(self, session: Any) -> list[Any]:
        return list(await self.store.tiered_groups(session))

    async def joined(self, session: Any, chat: Chat, member: Actor, at: datetime, *, scene: str,
                     inviter: str | None, seen: Seen | None = None) -> bool:
        """Record a membership; False if the member was already in the group. ``seen``: what
        :meth:`refresh` read of the member in this chat (no query then)."""
        if seen is not None and seen.row.id == member.id and seen.chat_id == chat.id:
            state = seen.in_chat
        else:
            current = await self.store.membership(session, chat.id, member.id)
            state = None if current is None else int(current.left_at is None)
        if state == 1:
            return False
        await self.store.ensure_group(session, chat, at)
        await self.store.enter(session, chat.id, member.id, first=state is None, at=at, scene=scene,
                               inviter=inviter)
        if seen is not None and seen.row.id == member.id and seen.chat_id == chat.id:
            seen.in_chat = 1
        return True

    async def left(self, session: Any, chat: Chat, member_id: str, at: datetime) -> None:
        await self.store.leave(session, chat.id, member_id, at)

    async def count_message(self, session: Any, member_id: str, chat: Chat, at: datetime) -> None:
        """A customer's message (not a command) counted for the day and chat, cap or no cap (the report's
        activity and silence); 1:1 chats count under chat id ""."""
        await self.store.count_message(session, member_id, chat.id if chat.is_group else "", self.local_day(at))

    async def resolve(self, session: Any, who: str) -> list[Any]:
        """Members matching an id or a display name (several when the name is ambiguous)."""
        return await self.store.find_members(session, who, limit=5)

    # ── the ledger ──

    async def award(self, session: Any, fx: Effects, member_id: str, action: str, *, source_event: str,
                    at: datetime, points: int | None = None, reason: str = "", chat: Chat | None = None,
                    amount_cents: int = 0, seen: Seen | None = None) -> Award:
        """Add one ledger entry (capped, once per source event) and re-evaluate the member.

        Concurrent awards for one member are serialised by the member's row lock (PostgreSQL) or
        the single writer (SQLite), taken before the cap is counted. ``seen``: the member as
        :meth:`refresh` locked and read them in this event (then neither is read again; it is kept current).
        """
        rule = self.rules.action(action) if action in ACTIONS else None
        granted = points if points is not None else (rule.points if rule else 0)
        day = self.local_day(at)
        if seen is not None and seen.row.id != member_id:
            seen = None
        current = seen.row if seen is not None else await self.store.lock(session, member_id)
        if current is None:
            raise LookupError(f"no member {member_id!r}")
        result = Award(member_id, action)
        capped = rule is not None and rule.daily_cap is not None and points is None
        if capped:
            # daily_cap counts the times an action earns points in one local day; beyond it the
            # action is not recorded at all, so it neither adds points nor counts as a check-in.
            known = seen.today.get(action) if seen is not None and seen.day == day else None
            today = known if known is not None else await self.store.entries_on_day(session, member_id, action, day)
            if today >= rule.daily_cap:
                result.capped = True
                return result
        if beyond_limits(current, granted, amount_cents):
            result.limited = True
            log.warning("member %s: %+d points / %d cents not recorded, their totals would leave the bounds",
                        member_id, granted, amount_cents)
            return result
        if not await self.store.add_entry(
                session, member_id=member_id, action=action, points=granted, amount_cents=amount_cents,
                reason=reason[:500], source_event=bounded_key(source_event, 255), chat_id=chat.id if chat else "",
                day=day, at=at):
            result.duplicate = True
            return result
        result.points = granted
        counter = COUNTERS.get(action)
        if not await self.store.add_totals(session, member_id, granted, counter, amount_cents):
            raise LookupError(f"no member {member_id!r}")  # rolls the entry back with the transaction
        # the row as the UPDATE left it, without reading it back: the lock kept anyone else from moving it
        member = SimpleNamespace(**(vars(current) if isinstance(current, SimpleNamespace) else current._mapping))
        member.points += granted
        member.spend_cents += amount_cents
        if counter is not None:
            setattr(member, counter, getattr(member, counter) + 1)
        result.decision, result.change = await self.reevaluate(
            session, fx, member_id, at, source_event=source_event, chat=chat,
            reason=f"{LEDGER_ACTIONS.get(action, action)} +{granted}", member=member)
        if result.change is not None:
            member.tier, member.tier_since = result.change.to_tier, at
        if seen is not None:
            seen.row = member
            if seen.day == day and action in seen.today:
                seen.today[action] += 1
        if action == "checkin" and points is None:
            result.streak = await self._streak_bonus(session, fx, member_id, day, at, chat, seen)
        return result

    async def _streak_bonus(self, session: Any, fx: Effects, member_id: str, day: str, at: datetime,
                            chat: Chat | None, seen: Seen | None = None) -> Award | None:
        """The ``streak`` bonus when this check-in day is the ``days``-th of a run of consecutive check-in
        days (the day before the run has none): once a streak, however long it goes on."""
        streak = self.rules.streak
        if streak is None:
            return None
        today = date.fromisoformat(day)
        run = [(today - timedelta(days=i)).isoformat() for i in range(streak.days + 1)]
        days = await self.store.days_with(session, member_id, "checkin", run[-1])
        if not all(d in days for d in run[:-1]) or run[-1] in days:
            return None
        bonus = await self.award(session, fx, member_id, STREAK, source_event=f"streak:{member_id}:{day}", at=at,
                                 points=streak.points, reason=f"连续打卡 {streak.days} 天", chat=chat, seen=seen)
        return bonus if bonus.points else None

    async def purchase(self, session: Any, fx: Effects, member_id: str, amount_cents: int, *, sku: str,
                       recorded_by: str, source: str, at: datetime, chat: Chat | None = None) -> Award | None:
        """Record a purchase (once per source) and its points; None if the source was already recorded,
        ``limited`` when it would take the member's totals beyond their bounds (nothing recorded)."""
        current = await self.store.lock(session, member_id)
        rule = self.rules.action("purchase")
        if current is not None and beyond_limits(current, rule.points if rule else 0, amount_cents):
            return Award(member_id, "purchase", limited=True)
        purchase_id = await self.store.add_purchase(session, member_id=member_id, amount_cents=amount_cents,
                                                    sku=sku, recorded_by=recorded_by,
                                                    source=bounded_key(source, 255), at=at)
        if purchase_id is None:
            return None
        return await self.award(session, fx, member_id, "purchase", source_event=f"purchase:{purchase_id}", at=at,
                                reason=f"购买 {sku or ''} ¥{amount_cents / 100:.2f}".strip(), chat=chat,
                                amount_cents=amount_cents)

    # ── evaluation and its effects ──

    async def reevaluate(self, session: Any, fx: Effects, member_id: str, at: datetime, *, source_event: str,
                         chat: Chat | None = None, reason: str = "", operator: str | None = None,
                         member: Any = None) -> tuple[Decision, TierChange | None]:
        """Evaluate the member (``member``: their current row, when the caller has it) and apply a change."""
        if member is None:
            member = await self.store.member(session, member_id)
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
        await self.store.set_member(session, member.id, tier=new, tier_since=at)
        change_id = await self.store.add_change(
            session, member_id=member.id, from_tier=old, to_tier=new, direction=direction, rule=decision.rule,
            operator=operator, reason=reason[:500], source_event=bounded_key(source_event, 255), at=at)
        change = TierChange(id=change_id, member_id=member.id, from_tier=old, to_tier=new, direction=direction,
                            rule=decision.rule, operator=operator, reason=reason, source_event=source_event, at=at)
        await self.store.remove_tag(session, member.id, f"tier:{old}")
        await self.store.add_tag(session, member.id, f"tier:{new}", source="tier", at=at)
        await self._tell(session, fx, member, change, chat)
        actor = Actor(id=member.id, name=member.name, staff=member.staff)
        last_chat = chat if chat is not None and chat.is_group else (
            Chat(id=member.last_chat_id, type="group") if member.last_chat_id else None)
        await fx.emit(TierChanged(key=f"tier_changed:{change_id}", time=at, member=actor, from_tier=old,
                                  to_tier=new, reason=reason, chat=last_chat))
        log.info("member %s moved %s: %s → %s (%s)", member.id, direction, old, new, decision.rule)
        return change

    async def add_tag(self, session: Any, fx: Effects, member: Any, tag: str, *, source: str, at: datetime,
                      key: str) -> bool:
        """Put ``tag`` on a member (once); emits ``tag_added`` for the SOP triggers. False if it was there."""
        if not await self.store.add_tag(session, member.id, tag, source=source[:32], at=at, named=True):
            return False
        chat = Chat(id=member.last_chat_id, type="group") if member.last_chat_id else None
        await fx.emit(TagAdded(key=bounded_key(f"tag_added:{key}"), time=at, tag=tag, chat=chat,
                               member=Actor(id=member.id, name=member.name, staff=member.staff)))
        return True

    async def remove_tag(self, session: Any, member_id: str, tag: str) -> bool:
        return await self.store.remove_tag(session, member_id, tag)

    async def tags(self, session: Any, member_id: str) -> list[str]:
        return await self.store.member_tags(session, member_id)

    async def tag_counts(self, session: Any) -> list[tuple[str, int]]:
        return await self.store.tag_counts(session)

    async def next_group(self, session: Any, tier_id: str) -> Any:
        """The group serving ``tier_id`` (by its tier or its group_tag) with room left, fullest first."""
        tier = self.rules.tier(tier_id)
        keys = {tier_id} | ({tier.group_tag} if tier and tier.group_tag else set())
        for g in await self.store.groups_serving(session, keys):
            if g.capacity is None or g.member_count < g.capacity:
                return g
        return None

    async def _tell(self, session: Any, fx: Effects, member: Any, change: TierChange, chat: Chat | None) -> None:
        """The member, whoever should act (the group's owner, else tiers.notify_users) and WeCom's tags."""
        render = self.app.templates.render
        tier, old = self.rules.tier(change.to_tier), self.rules.tier(change.from_tier)
        base = f"tier:{change.id}"
        actor = {"id": member.id, "name": member.name or member.id}
        if change.direction == "up":
            await self._celebrate(fx, member, render("tiers/upgraded.j2", member=actor, tier=tier, old=old),
                                  chat, key=f"{base}:member")
        elif member.owner_staff and not member.staff:
            await fx.send("mass_send", text=render("tiers/downgraded.j2", member=actor, tier=tier, old=old),
                          key=f"{base}:member", destination={"sender": member.owner_staff,
                                                              "external_userids": [member.id]})
        group = await self.next_group(session, change.to_tier)
        owner = await self.store.group_owner(session, member.last_chat_id) if member.last_chat_id else None
        operators = [owner] if owner else list(self.app.config.tiers.notify_users)
        if operators:
            await fx.send("app_message", to=operators, key=f"{base}:operator",
                          text=render("tiers/operator_notice.j2", member=actor, change=change, tier=tier, old=old,
                                      group=group))
        if not member.staff and member.id.startswith(("wm", "wo")):
            tag_ids = self.app.config.tiers.wecom_tag_ids
            await self.mark_tag(fx, member, add=[tag_ids.get(change.to_tier, f"tier:{change.to_tier}")],
                                remove=[tag_ids.get(change.from_tier, f"tier:{change.from_tier}")],
                                key=f"{base}:tag", text=f"{change.from_tier} → {change.to_tier}")

    @staticmethod
    async def mark_tag(fx: Effects, member: Any, *, add: list[str], remove: list[str], key: str,
                       text: str = "") -> None:
        """Put and take WeCom tags (tag ids) on an external contact, as seen by the staff member who added them."""
        await fx.send("mark_tag", text=text or " ".join([*(f"+{t}" for t in add), *(f"-{t}" for t in remove)]),
                      key=key, destination={"userid": member.owner_staff or "", "external_userid": member.id},
                      payload={"add_tag": add, "remove_tag": remove})

    @staticmethod
    async def _celebrate(fx: Effects, member: Any, text: str, chat: Chat | None, *, key: str) -> None:
        """An upgrade is public (升级打怪): where it happened, else in the member's group, else privately."""
        if chat is not None:  # the member's own doing: answer where it happened
            await fx.send("reply", text=text, chat=chat, to=[member.id], key=key,
                          destination={"mention": [member.id]})
        elif member.last_chat_id:  # an operator's or the clock's doing: announce in their group
            await fx.send("group_robot", text=text, chat={"id": member.last_chat_id, "type": "group"},
                          to=[member.id], key=key, destination={"mention": [member.id]})
        elif member.owner_staff and not member.staff:
            await fx.send("mass_send", text=text, key=key,
                          destination={"sender": member.owner_staff, "external_userids": [member.id]})

    async def set_tier(self, session: Any, fx: Effects, member_id: str, tier_id: str | None, *, operator: str,
                       reason: str, source_event: str, at: datetime) -> tuple[Decision, TierChange | None]:
        """An operator's decision: pin the member to ``tier_id``, or ``None`` to follow the rules again."""
        await self.store.lock(session, member_id)
        await self.store.set_member(session, member_id, tier_override=tier_id)
        return await self.reevaluate(session, fx, member_id, at, source_event=source_event, reason=reason,
                                     operator=operator)

    # ── reading ──

    async def card(self, session: Any, member_id: str, now: datetime) -> dict[str, Any]:
        """What ``/me`` and ``/tier show`` show of a member: tier, progress, recent entries and changes."""
        m = await self.store.member(session, member_id)
        decision = evaluate(self.rules, stats_of(m), now)
        return {
            "m": m, "tier": self.rules.tier(m.tier), "decision": decision, "requirements": REQUIREMENTS,
            "recent": await self.store.recent_entries(session, member_id, 5),
            "changes": await self.store.recent_changes(session, member_id, 3),
            "today": await self.store.points_on_day(session, member_id, self.local_day(now)),
            "actions": LEDGER_ACTIONS, "names": self.rules.names, "silent": decision.rule == "inactive",
            "member": Actor(id=m.id, name=m.name),
        }

    async def search(self, session: Any, text: str, limit: int = 50) -> list[Any]:
        """Customers whose id starts with ``text`` or whose name, a tag or a note contains it, the most
        recently active first (the console's member search; :meth:`TiersStore.search_members`)."""
        return list(await self.store.search_members(session, text.strip()[:64], limit))

    async def history(self, session: Any, member_id: str, *, entries: int = 30, changes: int = 20) -> dict[str, Any]:
        """A member's ledger entries and tier changes, newest first (the console's profile)."""
        return {"entries": await self.store.recent_entries(session, member_id, entries),
                "changes": await self.store.recent_changes(session, member_id, changes),
                "groups": await self.store.member_groups(session, member_id),
                "tags": await self.store.member_tags(session, member_id)}

    async def leaders(self, session: Any, chat_id: str) -> list[Any]:
        """The group's top customers by points (``/rank``)."""
        return list(await self.store.leaders(session, chat_id, self.app.config.tiers.leaderboard_size))

    # ── full recompute ──

    async def recompute(self, session: Any, fx: Effects | None, at: datetime, *, apply: bool = True,
                        batch: int = 5000) -> list[Difference]:
        """Rebuild every member's totals from the ledger and their tier from the rules.

        Returns what differed from the stored values; with ``apply`` the stored
        values are corrected (tier changes go through the usual effects).
        """
        sums = await self._ledger_totals(session)
        empty = dict.fromkeys(TOTALS, 0)
        diffs: list[Difference] = []
        last = ""
        while rows := await self.store.members_after(session, last, batch):
            last = rows[-1].id
            for m in rows:
                totals = sums.get(m.id, empty)
                diff = Difference(m.id, {k: (getattr(m, k), totals[k]) for k in TOTALS if getattr(m, k) != totals[k]})
                decision = evaluate(self.rules, replace(stats_of(m), **totals), at)
                if decision.tier != m.tier:
                    diff.fields["tier"] = (m.tier, decision.tier)
                if not diff.fields:
                    continue
                diffs.append(diff)
                if apply:
                    await self._correct(session, fx, m.id, diff, totals, decision, at)
        return diffs

    async def entries_out_of_bounds(self, session: Any) -> int:
        """Ledger entries beyond the documented bounds, written before there were any; recompute leaves
        them out of every total."""
        return await self.store.entries_out_of_bounds(session)

    async def _ledger_totals(self, session: Any) -> dict[str, dict[str, int]]:
        sums: dict[str, dict[str, int]] = {}
        for member_id, action, pts, n, cents in await self.store.ledger_sums(session):
            agg = sums.setdefault(member_id, dict.fromkeys(TOTALS, 0))
            agg["points"] += int(pts)
            if action in COUNTERS:
                agg[COUNTERS[action]] += int(n)
            agg["spend_cents"] += int(cents)
        return sums

    async def _correct(self, session: Any, fx: Effects | None, member_id: str, diff: Difference,
                       totals: dict[str, int], decision: Decision, at: datetime) -> None:
        if any(k != "tier" for k in diff.fields):
            await self.store.set_member(session, member_id, **totals)
        if "tier" in diff.fields and fx is not None:
            member = await self.store.member(session, member_id)
            await self._change(session, fx, member, decision, at, chat=None, reason="全量重算",
                               source_event=f"recompute:{at.isoformat()}", operator=None)

    async def reevaluate_all(self, session: Any, fx: Effects, at: datetime, *, batch: int = 2000) -> int:
        """Apply time-based rules (days since join, silence) to everyone; returns the number of changes."""
        changed = 0
        last = ""
        while rows := await self.store.members_after(session, last, batch):
            last = rows[-1].id
            for m in rows:
                decision = evaluate(self.rules, stats_of(m), at)
                if decision.tier != m.tier:
                    await self._change(session, fx, m, decision, at, source_event=f"daily:{self.local_day(at)}",
                                       chat=None, reason="每日复核（入群天数 / 沉默）", operator=None)
                    changed += 1
        return changed

    async def weekly_stats(self, session: Any, at: datetime) -> dict[str, Any]:
        per_tier = await self.store.tier_counts(session)
        moves = await self.store.change_counts(session, at - timedelta(days=7))
        return {"per_tier": per_tier, "up": moves.get("up", 0), "down": moves.get("down", 0)}
