"""Where the knowledge base decides to answer a member: :meth:`Answering.respond`.

Also the numbered "did you mean" picks (:meth:`Answering.pick`) and the one
place an answer is sent (:meth:`Answering.deliver`: the group cooldown).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.handoffs import in_handoff
from bot.knowledge import store
from bot.knowledge.answers import render_answer
from bot.knowledge.entry import Entry, Where
from bot.knowledge.matcher import MAX_QUESTION
from bot.knowledge.text import looks_like_question
from bot.members import MemberProfile, profile_of
from bot.templates import TemplateProblem

if TYPE_CHECKING:
    from bot.context import Context
    from bot.events import MessageEvent
    from bot.knowledge.base import KnowledgeBase
    from bot.knowledge.config import KnowledgeConfig
    from bot.knowledge.matcher import Result


@dataclass(frozen=True, slots=True)
class Prepared:
    """A question matched before the handler's transaction opened (:meth:`Answering.prepare`)."""

    question: str
    profile: MemberProfile
    result: Result

log = logging.getLogger("siyu.knowledge")


class Answering:
    """Answering one member's message: scope, rules, rendering, suggestions, misses."""

    def __init__(self, app: Any, kb: KnowledgeBase, cfg: KnowledgeConfig) -> None:
        self.app = app            # for the member directory (bot.members.profile_of), templates and time zone
        self.kb = kb
        self.cfg = cfg

    async def prepare(self, event: MessageEvent, question: str) -> Prepared | None:
        """The member's profile and the match of ``question``, before the handler's transaction: the
        matching runs off the event loop and holds no database writer (``respond(prepared=…)``)."""
        question = question[:MAX_QUESTION]
        if not question:
            return None
        async with self.app.db.read() as s:
            profile = await profile_of(self.app, s, event.sender)
        return Prepared(question, profile, await self.match(question, event, profile))

    async def match(self, question: str, event: MessageEvent, profile: MemberProfile) -> Result:
        """The matcher's verdict on ``question`` for this member and chat, computed off the event loop."""
        return await asyncio.to_thread(self.kb.matcher.match, question, self.where(event, profile))

    async def respond(self, ctx: Context, event: MessageEvent, question: str, *, asked: bool = False,
                      prepared: Prepared | None = None) -> None:
        """Answer ``question`` — or stay quiet, suggest, or say there is no answer — by these rules:

        - **Chatter** (acknowledgements, thanks, greetings, emoji, laughter, small talk, and remarks that ask
          nothing no entry answers: :mod:`bot.knowledge.chatter`) gets no answer, no suggestions, no "can't
          answer" and is not a miss — in groups and 1:1, mentioned or not, and with ``/ask``. Only a greeting in a
          1:1 chat (not staff) may get ``knowledge.greeting`` (:meth:`greet`, once a day per member).
        - **Addressed or not.** The member addresses the bot when they write to it 1:1 (staff excepted), @-mention
          it, or use ``/ask`` (``asked``). Staff are answered only when they address it.
        - **Groups switched off** with ``/kb off`` get no answers, except to ``/ask``.
        - **Scope.** The matcher only considers entries whose ``scope`` allows this chat and the member's tier
          (from the member directory), and answers outright only above ``knowledge.threshold`` (with the margins
          of :class:`~bot.knowledge.matcher.MatchSettings`).
        - **Not addressed, in a group:** answer only a clear match of an entry marked ``group_auto``, and only
          when the message asks something (:func:`~bot.knowledge.text.looks_like_question`); otherwise silence
          — no suggestion, no miss.
        - **Addressed:** a clear match is answered (:meth:`deliver`: in a group not twice within
          ``knowledge.group_cooldown_s``; when addressed, the member is told it was just answered). Without a
          clear match the question is stored as a miss (``/kb misses``) and the member gets up to
          ``knowledge.max_suggestions`` numbered suggestions (valid ``suggestion_ttl_s``, answered by
          :meth:`pick`), or "no answer" when there is none.
        - **With a person.** A member whose handoff (转人工) is open gets nothing from the knowledge base — no
          answer, no suggestion, no miss — until staff close it (:func:`bot.handoffs.in_handoff`).
        """
        question = question[:MAX_QUESTION]  # what the matcher reads of it, and what a miss stores
        if not question:
            return
        if await in_handoff(self.app, ctx.session, event.sender.id):
            return
        chat, sender = event.chat, event.sender
        if chat.is_group and not asked and not await store.group_enabled(ctx.session, chat.id):
            return
        direct = asked or event.mentions_bot or (not chat.is_group and not sender.staff)
        if sender.staff and not direct:
            return
        if prepared is not None and prepared.question == question:
            profile, result = prepared.profile, prepared.result
        else:
            profile = await profile_of(self.app, ctx.session, sender)
            result = await self.match(question, event, profile)
        if result.chatter:
            if result.chatter == "greeting" and direct and not chat.is_group and not sender.staff:
                await self.greet(ctx, event, profile)
            return
        if not direct:
            found = result.answer
            if found is not None and found.entry.group_auto and looks_like_question(question, found.keywords):
                if await self.deliver(ctx, event, found.entry, profile, direct=False):
                    await self.count(ctx, event, "answered")
            return
        if result.answer is not None:
            await self.deliver(ctx, event, result.answer.entry, profile, direct=True)
            await self.count(ctx, event, "answered")  # sent, or the member told it was just answered
            return
        await self._no_clear_answer(ctx, event, question, result, profile)

    async def greet(self, ctx: Context, event: MessageEvent, profile: MemberProfile) -> None:
        """``knowledge.greeting`` (a template: ``member``, ``bot``) once per member and local day; nothing when
        it is empty or does not render."""
        if not self.cfg.greeting.strip():
            return
        try:
            text = self.app.templates.render_string(self.cfg.greeting, member=profile.for_template(),
                                                    bot=self.app.config.bot.name)
        except TemplateProblem as exc:
            log.warning("knowledge.greeting does not render: %s", exc)
            return
        if text:
            day = ctx.now().astimezone(self.app.config.bot.tz).date().isoformat()
            await ctx.reply(text, key=f"knowledge:greeting:{event.sender.id}:{day}")

    async def _no_clear_answer(self, ctx: Context, event: MessageEvent, question: str, result: Any,
                               profile: MemberProfile) -> None:
        """Store the miss; offer numbered suggestions, or say there is no answer."""
        chat, now = event.chat, ctx.now()
        suggestions = list(result.suggestions) if self.cfg.max_suggestions else []
        best = result.candidates[0] if result.candidates else None
        miss_id = await store.record_miss(
            ctx.session, text=question, norm=self.kb.matcher.analyzer.canon(question), chat_id=chat.id,
            chat_type=chat.type, member_id=event.sender.id, member_name=profile.name or event.sender.name,
            outcome="suggested" if suggestions else "none", best_entry=best.entry.id if best else "",
            best_score=best.score if best else 0.0, now=now)
        await self.count(ctx, event, "suggested" if suggestions else "missed")
        name = profile.for_template()["name"]
        if suggestions:
            await store.offer(ctx.session, chat_id=chat.id, member_id=event.sender.id, question=question,
                              entries=[s.entry.id for s in suggestions], miss_id=miss_id, now=now,
                              ttl_s=self.cfg.suggestion_ttl_s)
            await ctx.reply(ctx.render("knowledge/did_you_mean.j2", name=name, suggestions=suggestions,
                                       minutes=max(1, self.cfg.suggestion_ttl_s // 60)), mention=chat.is_group)
        else:
            await ctx.reply(ctx.render("knowledge/no_answer.j2", name=name), mention=chat.is_group)

    async def pick(self, ctx: Context, event: MessageEvent, number: int) -> None:
        """A member answering "did you mean" with a number: the chosen entry's answer (if still offered)."""
        if await in_handoff(self.app, ctx.session, event.sender.id):
            return  # the member is with a person (转人工)
        offer = await store.pending_offer(ctx.session, event.chat.id, event.sender.id)
        if offer is None:
            return
        if offer.expires_at <= ctx.now():
            await store.drop_offer(ctx.session, offer.id)
            await ctx.reply(ctx.render("knowledge/pick_expired.j2"), mention=event.chat.is_group)
            return
        if number > len(offer.entries):
            await ctx.reply(ctx.render("knowledge/pick_out_of_range.j2", count=len(offer.entries)),
                            mention=event.chat.is_group)
            return
        await store.drop_offer(ctx.session, offer.id)
        entry = self.kb.matcher.by_id.get(offer.entries[number - 1])
        if entry is None:
            await ctx.reply(ctx.render("knowledge/pick_gone.j2"), mention=event.chat.is_group)
            return
        if offer.miss_id:
            await store.mark_picked(ctx.session, offer.miss_id, entry.id)
        profile = await profile_of(self.app, ctx.session, event.sender)
        await self.deliver(ctx, event, entry, profile, direct=True)
        await self.count(ctx, event, "picked")

    async def deliver(self, ctx: Context, event: MessageEvent, entry: Entry, profile: MemberProfile, *,
                      direct: bool) -> bool:
        """Send ``entry``'s answer unless it was just given in this group; True if sent."""
        now = ctx.now()
        group = event.chat.is_group
        if group and self.cfg.group_cooldown_s:
            last = await store.answered_recently(ctx.session, event.chat.id, entry.id,
                                                 now - timedelta(seconds=self.cfg.group_cooldown_s))
            if last is not None:
                if direct:
                    minutes = int((now - last).total_seconds() // 60)
                    await ctx.reply(ctx.render("knowledge/cooldown.j2", minutes=minutes, title=entry.title),
                                    mention=True)
                return False
        text = await asyncio.to_thread(self.render, entry, profile, event, now)  # a budgeted render: off the loop
        if not text:
            return False  # an answer over its budget renders nothing (logged once, in render_answer)
        if group:
            await store.mark_answered(ctx.session, event.chat.id, entry.id, now)
        await ctx.reply(text, mention=group)
        return True

    async def count(self, ctx: Context, event: MessageEvent, outcome: str) -> None:
        """Count how a question was met, per local day and chat (the report's answered / suggested / missed)."""
        day = ctx.now().astimezone(self.app.config.bot.tz).strftime("%Y-%m-%d")
        await store.count_outcome(ctx.session, day=day, chat_id=event.chat.id if event.chat.is_group else "",
                                  outcome=outcome)

    def where(self, event: MessageEvent, profile: MemberProfile) -> Where:
        return Where(chat=event.chat.type, chat_id=event.chat.id, chat_name=event.chat.name, tier=profile.tier,
                     tier_name=profile.tier_name)

    def render(self, entry: Entry, profile: MemberProfile, event: MessageEvent, now: datetime) -> str:
        chat = event.chat
        group = {"id": chat.id, "name": chat.name, "type": chat.type} if chat.is_group else \
            {"id": "", "name": "", "type": "single"}
        return render_answer(self.app.templates, self.app.config.bot.tz, entry, profile.for_template(), group, now)
