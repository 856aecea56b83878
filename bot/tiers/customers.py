"""Customers as operators look after them: notes, the profile, tags kept in step with WeCom, silence, churn.

The handlers of ``/note``, ``/member`` and ``/members silent`` call :class:`Customers`
(``ctx.get(CUSTOMERS)``); so do the WeCom event handlers (a contact's tags edited in
WeCom, a customer lost) and two cron jobs: the batched churn notice
(``tiers.churn_notify_cron``) and the weekly silence digest (``tiers.silence_digest``).
Whom to tell about a member is one rule (:meth:`Customers.owners_of`): the staff member
who added them, else the owner of the group they were last active in, else a
configured list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.events import Actor
from bot.memberfacts import MEMBER_FACTS
from bot.members import CHANNEL_NAMES
from bot.storage.keys import bounded_key
from bot.tiers.ladder import Ladder

if TYPE_CHECKING:
    from bot.effects import Effects

log = logging.getLogger("siyu.tiers")

NOTE_LIMIT = 500          # characters in one note
NOTES_SHOWN = 5           # notes on the profile (``/note list`` shows NOTES_LISTED)
NOTES_LISTED = 20
SILENT_DAYS = (1, 365)    # the N of ``/members silent N``
SILENT_LISTED = 20        # members listed by ``/members silent`` and in a digest; the rest are counted
CHURN_BATCH = 2000        # churn events one notice run reads
CHURN_LISTED = 20         # members listed in one churn notice (one app message: 2048 bytes); the rest counted
KINDS = {"removed_by_customer": "删除了员工", "removed_by_staff": "被员工删除", "left": "退出群聊",
         "removed": "被移出群聊", "dismissed": "所在群已解散"}


class Customers:
    """The operators' view of customers, on the ladder's store and rules."""

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder
        self.app = ladder.app
        self.store = ladder.store

    @property
    def cfg(self) -> Any:
        return self.app.config.tiers

    # ── notes ──

    async def add_note(self, session: Any, member_id: str, author: Actor, text: str, at: datetime) -> int:
        """Store a note (the caller checked it is 1–NOTE_LIMIT characters); its id."""
        return await self.store.add_note(session, member_id=member_id, author_id=author.id,
                                         author_name=author.name[:128], text=text, at=at)

    async def notes(self, session: Any, member_id: str, limit: int = NOTES_LISTED) -> tuple[list[Any], int]:
        """(the newest ``limit`` notes, how many there are)."""
        return list(await self.store.notes(session, member_id, limit)), await self.store.note_count(session, member_id)

    # ── the profile ──

    async def profile(self, session: Any, member_id: str) -> dict[str, Any]:
        """What ``/member`` and the console's member page show (tiers/profile.j2, member.html)."""
        store = self.store
        m = await store.member(session, member_id)
        groups = await store.member_groups(session, member_id)
        activity = await store.recent_activity(session, member_id, 5)
        names = await store.group_names(session, [*groups, *(a.chat_id for a in activity if a.chat_id),
                                                  *([m.last_chat_id] if m.last_chat_id else [])])
        notes, note_total = await self.notes(session, member_id, NOTES_SHOWN)
        return {"m": m, "tier": self.ladder.rules.tier(m.tier), "names": self.ladder.rules.names,
                "changes": await store.recent_changes(session, member_id, 5),
                "tags": await store.member_tags(session, member_id), "groups": groups, "group_names": names,
                "activity": activity, "notes": notes, "note_total": note_total, **await self.record(session, m)}

    async def record(self, session: Any, m: Any) -> dict[str, Any]:
        """Of member row ``m``: where they came from (``channel``), their latest churn events (``churn``, with
        ``kinds`` and ``churn_names`` of their groups) and what the other features know (``facts``) — shown
        by ``/member`` and the console's member page."""
        churn = await self.store.churn_of(session, m.id, 3)
        facts = self.app.maybe(MEMBER_FACTS)
        return {"channel": await self.channel_of(session, m), "churn": churn, "kinds": KINDS,
                "churn_names": await self.store.group_names(session, [c.chat_id for c in churn if c.chat_id]),
                "facts": await facts.collect(session, m.id) if facts is not None else []}

    async def channel_of(self, session: Any, m: Any) -> str:
        """Where the customer came from, in words: the channel code's name (渠道活码), another contact way's
        state, the staff member who added them, else 未知渠道."""
        names = self.app.maybe(CHANNEL_NAMES)
        if m.source_state:
            name = await names.channel_name(session, m.source_state) if names is not None else None
            return f"渠道「{name}」" if name else f"渠道码 {m.source_state}"
        return "员工添加" if m.owner_staff else "未知渠道"

    # ── whom to tell ──

    async def owners_of(self, session: Any, member: Any, fallback: list[str], chat_id: str = "") -> list[str]:
        """Whom to tell about ``member``: the staff member who added them, else the owner of ``chat_id`` (the
        group an event is about), else of the group they were last active in, else ``fallback``."""
        if member is not None and member.owner_staff:
            return [member.owner_staff]
        for chat in (chat_id, member.last_chat_id if member is not None else None):
            owner = await self.store.group_owner(session, chat) if chat else None
            if owner:
                return [owner]
        return list(fallback)

    # ── tags, both ways with WeCom ──

    async def tag_changed(self, session: Any, fx: Effects, member: Any, *, add: list[str], remove: list[str],
                          key: str) -> None:
        """An operator's tag change, sent to WeCom (``mark_tag``) for an external contact with an owner."""
        if member.owner_staff and not member.staff and member.id.startswith(("wm", "wo")):
            ids = self.cfg.wecom_tag_ids
            await self.ladder.mark_tag(fx, member, add=[ids.get(t, t) for t in add],
                                       remove=[ids.get(t, t) for t in remove], key=key)

    async def sync_tags(self, session: Any, fx: Effects, member_id: str, staff_id: str,
                        wecom_tags: Iterable[tuple[str, str]], at: datetime, key: str) -> tuple[list[str], list[str]]:
        """The tags ``staff_id`` has on a contact in WeCom ((id, name) pairs: ``edit_external_contact``, read with
        ``externalcontact/get``) become the member's tags: a tag id named in ``tiers.wecom_tag_ids`` is known
        by that name, any other by its WeCom name. The ladder's ``tier:…`` tags stay as they are. Only the
        tags of the member's owner (who added them, whom ``/tag`` marks as) count; any staff member's while
        the bot knows no owner. (added, removed); nothing for a member the bot does not know."""
        member = await self.store.member(session, member_id)
        if member is None or (member.owner_staff and member.owner_staff != staff_id):
            return [], []
        by_id = {v: k for k, v in self.cfg.wecom_tag_ids.items()}
        wanted = {by_id.get(tag_id) or name for tag_id, name in wecom_tags} - {""}
        wanted = {t for t in wanted if not t.startswith("tier:")}
        have = {t for t in await self.store.member_tags(session, member_id) if not t.startswith("tier:")}
        added, removed = sorted(wanted - have), sorted(have - wanted)
        for tag in added:
            await self.ladder.add_tag(session, fx, member, tag, source="wecom", at=at, key=f"{key}:{tag}")
        for tag in removed:
            await self.store.remove_tag(session, member_id, tag)
        return added, removed

    # ── silence ──

    async def silent(self, session: Any, days: int, now: datetime) -> dict[str, Any]:
        """What ``/members silent N`` shows: counts by group and tier, the first members, the rest counted."""
        before = now - timedelta(days=days)
        buckets = await self.store.silent_buckets(session, before)
        rows = await self.store.silent(session, before, SILENT_LISTED)
        total = sum(int(b[2]) for b in buckets)
        names = await self.store.group_names(session, [b[0] for b in buckets if b[0]])
        return {"days": days, "total": total, "buckets": buckets[:SILENT_LISTED], "rows": rows,
                "more_buckets": max(0, len(buckets) - SILENT_LISTED), "more": max(0, total - len(rows)),
                "group_names": names, "names": self.ladder.rules.names}

    async def silence_digest(self, session: Any, fx: Effects, now: datetime) -> int:
        """The weekly digest: one app message per owner listing their customers quiet for
        ``tiers.silence_days``; how many messages were queued."""
        days = self.cfg.silence_days
        before = now - timedelta(days=days)
        week = now.astimezone(self.app.config.bot.tz).strftime("%G-W%V")
        sent = 0
        for owner in await self.store.silent_owners(session, before):
            rows = await self.store.silent(session, before, SILENT_LISTED + 1, owner=owner)
            shown = rows[:SILENT_LISTED]
            text = self.app.templates.render("tiers/silence_digest.j2", days=days, rows=shown,
                                             more=len(rows) > SILENT_LISTED, names=self.ladder.rules.names,
                                             notes=await self.store.latest_notes(session, [r.id for r in shown]))
            await fx.send("app_message", to=[owner], text=text, key=bounded_key(f"silence:{week}:{owner}"))
            sent += 1
        return sent

    async def became_silent(self, session: Any, days: int, now: datetime, window: timedelta) -> list[Any]:
        """Customers whose silence reached ``days`` within the last ``window`` (the ``silent`` SOP trigger)."""
        before = now - timedelta(days=days)
        return list(await self.store.silent(session, before, 10_000, quiet_from=before - window))

    # ── churn ──

    async def churned(self, session: Any, *, member_id: str, kind: str, staff_id: str, chat_id: str, at: datetime,
                      source_event: str) -> bool:
        """Store a lost customer for the next notice (known to the bot or not); False if already stored."""
        return await self.store.add_churn(session, member_id=member_id[:128], kind=kind, staff_id=staff_id[:128],
                                          chat_id=chat_id[:160], at=at,
                                          source_event=bounded_key(source_event, 255))

    async def churn_members_of_group(self, session: Any, chat_id: str) -> list[str]:
        """The customers in a group when it is dismissed (its memberships, staff left out)."""
        ids = await self.store.group_members(session, chat_id)
        known = await self.store.members_by_id(session, ids)
        return [i for i in ids if not (known.get(i) is not None and known[i].staff)]

    async def notify_churn(self, session: Any, fx: Effects, now: datetime) -> int:
        """One app message per owner listing the customers lost since the last notice; how many were queued."""
        rows = await self.store.pending_churn(session, CHURN_BATCH)
        if not rows:
            return 0
        members = await self.store.members_by_id(session, [r.member_id for r in rows])
        fallback = list(self.cfg.churn_notify or self.cfg.notify_users)
        per_owner: dict[str, list[Any]] = defaultdict(list)
        unheard = 0
        for r in rows:
            member = members.get(r.member_id)
            owners = [r.staff_id] if r.staff_id else await self.owners_of(session, member, fallback, r.chat_id)
            unheard += not owners
            for owner in owners:
                per_owner[owner].append(r)
        notes = await self.store.latest_notes(session, members)
        groups = await self.store.group_names(session, [r.chat_id for r in rows if r.chat_id])
        for owner, lost in sorted(per_owner.items()):
            text = self.app.templates.render(
                "tiers/churn_notice.j2", rows=lost[:CHURN_LISTED], more=len(lost) - CHURN_LISTED, members=members,
                notes=notes, kinds=KINDS, names=self.ladder.rules.names, group_names=groups)
            await fx.send("app_message", to=[owner], text=text, key=bounded_key(f"churn:{lost[0].id}:{owner}"))
        if unheard:
            log.warning("churn: nobody to tell about %d lost customers (set tiers.churn_notify)", unheard)
        await self.store.mark_churn_notified(session, [r.id for r in rows], now)
        return len(per_owner)
