"""All the SQL of the tiers feature: members, groups and memberships, the ledger, purchases, tier changes, tags.

Statements only — what they mean (caps, evaluation, who is told) is the ladder's
business (:mod:`bot.tiers.ladder`). Every method runs in the caller's session, so a
ledger entry, the totals it moves and the tier change it causes commit together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)

from bot.events import Chat
from bot.storage.db import insert_adding, insert_ignoring_conflicts
from bot.tiers.models import (
    ChurnEvent,
    Group,
    GroupMembership,
    Member,
    MemberActivity,
    MemberNote,
    MemberSearchGram,
    MemberTag,
    PointsEntry,
    Purchase,
    Tag,
    TierChange,
)
from bot.tiers.rules import AMOUNT_LIMIT_YUAN, POINTS_PER_ENTRY

MEMBER = Member.__table__
LEDGER = PointsEntry.__table__
GROUP = Group.__table__
MEMBERSHIP = GroupMembership.__table__
TAGS = MemberTag.__table__
TAG_NAMES = Tag.__table__
CHANGES = TierChange.__table__
PURCHASES = Purchase.__table__
ACTIVITY = MemberActivity.__table__
NOTES = MemberNote.__table__
CHURN = ChurnEvent.__table__
SEARCH = MemberSearchGram.__table__


def in_bounds() -> Any:
    """Ledger entries within the documented bounds (between, not abs(): abs() of the lowest integer overflows)."""
    return and_(LEDGER.c.points.between(-POINTS_PER_ENTRY, POINTS_PER_ENTRY),
                LEDGER.c.amount_cents.between(0, AMOUNT_LIMIT_YUAN * 100))


SEARCH_DENSE = 5000   # postings from which a search text counts as common
SEARCH_WALK = 5000    # members walked in activity order for a common text
_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
_FOLD = str.maketrans(_UPPER, _LOWER)
_LAST_CHAR = chr(0x10FFFF)
ACTIVITY_ORDER = (MEMBER.c.last_active_at.desc().nulls_last(), MEMBER.c.id)


def fold(text: str) -> str:
    """What the member search compares: A–Z as a–z, everything else as written."""
    return text.translate(_FOLD)


def gram_code(gram: str) -> int:
    """Up to three characters as one integer, 21 bits each (a missing character is 0), the first highest:
    the grams starting with one or two characters are one range of codes."""
    codes = [ord(c) for c in gram[:3]] + [0, 0, 0]
    return (codes[0] << 42) | (codes[1] << 21) | codes[2]


def in_activity_order(rows: Iterable[Any]) -> list[Any]:
    """ACTIVITY_ORDER in Python: the most recently active first, never active last, then by id."""
    by_id = sorted(rows, key=lambda r: r.id)
    return sorted(by_id, key=lambda r: (r.last_active_at is None,
                                        -r.last_active_at.timestamp() if r.last_active_at is not None else 0.0))


def _sum(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


class TiersStore:
    """The statements, for one database (its dialect decides upserts and row locks)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._statements: dict[Any, Any] = {}  # the per-event statements, made once (their values bound)

    @property
    def dialect(self) -> str:
        return str(self.db.dialect)

    def _insert_new(self, table: Any, keys: list[str]) -> Any:
        return insert_ignoring_conflicts(self.dialect, table, keys)

    # ── members ──

    async def member(self, session: Any, member_id: str) -> Any:
        return (await session.execute(select(MEMBER).where(MEMBER.c.id == member_id))).first()

    async def lock(self, session: Any, member_id: str) -> Any:
        """The member's row, locked for the rest of the transaction (PostgreSQL; SQLite has one writer)."""
        q = self._statements.get("lock")
        if q is None:
            q = select(MEMBER).where(MEMBER.c.id == bindparam("m_id"))
            self._statements["lock"] = q = q if self.db.is_sqlite else q.with_for_update()
        return (await session.execute(q, {"m_id": member_id})).first()

    async def refresh_member(self, session: Any, member_id: str, values: dict[str, Any], *, chat_id: str | None,
                             day: str, actions: Sequence[str]) -> Any:
        """Set ``values`` on a member (locking the row) and read, in the same statement, what their next
        ledger entries need: ``in_chat`` (1 in the group ``chat_id`` now, 0 left it, None never in it) and
        ``today_<i>``, their entries of ``actions[i]`` on the local ``day``. Their row afterwards, or None.

        The counts come with the lock only on SQLite, whose one writer has nothing to wait for: a
        PostgreSQL statement reads with the snapshot it started with, before it waited for the lock, so
        there the counts are read after it (``actions`` is ignored, no ``today_*``)."""
        n = len(actions) if self.db.is_sqlite else 0
        q = self._refresh_statement(tuple(sorted(values)), chat_id is not None, n)
        params = {"m_id": member_id, "chat": chat_id, "day": day, **{f"v_{k}": v for k, v in values.items()},
                  **{f"act_{i}": a for i, a in enumerate(actions[:n])}}
        return (await session.execute(q, params)).first()

    def _refresh_statement(self, keys: tuple[str, ...], in_chat: bool, counts: int) -> Any:
        """The statement of :meth:`refresh_member` for these value keys, made once (all its values bound)."""
        cached = self._statements.get(("refresh", keys, in_chat, counts))
        if cached is not None:
            return cached
        member_id = bindparam("m_id")
        extra = [select(case((MEMBERSHIP.c.left_at.is_(None), 1), else_=0)).where(and_(
            MEMBERSHIP.c.chat_id == bindparam("chat"), MEMBERSHIP.c.member_id == member_id)
        ).scalar_subquery().label("in_chat")] if in_chat else []
        extra += [select(func.count()).where(and_(
            LEDGER.c.member_id == member_id, LEDGER.c.action == bindparam(f"act_{i}"),
            LEDGER.c.day == bindparam("day"))).scalar_subquery().label(f"today_{i}") for i in range(counts)]
        if keys:
            q: Any = update(MEMBER).where(MEMBER.c.id == member_id).values(
                {k: bindparam(f"v_{k}") for k in keys}).returning(*MEMBER.c, *extra)
        else:
            q = select(*MEMBER.c, *extra).where(MEMBER.c.id == member_id)
            if not self.db.is_sqlite:
                q = q.with_for_update(of=MEMBER)
        self._statements[("refresh", keys, in_chat, counts)] = q
        return q

    async def set_member(self, session: Any, member_id: str, **values: Any) -> None:
        await session.execute(update(MEMBER).where(MEMBER.c.id == member_id).values(**values))

    async def insert_member(self, session: Any, **values: Any) -> None:
        """A new member (nothing happens when another transaction inserted them first)."""
        await session.execute(self._insert_new(MEMBER, ["id"]).values(**values))

    async def add_totals(self, session: Any, member_id: str, points: int, counter: str | None,
                         amount_cents: int) -> bool:
        """Move the running totals by one ledger entry (in the statement, not from a value read before);
        False when there is no such member."""
        key = ("totals", counter, bool(amount_cents))
        q = self._statements.get(key)
        if q is None:
            totals: dict[str, Any] = {"points": MEMBER.c.points + bindparam("points")}
            if counter is not None:
                totals[counter] = MEMBER.c[counter] + 1
            if amount_cents:
                totals["spend_cents"] = MEMBER.c.spend_cents + bindparam("cents")
            q = self._statements[key] = update(MEMBER).where(MEMBER.c.id == bindparam("m_id")).values(totals)
        res = await session.execute(q, {"m_id": member_id, "points": points, "cents": amount_cents})
        return bool(res.rowcount)

    async def count_message(self, session: Any, member_id: str, chat_id: str, day: str) -> None:
        """One more message of the member in the chat on the local ``day``."""
        await session.execute(insert_adding(self.dialect, ACTIVITY, ["day", "chat_id", "member_id"],
                                            {"day": day, "chat_id": chat_id, "member_id": member_id}, "messages"))

    async def find_members(self, session: Any, who: str, limit: int) -> list[Any]:
        """Members whose id is ``who``, else whose name is (at most ``limit`` of those)."""
        rows = (await session.execute(select(MEMBER).where(MEMBER.c.id == who))).all()
        if rows:
            return list(rows)
        return list((await session.execute(select(MEMBER).where(MEMBER.c.name == who).limit(limit))).all())

    async def search_members(self, session: Any, text: str, limit: int) -> list[Any]:
        """Customers (not staff) whose id starts with ``text`` or whose name, a tag or a note contains it
        (A–Z and a–z alike), most recently active first, then by id: the console's member search.

        The texts are read through ``member_search_gram`` (:func:`gram_code`): a one- or two-character
        ``text`` is the range of grams it begins; a longer one is looked up by the rarest of its trigrams
        and each candidate checked. Where the text is common (SEARCH_DENSE postings or more), the customers
        are walked in order instead (:meth:`_walk`), and the candidates read only when the first SEARCH_WALK
        hold fewer than ``limit`` matches.
        """
        text = text.strip()
        if not text:
            return []
        found = {r.id: r for r in await self._members_by_id_prefix(session, text, limit)}
        for r in await self._members_by_text(session, fold(text), limit):
            found.setdefault(r.id, r)
        return in_activity_order(found.values())[:limit]

    async def _members_by_id_prefix(self, session: Any, text: str, limit: int) -> Sequence[Any]:
        if self.db.is_sqlite:  # BINARY: the primary key's order is the code points'
            starts = and_(MEMBER.c.id >= text, MEMBER.c.id < text + _LAST_CHAR)
        else:
            starts = MEMBER.c.id.startswith(text, autoescape=True)
        return (await session.execute(select(MEMBER).where(and_(MEMBER.c.staff.is_(False), starts))
                                      .order_by(*ACTIVITY_ORDER).limit(limit))).all()

    async def _members_by_text(self, session: Any, folded: str, limit: int) -> Sequence[Any]:
        if len(folded) <= 2:
            lo = gram_code(folded)
            posting: Any = and_(SEARCH.c.gram >= lo, SEARCH.c.gram < lo + (1 << (21 * (3 - len(folded)))))
        else:
            posting = SEARCH.c.gram == await self._rarest_trigram(session, folded)
        contains = and_(MEMBER.c.staff.is_(False), self._contains(folded))
        dense = (await session.execute(select(func.count()).select_from(
            select(SEARCH.c.member_id).where(posting).limit(SEARCH_DENSE).subquery()))).scalar_one() >= SEARCH_DENSE
        if dense:
            rows = await self._walk(session, contains, limit)
            if len(rows) == limit:
                return rows
        candidates = MEMBER.c.id.in_(select(SEARCH.c.member_id).where(posting))
        if len(folded) > 2:
            return (await session.execute(select(MEMBER).where(and_(contains, candidates))
                                          .order_by(*ACTIVITY_ORDER).limit(limit))).all()
        # The grams a text of one or two characters begins are exactly its places: the candidates are
        # ordered on ix_member_search_key alone, and only the rows shown are read.
        first = (select(MEMBER.c.id).where(and_(MEMBER.c.staff.is_(False), candidates))
                 .order_by(*ACTIVITY_ORDER).limit(limit))
        return (await session.execute(select(MEMBER).where(MEMBER.c.id.in_(first.scalar_subquery()))
                                      .order_by(*ACTIVITY_ORDER))).all()

    async def _walk(self, session: Any, cond: Any, limit: int) -> list[Any]:
        """The first ``limit`` customers meeting ``cond`` among the first SEARCH_WALK in ACTIVITY_ORDER (fewer
        when those hold fewer): each part below is one range of ``ix_member_activity_order``, walked in order."""
        edge = (await session.execute(select(MEMBER.c.last_active_at, MEMBER.c.id).where(MEMBER.c.staff.is_(False))
                                      .order_by(*ACTIVITY_ORDER).offset(SEARCH_WALK - 1).limit(1))).first()
        if edge is None:  # fewer customers than that: all of them
            parts = [true()]
        elif edge.last_active_at is not None:  # and the others active at that same time
            parts = [MEMBER.c.last_active_at >= edge.last_active_at]
        else:  # everyone active, then the never active up to that one
            parts = [MEMBER.c.last_active_at.is_not(None),
                     and_(MEMBER.c.last_active_at.is_(None), MEMBER.c.id <= edge.id)]
        rows: list[Any] = []
        for part in parts:
            rows += (await session.execute(select(MEMBER).where(and_(cond, part)).order_by(*ACTIVITY_ORDER)
                                           .limit(limit - len(rows)))).all()
            if len(rows) == limit:
                break
        return rows

    async def _rarest_trigram(self, session: Any, folded: str) -> int:
        """Of (up to 8 of) the text's trigrams, the one fewest texts hold (counted up to SEARCH_DENSE)."""
        grams = sorted({gram_code(folded[i:i + 3]) for i in range(len(folded) - 2)})
        grams = grams[:: max(1, len(grams) // 8)][:8]
        counts = [select(func.count()).select_from(select(SEARCH.c.gram).where(SEARCH.c.gram == g)
                                                   .limit(SEARCH_DENSE).subquery()).scalar_subquery()
                  for g in grams]
        row = (await session.execute(select(*counts))).one()
        return min(zip(row, grams, strict=True))[1]

    def _contains(self, folded: str, cols: Any = None) -> Any:
        """The member's name, one of their tags or one of their notes contains ``folded`` (folded alike)."""
        cols = cols if cols is not None else MEMBER.c
        pattern = "%" + folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def has(column: Any) -> Any:
            return self._fold(column).like(pattern, escape="\\")

        return or_(has(cols.name),
                   select(TAGS.c.tag).where(and_(TAGS.c.member_id == cols.id, has(TAGS.c.tag))).exists(),
                   select(NOTES.c.id).where(and_(NOTES.c.member_id == cols.id, has(NOTES.c.text))).exists())

    def _fold(self, column: Any) -> Any:
        """A–Z to a–z in SQL, as :func:`fold` and the search triggers do (SQLite's lower() folds only these)."""
        return func.lower(column) if self.db.is_sqlite else func.translate(column, _UPPER, _LOWER)

    async def members_after(self, session: Any, last: str, limit: int) -> Sequence[Any]:
        """The next ``limit`` members by id after ``last`` (a walk over everyone)."""
        return (await session.execute(select(MEMBER).where(MEMBER.c.id > last).order_by(MEMBER.c.id)
                                      .limit(limit))).all()

    async def tier_counts(self, session: Any) -> dict[str, int]:
        """Customers (not staff) per tier."""
        return dict((await session.execute(select(MEMBER.c.tier, func.count()).where(MEMBER.c.staff.is_(False))
                                           .group_by(MEMBER.c.tier))).all())

    async def leaders(self, session: Any, chat_id: str, limit: int) -> Sequence[Any]:
        """The group's current customers with the most points (id, name, points, tier)."""
        return (await session.execute(
            select(MEMBER.c.id, MEMBER.c.name, MEMBER.c.points, MEMBER.c.tier)
            .join(MEMBERSHIP, MEMBERSHIP.c.member_id == MEMBER.c.id)
            .where(and_(MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.left_at.is_(None),
                        MEMBER.c.staff.is_(False)))
            .order_by(MEMBER.c.points.desc(), MEMBER.c.id).limit(limit))).all()

    # ── groups and memberships ──

    async def ensure_group(self, session: Any, chat: Chat, at: datetime) -> Any:
        """The group's row, created on first sight and renamed when its name changed."""
        await session.execute(self._insert_new(GROUP, ["chat_id"]).values(
            chat_id=chat.id, name=chat.name, member_count=0, created_at=at))
        if chat.name:
            await session.execute(update(GROUP).where(and_(GROUP.c.chat_id == chat.id, GROUP.c.name != chat.name))
                                  .values(name=chat.name))
        return await self.group(session, chat.id)

    async def group(self, session: Any, chat_id: str) -> Any:
        return (await session.execute(select(GROUP).where(GROUP.c.chat_id == chat_id))).first()

    async def set_group(self, session: Any, chat_id: str, **values: Any) -> None:
        await session.execute(update(GROUP).where(GROUP.c.chat_id == chat_id).values(**values))

    async def set_group_owner_if_none(self, session: Any, chat_id: str, owner_id: str) -> None:
        await session.execute(update(GROUP).where(and_(GROUP.c.chat_id == chat_id, GROUP.c.owner_id.is_(None)))
                              .values(owner_id=owner_id))

    async def group_owner(self, session: Any, chat_id: str) -> str | None:
        return (await session.execute(select(GROUP.c.owner_id).where(GROUP.c.chat_id == chat_id))
                ).scalar_one_or_none()

    async def groups_serving(self, session: Any, keys: Iterable[str]) -> Sequence[Any]:
        """Active groups whose tier is one of ``keys``, fullest first."""
        return (await session.execute(select(GROUP).where(and_(GROUP.c.tier.in_(sorted(keys)),
                                                               GROUP.c.dismissed_at.is_(None)))
                                      .order_by(GROUP.c.member_count.desc(), GROUP.c.chat_id))).all()

    async def tiered_groups(self, session: Any) -> Sequence[Any]:
        """Active groups that serve a tier, by tier and chat id."""
        return (await session.execute(select(GROUP).where(and_(GROUP.c.tier.is_not(None),
                                                               GROUP.c.dismissed_at.is_(None)))
                                      .order_by(GROUP.c.tier, GROUP.c.chat_id))).all()

    async def groups_named(self, session: Any, name: str) -> Sequence[Any]:
        """Active groups called ``name``."""
        return (await session.execute(select(GROUP).where(and_(GROUP.c.name == name, GROUP.c.dismissed_at.is_(None)))
                                      .order_by(GROUP.c.chat_id))).all()

    async def membership(self, session: Any, chat_id: str, member_id: str) -> Any:
        """The member's membership of the group (its ``left_at``), or None if they were never in it."""
        return (await session.execute(select(MEMBERSHIP.c.left_at).where(and_(
            MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.member_id == member_id)))).first()

    async def enter(self, session: Any, chat_id: str, member_id: str, *, first: bool, at: datetime, scene: str,
                    inviter: str | None) -> None:
        """Record that the member joined the group (``first``: never in it before) and count them."""
        if first:
            await session.execute(MEMBERSHIP.insert().values(chat_id=chat_id, member_id=member_id, joined_at=at,
                                                             join_scene=scene, inviter_id=inviter))
        else:
            await session.execute(update(MEMBERSHIP).where(and_(
                MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.member_id == member_id)).values(
                joined_at=at, join_scene=scene, inviter_id=inviter, left_at=None))
        await session.execute(update(GROUP).where(GROUP.c.chat_id == chat_id)
                              .values(member_count=GROUP.c.member_count + 1))

    async def leave(self, session: Any, chat_id: str, member_id: str, at: datetime) -> None:
        """Record that the member left the group (if they were in it) and count them out."""
        res = await session.execute(update(MEMBERSHIP).where(and_(
            MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.member_id == member_id, MEMBERSHIP.c.left_at.is_(None)))
            .values(left_at=at))
        if res.rowcount:
            await session.execute(update(GROUP).where(and_(GROUP.c.chat_id == chat_id, GROUP.c.member_count > 0))
                                  .values(member_count=GROUP.c.member_count - 1))

    async def member_groups(self, session: Any, member_id: str) -> list[str]:
        """The chat ids of the groups the member is in now."""
        return list((await session.execute(select(MEMBERSHIP.c.chat_id).where(and_(
            MEMBERSHIP.c.member_id == member_id, MEMBERSHIP.c.left_at.is_(None))).order_by(MEMBERSHIP.c.chat_id)
        )).scalars().all())

    async def group_members(self, session: Any, chat_id: str) -> list[str]:
        """The ids of the group's members now."""
        return list((await session.execute(select(MEMBERSHIP.c.member_id).where(and_(
            MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.left_at.is_(None))).order_by(MEMBERSHIP.c.member_id)
        )).scalars().all())

    # ── the ledger and purchases ──

    async def entries_on_day(self, session: Any, member_id: str, action: str, day: str) -> int:
        q = self._statements.get("on_day")
        if q is None:
            q = self._statements["on_day"] = select(func.count()).where(and_(
                LEDGER.c.member_id == bindparam("m_id"), LEDGER.c.action == bindparam("action"),
                LEDGER.c.day == bindparam("day")))
        return (await session.execute(q, {"m_id": member_id, "action": action, "day": day})).scalar_one()

    async def days_with(self, session: Any, member_id: str, action: str, since: str) -> set[str]:
        """The local days (ISO) from ``since`` on with an entry of ``action`` for the member."""
        return set((await session.execute(select(LEDGER.c.day).distinct().where(and_(
            LEDGER.c.member_id == member_id, LEDGER.c.action == action, LEDGER.c.day >= since)))).scalars().all())

    async def add_entry(self, session: Any, **values: Any) -> bool:
        """A ledger entry; False when its source event is already in the ledger (nothing written)."""
        q = self._statements.get("entry")
        if q is None:
            q = self._statements["entry"] = self._insert_new(LEDGER, ["source_event"])
        res = await session.execute(q, values)
        return bool(res.rowcount)

    async def add_purchase(self, session: Any, **values: Any) -> int | None:
        """A purchase; its id, or None when its source is already recorded."""
        row = (await session.execute(self._insert_new(PURCHASES, ["source"]).values(**values)
                                     .returning(PURCHASES.c.id))).first()
        return None if row is None else row.id

    async def ledger_sums(self, session: Any) -> Sequence[Any]:
        """(member id, action, points, entries, cents) for every member and action in the ledger.

        Entries beyond the bounds (:func:`in_bounds`: written before there were bounds) are not counted,
        so no sum can overflow; :meth:`entries_out_of_bounds` counts them.
        """
        return (await session.execute(
            select(LEDGER.c.member_id, LEDGER.c.action, _sum(LEDGER.c.points),
                   func.count(), _sum(LEDGER.c.amount_cents))
            .where(in_bounds()).group_by(LEDGER.c.member_id, LEDGER.c.action))).all()

    async def entries_out_of_bounds(self, session: Any) -> int:
        """Ledger entries beyond the bounds (not counted by the sums)."""
        return (await session.execute(select(func.count()).select_from(LEDGER).where(~in_bounds()))).scalar_one()

    async def recent_entries(self, session: Any, member_id: str, limit: int) -> Sequence[Any]:
        return (await session.execute(select(LEDGER).where(LEDGER.c.member_id == member_id)
                                      .order_by(LEDGER.c.id.desc()).limit(limit))).all()

    async def points_on_day(self, session: Any, member_id: str, day: str) -> int:
        return (await session.execute(select(_sum(LEDGER.c.points)).where(and_(
            LEDGER.c.member_id == member_id, LEDGER.c.day == day, in_bounds())))).scalar_one()

    async def checkins(self, session: Any, chat_id: str, since: str, until: str) -> Sequence[Any]:
        """(member id, day, member name or None) of the check-ins in a chat, by day then by entry."""
        return (await session.execute(
            select(LEDGER.c.member_id, LEDGER.c.day, MEMBER.c.name)
            .select_from(LEDGER.outerjoin(MEMBER, MEMBER.c.id == LEDGER.c.member_id))
            .where(and_(LEDGER.c.chat_id == chat_id, LEDGER.c.action == "checkin", LEDGER.c.day >= since,
                        LEDGER.c.day <= until))
            .order_by(LEDGER.c.day, LEDGER.c.id))).all()

    # ── tier changes ──

    async def add_change(self, session: Any, **values: Any) -> int:
        return (await session.execute(CHANGES.insert().values(**values).returning(CHANGES.c.id))).scalar_one()

    async def recent_changes(self, session: Any, member_id: str, limit: int) -> Sequence[Any]:
        return (await session.execute(select(CHANGES).where(CHANGES.c.member_id == member_id)
                                      .order_by(CHANGES.c.id.desc()).limit(limit))).all()

    async def change_counts(self, session: Any, since: datetime) -> dict[str, int]:
        """Tier changes since ``since`` by direction (up, down)."""
        return dict((await session.execute(select(CHANGES.c.direction, func.count()).where(CHANGES.c.at >= since)
                                           .group_by(CHANGES.c.direction))).all())

    # ── tags ──

    async def add_tag(self, session: Any, member_id: str, tag: str, *, source: str, at: datetime,
                      named: bool = False) -> bool:
        """Put ``tag`` on the member; False if it was there. ``named``: also record the tag's name."""
        if named:
            await session.execute(self._insert_new(TAG_NAMES, ["name"]).values(name=tag, kind="static",
                                                                                created_at=at))
        added = (await session.execute(self._insert_new(TAGS, ["member_id", "tag"]).values(
            member_id=member_id, tag=tag, source=source, added_at=at).returning(TAGS.c.tag))).first()
        return added is not None

    async def remove_tag(self, session: Any, member_id: str, tag: str) -> bool:
        res = await session.execute(TAGS.delete().where(and_(TAGS.c.member_id == member_id, TAGS.c.tag == tag)))
        return bool(res.rowcount)

    async def member_tags(self, session: Any, member_id: str) -> list[str]:
        return list((await session.execute(select(TAGS.c.tag).where(TAGS.c.member_id == member_id)
                                           .order_by(TAGS.c.tag))).scalars().all())

    async def tag_used(self, session: Any, tag: str) -> bool:
        return (await session.execute(select(TAGS.c.tag).where(TAGS.c.tag == tag).limit(1))).first() is not None

    async def segment(self, session: Any, *, tier: str, tag: str, chat_id: str, limit: int) -> Sequence[Any]:
        """Customers (not staff) in a tier, with a tag and/or in a group now, by id."""
        q = select(MEMBER.c.id, MEMBER.c.name, MEMBER.c.tier, MEMBER.c.owner_staff).where(MEMBER.c.staff.is_(False))
        if tier:
            q = q.where(MEMBER.c.tier == tier)
        if tag:
            q = q.where(MEMBER.c.id.in_(select(TAGS.c.member_id).where(TAGS.c.tag == tag)))
        if chat_id:
            q = q.where(MEMBER.c.id.in_(select(MEMBERSHIP.c.member_id).where(and_(
                MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.left_at.is_(None)))))
        return (await session.execute(q.order_by(MEMBER.c.id).limit(limit))).all()

    async def tag_counts(self, session: Any) -> list[tuple[str, int]]:
        rows = (await session.execute(select(TAGS.c.tag, func.count()).group_by(TAGS.c.tag)
                                      .order_by(func.count().desc(), TAGS.c.tag))).all()
        return [(r[0], int(r[1])) for r in rows]

    # ── notes and the profile ──

    async def add_note(self, session: Any, **values: Any) -> int:
        return (await session.execute(NOTES.insert().values(**values).returning(NOTES.c.id))).scalar_one()

    async def notes(self, session: Any, member_id: str, limit: int) -> Sequence[Any]:
        """The member's notes, newest first."""
        return (await session.execute(select(NOTES).where(NOTES.c.member_id == member_id)
                                      .order_by(NOTES.c.id.desc()).limit(limit))).all()

    async def note_count(self, session: Any, member_id: str) -> int:
        return int((await session.execute(select(func.count()).where(NOTES.c.member_id == member_id))
                    ).scalar_one())

    async def latest_notes(self, session: Any, member_ids: Iterable[str]) -> dict[str, str]:
        """{member id: text of their newest note} for those of ``member_ids`` with a note."""
        ids = sorted(set(member_ids))
        if not ids:
            return {}
        newest = select(func.max(NOTES.c.id)).where(NOTES.c.member_id.in_(ids)).group_by(NOTES.c.member_id)
        return dict((await session.execute(select(NOTES.c.member_id, NOTES.c.text)
                                           .where(NOTES.c.id.in_(newest)))).all())

    async def recent_activity(self, session: Any, member_id: str, limit: int) -> Sequence[Any]:
        """(day, chat id, messages) of the member's latest days with a message, newest first."""
        return (await session.execute(select(ACTIVITY.c.day, ACTIVITY.c.chat_id, ACTIVITY.c.messages)
                                      .where(ACTIVITY.c.member_id == member_id)
                                      .order_by(ACTIVITY.c.day.desc(), ACTIVITY.c.chat_id).limit(limit))).all()

    async def group_names(self, session: Any, chat_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(chat_ids))
        if not ids:
            return {}
        return dict((await session.execute(select(GROUP.c.chat_id, GROUP.c.name).where(GROUP.c.chat_id.in_(ids))
                                           )).all())

    async def members_by_id(self, session: Any, member_ids: Iterable[str]) -> dict[str, Any]:
        ids = sorted(set(member_ids))
        if not ids:
            return {}
        return {r.id: r for r in (await session.execute(select(MEMBER).where(MEMBER.c.id.in_(ids)))).all()}

    # ── churn ──

    async def add_churn(self, session: Any, **values: Any) -> bool:
        """A churn event (once per source event); False when it was already stored."""
        row = (await session.execute(self._insert_new(CHURN, ["source_event"]).values(**values)
                                     .returning(CHURN.c.id))).first()
        return row is not None

    async def pending_churn(self, session: Any, limit: int) -> Sequence[Any]:
        """Churn events no notice has listed yet, oldest first (locked on PostgreSQL: one replica sends)."""
        q = select(CHURN).where(CHURN.c.notified_at.is_(None)).order_by(CHURN.c.id).limit(limit)
        if not self.db.is_sqlite:
            q = q.with_for_update(skip_locked=True)
        return (await session.execute(q)).all()

    async def mark_churn_notified(self, session: Any, ids: Iterable[int], at: datetime) -> None:
        await session.execute(update(CHURN).where(CHURN.c.id.in_(sorted(ids))).values(notified_at=at))

    async def churn_of(self, session: Any, member_id: str, limit: int) -> Sequence[Any]:
        return (await session.execute(select(CHURN).where(CHURN.c.member_id == member_id)
                                      .order_by(CHURN.c.id.desc()).limit(limit))).all()

    # ── silence ──

    def _quiet(self, quiet_before: datetime, quiet_from: datetime | None) -> Any:
        """Customers whose last message (else first sight) is before ``quiet_before`` (and not before
        ``quiet_from``)."""
        last = func.coalesce(MEMBER.c.last_active_at, MEMBER.c.joined_at)
        cond = and_(MEMBER.c.staff.is_(False), last < quiet_before)
        return cond if quiet_from is None else and_(cond, last >= quiet_from)

    async def silent(self, session: Any, quiet_before: datetime, limit: int, *, quiet_from: datetime | None = None,
                     owner: str | None = None) -> Sequence[Any]:
        """Quiet customers (:meth:`_quiet`), quiet longest last; ``owner``: only those whose owner_staff it is."""
        cond = self._quiet(quiet_before, quiet_from)
        if owner is not None:
            cond = and_(cond, MEMBER.c.owner_staff == owner)
        last = func.coalesce(MEMBER.c.last_active_at, MEMBER.c.joined_at)
        return (await session.execute(select(MEMBER).where(cond).order_by(last.desc(), MEMBER.c.id)
                                      .limit(limit))).all()

    async def silent_buckets(self, session: Any, quiet_before: datetime) -> Sequence[Any]:
        """(last group chat id or None, tier, customers) of the quiet customers, largest first."""
        return (await session.execute(
            select(MEMBER.c.last_chat_id, MEMBER.c.tier, func.count()).where(self._quiet(quiet_before, None))
            .group_by(MEMBER.c.last_chat_id, MEMBER.c.tier)
            .order_by(func.count().desc(), MEMBER.c.last_chat_id, MEMBER.c.tier))).all()

    async def silent_owners(self, session: Any, quiet_before: datetime) -> list[str]:
        """The owner_staff of quiet customers (those with one)."""
        return list((await session.execute(
            select(MEMBER.c.owner_staff).where(and_(self._quiet(quiet_before, None), MEMBER.c.owner_staff.is_not(None)))
            .group_by(MEMBER.c.owner_staff).order_by(MEMBER.c.owner_staff))).scalars().all())

    async def silent_count(self, session: Any, quiet_before: datetime) -> int:
        return int((await session.execute(select(func.count()).where(self._quiet(quiet_before, None)))
                    ).scalar_one())

    # ── figures (the report, bot.insights): customers only; ``chat_id`` narrows to one group ──

    def _customers(self, end: datetime, chat_id: str | None) -> Any:
        """Who counts: customers (not staff) the bot knew before ``end`` — with ``chat_id``, those in that
        group at ``end`` (joined before it, not left before it)."""
        cond = and_(MEMBER.c.staff.is_(False), MEMBER.c.joined_at < end)
        if chat_id is not None:
            cond = and_(cond, MEMBER.c.id.in_(select(MEMBERSHIP.c.member_id).where(and_(
                MEMBERSHIP.c.chat_id == chat_id, MEMBERSHIP.c.joined_at < end,
                or_(MEMBERSHIP.c.left_at.is_(None), MEMBERSHIP.c.left_at >= end)))))
        return cond

    async def member_counts(self, session: Any, start: datetime, end: datetime, chat_id: str | None
                            ) -> tuple[int, int]:
        """(customers first seen in [start, end), customers first seen before end)."""
        row = (await session.execute(select(
            func.count(), func.coalesce(func.sum(case((MEMBER.c.joined_at >= start, 1), else_=0)), 0))
            .where(self._customers(end, chat_id)))).one()
        return int(row[1]), int(row[0])

    async def tier_counts_at(self, session: Any, end: datetime, chat_id: str | None) -> dict[str, int]:
        """Customers by the tier they held at ``end``: today's tier, except for those whose tier changed
        since, who held the ``from_tier`` of their first change at or after ``end`` (counted in SQL)."""
        who = self._customers(end, chat_id)
        counts = Counter({t: int(n) for t, n in (await session.execute(
            select(MEMBER.c.tier, func.count()).where(who).group_by(MEMBER.c.tier))).all()})
        change, earlier = CHANGES.alias("c"), CHANGES.alias("earlier")
        first = ~select(earlier.c.id).where(and_(
            earlier.c.member_id == change.c.member_id, earlier.c.at >= end,
            or_(earlier.c.at < change.c.at, and_(earlier.c.at == change.c.at, earlier.c.id < change.c.id)))).exists()
        for now_tier, then_tier, n in (await session.execute(
                select(MEMBER.c.tier, change.c.from_tier, func.count())
                .select_from(change.join(MEMBER, MEMBER.c.id == change.c.member_id))
                .where(and_(change.c.at >= end, who, first)).group_by(MEMBER.c.tier, change.c.from_tier))).all():
            counts[now_tier] -= int(n)
            counts[then_tier] += int(n)
        return {t: n for t, n in counts.items() if n}

    async def new_members_channels(self, session: Any, start: datetime, end: datetime, chat_id: str | None
                                   ) -> Sequence[Any]:
        """(source_state, added by staff (0/1), join scene, customers) of the customers first seen in
        [start, end), counted in SQL: ``source_state`` when they have one; else whether an owner_staff
        added them; else the join scene of their earliest group membership (None: in no group)."""
        stated = MEMBER.c.source_state != ""
        contact = and_(~stated, func.coalesce(MEMBER.c.owner_staff, "") != "")
        other = MEMBERSHIP.alias("other")
        earliest = and_(MEMBERSHIP.c.member_id == MEMBER.c.id, ~select(other.c.chat_id).where(and_(
            other.c.member_id == MEMBER.c.id, or_(other.c.joined_at < MEMBERSHIP.c.joined_at, and_(
                other.c.joined_at == MEMBERSHIP.c.joined_at, other.c.chat_id < MEMBERSHIP.c.chat_id)))).exists())
        kind = case((contact, 1), else_=0)
        scene = case((or_(stated, contact), None), else_=MEMBERSHIP.c.join_scene)
        return (await session.execute(
            select(MEMBER.c.source_state, kind, scene, func.count())
            .select_from(MEMBER.outerjoin(MEMBERSHIP, earliest))
            .where(and_(self._customers(end, chat_id), MEMBER.c.joined_at >= start))
            .group_by(MEMBER.c.source_state, kind, scene))).all()

    def _micros(self, since: Any, until: Any) -> Any:
        """``until − since`` of two UTC datetime columns in whole microseconds, exactly (SQLite keeps them as
        fixed-width ISO text: whole seconds from strftime('%s'), the microseconds from the text)."""
        if self.dialect == "sqlite":
            return ((func.strftime("%s", until) - func.strftime("%s", since)) * 1_000_000
                    + cast(func.substr(until, 21, 6), Integer) - cast(func.substr(since, 21, 6), Integer))
        return cast(func.round(func.extract("epoch", until - since) * 1_000_000), BigInteger)

    async def first_rises(self, session: Any, start: datetime, end: datetime, chat_id: str | None,
                          ladder: Sequence[str]) -> Sequence[Any]:
        """Per step k ≥ 1 of ``ladder`` (tier ids, lowest first) that someone reached in [start, end): (k,
        customers who reached it, the median's one or two middle values) — counted over the customers who
        moved up in [start, end) whose first time at step k or higher (an upward change before ``end`` with
        ``to_tier`` k or above) lies in [start, end), of the whole microseconds from their first time at
        step k − 1 (step 0: ``joined_at``). Rows (k, n, micros), one or two per step, in SQL."""
        rank = case({t: i for i, t in enumerate(ladder)}, value=CHANGES.c.to_tier, else_=0)
        risen = select(CHANGES.c.member_id).where(and_(CHANGES.c.direction == "up", CHANGES.c.at >= start,
                                                       CHANGES.c.at < end))
        firsts = select(MEMBER.c.joined_at.label("a0"), *(
            col for k in range(1, len(ladder)) for col in (
                func.min(case((rank >= k, CHANGES.c.at))).label(f"a{k}"),
                func.sum(case((and_(rank >= k, CHANGES.c.at < start), 1), else_=0)).label(f"before{k}")))
        ).select_from(CHANGES.join(MEMBER, MEMBER.c.id == CHANGES.c.member_id)).where(and_(
            CHANGES.c.direction == "up", CHANGES.c.at < end, CHANGES.c.member_id.in_(risen),
            self._customers(end, chat_id))).group_by(CHANGES.c.member_id, MEMBER.c.joined_at).cte("firsts")
        steps = union_all(*(
            select(literal(k).label("step"), self._micros(firsts.c[f"a{k - 1}"], firsts.c[f"a{k}"]).label("micros"))
            .where(and_(firsts.c[f"a{k}"].is_not(None), firsts.c[f"before{k}"] == 0))
            for k in range(1, len(ladder)))).subquery("steps")
        ranked = select(steps.c.step, steps.c.micros,
                        func.row_number().over(partition_by=steps.c.step, order_by=steps.c.micros).label("rn"),
                        func.count().over(partition_by=steps.c.step).label("n")).subquery("ranked")
        middle = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == ranked.c.n // 2 + 1)
        return (await session.execute(select(ranked.c.step, ranked.c.n, ranked.c.micros).where(middle)
                                      .order_by(ranked.c.step, ranked.c.rn))).all()

    async def activity_by_chat(self, session: Any, since: str, until: str, chat_id: str | None) -> Sequence[Any]:
        """(chat id, messages, members who sent one) per chat from local day ``since`` to ``until``
        (chat id "" is the 1:1 chats)."""
        q = select(ACTIVITY.c.chat_id, func.sum(ACTIVITY.c.messages), func.count(ACTIVITY.c.member_id.distinct())
                   ).where(and_(ACTIVITY.c.day >= since, ACTIVITY.c.day <= until))
        if chat_id is not None:
            q = q.where(ACTIVITY.c.chat_id == chat_id)
        return (await session.execute(q.group_by(ACTIVITY.c.chat_id))).all()

    async def active_members(self, session: Any, since: str, until: str, chat_id: str | None) -> int:
        """Members with a message on a local day from ``since`` to ``until`` (in ``chat_id`` when given);
        member_activity holds customers' messages only (the message handler skips staff)."""
        cond = and_(ACTIVITY.c.day >= since, ACTIVITY.c.day <= until)
        if chat_id is not None:
            cond = and_(cond, ACTIVITY.c.chat_id == chat_id)
        return int((await session.execute(select(func.count(ACTIVITY.c.member_id.distinct())).where(cond))
                    ).scalar_one())

    async def silent_members(self, session: Any, since: str, until: str, quiet_since: datetime, end: datetime,
                             chat_id: str | None) -> int:
        """Customers (``_customers`` at ``end``) first seen before ``quiet_since`` without a message on a local
        day from ``since`` to ``until`` (in ``chat_id`` when given)."""
        known = await self.customers_before(session, quiet_since, end, chat_id)
        if chat_id is not None:
            spoke = (await session.execute(
                select(func.count(ACTIVITY.c.member_id.distinct()))
                .select_from(ACTIVITY.join(MEMBER, MEMBER.c.id == ACTIVITY.c.member_id))
                .where(and_(ACTIVITY.c.day >= since, ACTIVITY.c.day <= until, ACTIVITY.c.chat_id == chat_id,
                            self._customers(end, chat_id), MEMBER.c.joined_at < quiet_since)))).scalar_one()
            return known - int(spoke)
        # everyone who spoke, less those first seen since quiet_since (few: read from the member side)
        spoke = await self.active_members(session, since, until, None)
        newer = (await session.execute(select(func.count()).where(and_(
            MEMBER.c.staff.is_(False), MEMBER.c.joined_at >= quiet_since, MEMBER.c.joined_at < end,
            select(ACTIVITY.c.day).where(and_(ACTIVITY.c.member_id == MEMBER.c.id, ACTIVITY.c.day >= since,
                                              ACTIVITY.c.day <= until)).exists())))).scalar_one()
        return known - (spoke - int(newer))

    async def customers_before(self, session: Any, joined_before: datetime, end: datetime, chat_id: str | None
                               ) -> int:
        """Customers (``_customers`` at ``end``) first seen before ``joined_before``."""
        return int((await session.execute(select(func.count()).where(and_(
            self._customers(end, chat_id), MEMBER.c.joined_at < joined_before)))).scalar_one())

    async def group_sizes(self, session: Any, end: datetime, chat_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """{chat id: (name, customers in it at ``end``)} of the given groups."""
        ids = sorted(set(chat_ids))
        if not ids:
            return {}
        names = dict((await session.execute(select(GROUP.c.chat_id, GROUP.c.name).where(GROUP.c.chat_id.in_(ids))
                                             )).all())
        present = and_(MEMBERSHIP.c.chat_id.in_(ids), MEMBERSHIP.c.joined_at < end,
                       or_(MEMBERSHIP.c.left_at.is_(None), MEMBERSHIP.c.left_at >= end))
        sizes = Counter(dict((await session.execute(
            select(MEMBERSHIP.c.chat_id, func.count()).where(present).group_by(MEMBERSHIP.c.chat_id))).all()))
        staff = (await session.execute(select(MEMBER.c.id).where(MEMBER.c.staff.is_(True)))).scalars().all()
        if staff:  # staff in the groups (few): counted apart, not joined row by row
            sizes.subtract(dict((await session.execute(
                select(MEMBERSHIP.c.chat_id, func.count()).where(and_(present, MEMBERSHIP.c.member_id.in_(staff)))
                .group_by(MEMBERSHIP.c.chat_id))).all()))
        return {c: (names.get(c) or "", int(sizes.get(c, 0))) for c in ids}

    async def action_counts(self, session: Any, action: str, since: str, until: str, chat_id: str | None
                            ) -> tuple[int, int]:
        """(ledger entries, members) of ``action`` from local day ``since`` to ``until``."""
        q = select(func.count(), func.count(LEDGER.c.member_id.distinct())).where(and_(
            LEDGER.c.action == action, LEDGER.c.day >= since, LEDGER.c.day <= until))
        if chat_id is not None:
            q = q.where(LEDGER.c.chat_id == chat_id)
        row = (await session.execute(q)).one()
        return int(row[0]), int(row[1])

    async def invitation_joins(self, session: Any, start: datetime, end: datetime, chat_id: str | None) -> int:
        """Customers' group joins by invitation (an inviter recorded) in [start, end)."""
        q = select(func.count()).select_from(MEMBERSHIP.join(MEMBER, MEMBER.c.id == MEMBERSHIP.c.member_id)).where(
            and_(MEMBERSHIP.c.inviter_id.is_not(None), MEMBERSHIP.c.joined_at >= start, MEMBERSHIP.c.joined_at < end,
                 MEMBER.c.staff.is_(False)))
        if chat_id is not None:
            q = q.where(MEMBERSHIP.c.chat_id == chat_id)
        return int((await session.execute(q)).scalar_one())

    async def invited_new(self, session: Any, start: datetime, end: datetime, chat_id: str | None) -> int:
        """Customers first seen in [start, end) who came by an invitation (``member.inviter_id``)."""
        return int((await session.execute(select(func.count()).where(and_(
            self._customers(end, chat_id), MEMBER.c.joined_at >= start, MEMBER.c.inviter_id.is_not(None))))
        ).scalar_one())

    async def purchases_by_buyer(self, session: Any, start: datetime, end: datetime, chat_id: str | None
                                 ) -> Sequence[Any]:
        """Per customer who bought in [start, end): (member id, purchases, cents, purchases before ``end``
        in all, invited (an inviter recorded), their tier now, the from_tier of their first tier change at
        or after ``end`` (None: unchanged since))."""
        p2 = PURCHASES.alias("p2")
        before_end = (select(func.count()).where(and_(p2.c.member_id == PURCHASES.c.member_id, p2.c.at < end))
                      .scalar_subquery())
        then_tier = (select(CHANGES.c.from_tier).where(and_(CHANGES.c.member_id == PURCHASES.c.member_id,
                                                            CHANGES.c.at >= end))
                     .order_by(CHANGES.c.at, CHANGES.c.id).limit(1).scalar_subquery())
        return (await session.execute(
            select(PURCHASES.c.member_id, func.count(), func.sum(PURCHASES.c.amount_cents), before_end,
                   MEMBER.c.inviter_id.is_not(None), MEMBER.c.tier, then_tier)
            .join(MEMBER, MEMBER.c.id == PURCHASES.c.member_id)
            .where(and_(PURCHASES.c.at >= start, PURCHASES.c.at < end, self._customers(end, chat_id)))
            .group_by(PURCHASES.c.member_id, MEMBER.c.inviter_id, MEMBER.c.tier))).all()
