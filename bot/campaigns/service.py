"""Segment sends: ``/send tier:vip 文案`` → a preview, a confirmation, then one 群发 task per staff member.

A segment is ``tier:<等级>``, ``tag:<标签>`` or ``group:<群名>`` (``等级:`` / ``标签:`` / ``群:`` too), read
through the member directory (:data:`bot.members.MEMBERS`). Each customer goes out through the staff member
who owns them (``owner_staff``: who added them); customers without one are skipped, and so are those who
already had a segment send on the day it goes out (WeCom delivers one 群发 per customer per day). A send
confirmed in quiet hours (``campaigns.quiet_hours``) is queued for their end. The tasks' results are polled
with ``externalcontact/get_groupmsg_send_result`` (:meth:`SegmentSends.poll_results`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.campaigns.config import CampaignsConfig
from bot.campaigns.store import CampaignsStore
from bot.masssend import PollTimes, TaskPoller, task_deliveries
from bot.members import MEMBERS, MemberDirectory, MemberProfile
from bot.outbox import TEXT_LIMITS
from bot.textcheck import TEXT_CHECK, warnings_of
from bot.wecomapi import WECOM_API

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.context import Context

KINDS = {"tier": "tier", "等级": "tier", "tag": "tag", "标签": "tag", "group": "group", "群": "group"}
SEGMENT_RX = re.compile(r"([^:：]+)[:：](.+)")
TEXT_BYTES = TEXT_LIMITS["text"]


@dataclass(slots=True)
class Plan:
    """Who a send reaches, through whom and when; or ``refusal`` (a rendered answer) when it reaches nobody."""

    segment: str = ""
    refusal: str = ""
    due: datetime | None = None
    day: str = ""
    quiet: bool = False
    by_staff: dict[str, list[str]] = field(default_factory=dict)
    sent_today: int = 0
    no_staff: int = 0
    warnings: list[str] = field(default_factory=list)  # review terms of the compliance lexicon in the text

    @property
    def customers(self) -> int:
        return sum(len(v) for v in self.by_staff.values())


class Part:
    """What both services of the feature hold: the app, the ``[campaigns]`` section and the store."""

    def __init__(self, app: BotApp, cfg: CampaignsConfig, store: CampaignsStore) -> None:
        self.app = app
        self.cfg = cfg
        self.store = store

    def render(self, template: str, **values: Any) -> str:
        return self.app.templates.render(template, **values)


class SegmentSends(Part):
    def __init__(self, app: BotApp, cfg: CampaignsConfig, store: CampaignsStore) -> None:
        super().__init__(app, cfg, store)
        self.poller = TaskPoller(app.db, store.tasks, PollTimes(cfg.poll_after_s, cfg.poll_interval_s,
                                                                cfg.poll_max_hours), lambda: app.maybe(WECOM_API))

    # ── planning ──

    async def _segment(self, session: Any, directory: MemberDirectory, raw: str
                       ) -> tuple[str, list[MemberProfile] | None]:
        """(label, customers) of a typed segment; customers None (and label the answer) when it names nothing."""
        m = SEGMENT_RX.fullmatch(raw.strip())
        kind = KINDS.get(m.group(1).strip().lower()) if m else None
        if m is None or kind is None:
            return self.render("campaigns/bad_segment.j2", segment=raw), None
        value = m.group(2).strip()
        if kind == "tier":
            tier = directory.tier_id(value)
            if tier is None:
                return self.render("campaigns/unknown_segment.j2", kind=kind, value=value), None
            return f"tier:{tier}", await directory.customers(session, tier=tier)
        if kind == "tag":
            if not await directory.has_tag(session, value):
                return self.render("campaigns/unknown_segment.j2", kind=kind, value=value), None
            return f"tag:{value}", await directory.customers(session, tag=value)
        groups = await directory.groups_named(session, value) or [
            g for g in [await directory.group(session, value)] if g is not None and g.active]
        if not groups:
            return self.render("campaigns/unknown_segment.j2", kind=kind, value=value), None
        found: dict[str, MemberProfile] = {}
        for g in groups:
            found.update((c.id, c) for c in await directory.customers(session, chat_id=g.chat_id))
        return f"group:{value}", [found[k] for k in sorted(found)]

    async def plan(self, ctx: Context, segment: str, text: str) -> Plan:
        directory = ctx.app.maybe(MEMBERS)
        if directory is None:
            return Plan(refusal=self.render("campaigns/no_directory.j2"))
        if len(text.encode()) > TEXT_BYTES:
            return Plan(refusal=self.render("campaigns/too_long.j2", size=len(text.encode()), limit=TEXT_BYTES))
        lexicon = self.app.maybe(TEXT_CHECK)  # the bot's own texts are checked like staff's (bot.textcheck)
        findings = lexicon.findings(text) if lexicon is not None else []
        refused = next((f for f in findings if f.refuses), None)
        if refused is not None:
            return Plan(refusal=self.render("campaigns/text_refused.j2", finding=str(refused)))
        label, customers = await self._segment(ctx.session, directory, segment)
        if customers is None:
            return Plan(refusal=label)
        if not customers:
            return Plan(refusal=self.render("campaigns/empty_segment.j2", segment=label))
        now, tz = ctx.now(), self.app.config.bot.tz
        quiet = self.cfg.quiet
        due = quiet.release(now, tz) if quiet is not None else now
        plan = Plan(segment=label, due=due, day=due.astimezone(tz).date().isoformat(), quiet=due != now,
                    warnings=warnings_of(findings))
        already = await self.store.sent_on(ctx.session, plan.day, (c.id for c in customers))
        for c in customers:
            if c.id in already:
                plan.sent_today += 1
            elif not c.owner_staff:
                plan.no_staff += 1
            else:
                plan.by_staff.setdefault(c.owner_staff, []).append(c.id)
        if not plan.by_staff:
            plan.refusal = self.render("campaigns/nobody_left.j2", plan=plan, total=len(customers))
        return plan

    def _local(self, when: datetime | None) -> str:
        return "" if when is None else when.astimezone(self.app.config.bot.tz).strftime("%m-%d %H:%M")

    async def preview(self, ctx: Context, segment: str, text: str) -> str | None:
        """What a send would do (shown with its confirmation code); None after answering a refusal."""
        plan = await self.plan(ctx, segment, text)
        if plan.refusal:
            await ctx.reply(plan.refusal)
            return None
        sample = text if len(text) <= self.cfg.sample_chars else text[:self.cfg.sample_chars] + "…"
        return self.render("campaigns/preview.j2", plan=plan, sample=sample, at=self._local(plan.due),
                           quiet_hours=self.cfg.quiet_hours, staff=sorted(plan.by_staff.items()))

    # ── sending ──

    async def send(self, ctx: Context, actor: str, segment: str, text: str) -> None:
        """The confirmed send: recorded, its customers claimed for the day, one mass_send per staff member."""
        plan = await self.plan(ctx, segment, text)
        if plan.refusal:
            await ctx.reply(plan.refusal)
            return
        assert plan.due is not None
        now = ctx.now()
        send_id = await self.store.add_send(ctx.session, actor=actor[:128], segment=plan.segment[:200], text=text,
                                            day=plan.day, created_at=now, due_at=plan.due,
                                            skipped_today=plan.sent_today, skipped_no_staff=plan.no_staff)
        tasks: list[dict[str, Any]] = []
        for staff, members in sorted(plan.by_staff.items()):
            got = await self.store.claim_recipients(ctx.session, send_id, plan.day, members)
            plan.sent_today += len(members) - len(got)  # another send took them in between
            mine = [m for m in members if m in got]
            deliveries = task_deliveries(f"send:{send_id}:{staff}", staff, mine, text, not_before=plan.due)
            await ctx.send_many(deliveries)
            for d in deliveries:
                n = len(d["destination"]["external_userids"])
                tasks.append({"send_id": send_id, "staff": staff[:128], "outbox_key": d["key"], "customers": n,
                              "state": "queued", "unsent": n, "created_at": now, "detail": "",
                              "next_poll_at": plan.due + timedelta(seconds=self.cfg.poll_after_s)})
        await self.store.add_tasks(ctx.session, tasks)
        reached = sum(t["customers"] for t in tasks)
        await self.store.set_send(ctx.session, send_id, customers=reached, skipped_today=plan.sent_today,
                                  staff=len({t["staff"] for t in tasks}))
        await ctx.reply(self.render("campaigns/queued.j2", send_id=send_id, plan=plan, reached=reached,
                                    tasks=tasks, at=self._local(plan.due), quiet_hours=self.cfg.quiet_hours))

    async def status(self, session: Any) -> str:
        sends, tasks = await self.store.recent_sends(session, self.cfg.status_limit)
        rows = []
        for s in sends:
            ts = tasks.get(s.id, [])
            rows.append({"send": s, "at": self._local(s.due_at), "tasks": ts,
                         "sent": sum(t.sent for t in ts), "failed": sum(t.failed for t in ts),
                         "unsent": sum(t.unsent for t in ts)})
        return self.render("campaigns/status.j2", rows=rows)

    # ── results ──

    async def poll_results(self) -> int:
        """Look at the tasks due for a look (bot.masssend.TaskPoller: the outbox row, then
        get_groupmsg_send_result); returns how many were looked at."""
        return await self.poller.poll(self.app.clock.now())
