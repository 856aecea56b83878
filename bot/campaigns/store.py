"""ALL the SQL of the campaigns feature: sends, their tasks, recipients per day, channels and their contacts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update

from bot.campaigns.models import CampaignRecipient, CampaignSend, CampaignTask, Channel, ChannelContact
from bot.storage.db import insert_ignoring_conflicts

if TYPE_CHECKING:
    from bot.storage.db import Database

SENDS = CampaignSend.__table__
TASKS = CampaignTask.__table__
RECIPIENTS = CampaignRecipient.__table__
CHANNELS = Channel.__table__
CONTACTS = ChannelContact.__table__


class CampaignsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TASKS   # polled by bot.masssend.TaskPoller

    # ── sends ──

    async def sent_on(self, session: Any, day: str, member_ids: Iterable[str]) -> set[str]:
        """Which of ``member_ids`` already have a segment send on the local ``day``."""
        ids, found = list(member_ids), set()
        for first in range(0, len(ids), 500):
            found.update((await session.execute(select(RECIPIENTS.c.member_id).where(and_(
                RECIPIENTS.c.day == day, RECIPIENTS.c.member_id.in_(ids[first:first + 500]))))).scalars())
        return found

    async def add_send(self, session: Any, **values: Any) -> int:
        return int((await session.execute(SENDS.insert().values(**values).returning(SENDS.c.id))).scalar_one())

    async def set_send(self, session: Any, send_id: int, **values: Any) -> None:
        await session.execute(update(SENDS).where(SENDS.c.id == send_id).values(**values))

    async def claim_recipients(self, session: Any, send_id: int, day: str, member_ids: Sequence[str]) -> set[str]:
        """Record the customers of a send for ``day``; those another send took first are left out of the answer."""
        stmt = insert_ignoring_conflicts(self.db.dialect, RECIPIENTS, ["day", "member_id"]).returning(
            RECIPIENTS.c.member_id)
        got: set[str] = set()
        for first in range(0, len(member_ids), 500):
            rows = [{"day": day, "member_id": m, "send_id": send_id} for m in member_ids[first:first + 500]]
            got.update((await session.execute(stmt, rows)).scalars())
        return got

    async def add_tasks(self, session: Any, tasks: list[dict[str, Any]]) -> None:
        if tasks:
            await session.execute(TASKS.insert(), tasks)

    async def recent_sends(self, session: Any, limit: int) -> tuple[Sequence[Any], dict[int, list[Any]]]:
        """The latest sends, newest first, and their tasks by send id."""
        sends = (await session.execute(select(SENDS).order_by(SENDS.c.id.desc()).limit(limit))).all()
        tasks: dict[int, list[Any]] = {s.id: [] for s in sends}
        if sends:
            for t in (await session.execute(select(TASKS).where(TASKS.c.send_id.in_(list(tasks)))
                                            .order_by(TASKS.c.id))).all():
                tasks[t.send_id].append(t)
        return sends, tasks

    # ── channels ──

    async def channel_named(self, session: Any, name: str) -> Any:
        return (await session.execute(select(CHANNELS).where(CHANNELS.c.name == name))).first()

    async def channel_of_state(self, session: Any, state: str) -> Any:
        return (await session.execute(select(CHANNELS).where(CHANNELS.c.state == state))).first()

    async def add_channel(self, session: Any, **values: Any) -> int | None:
        """A new channel; None when its name (or state) is taken."""
        stmt = insert_ignoring_conflicts(self.db.dialect, CHANNELS, ["name"]).values(**values).returning(
            CHANNELS.c.id)
        row = (await session.execute(stmt)).first()
        return None if row is None else int(row.id)

    async def channels(self, session: Any) -> list[tuple[Any, int]]:
        """Every channel, oldest first, with how many customers were added through it."""
        added = (select(CONTACTS.c.channel_id, func.count().label("n")).group_by(CONTACTS.c.channel_id)
                 .subquery())
        rows = (await session.execute(
            select(CHANNELS, func.coalesce(added.c.n, 0).label("added"))
            .select_from(CHANNELS.outerjoin(added, added.c.channel_id == CHANNELS.c.id))
            .order_by(CHANNELS.c.id))).all()
        return [(r, int(r.added)) for r in rows]

    async def add_contact(self, session: Any, channel_id: int, member_id: str, staff: str, at: datetime) -> bool:
        stmt = insert_ignoring_conflicts(self.db.dialect, CONTACTS, ["channel_id", "member_id"]).values(
            channel_id=channel_id, member_id=member_id, staff=staff, added_at=at).returning(CONTACTS.c.member_id)
        return (await session.execute(stmt)).first() is not None

    async def channel_names(self, session: Any, states: Iterable[str]) -> dict[str, str]:
        """state → channel name for the states that belong to a channel (the report's ``by_channel``)."""
        wanted = sorted(set(states))
        if not wanted:
            return {}
        return dict((await session.execute(select(CHANNELS.c.state, CHANNELS.c.name)
                                           .where(CHANNELS.c.state.in_(wanted)))).all())
