"""Satisfaction surveys (NPS): the answers to ``via: survey`` steps.

A survey step asks the member for a score from 0 to 10 — 1:1 (an app message), or, for an external
contact whom app messages do not reach, in the run's group with a mention (:class:`bot.sop.engine.StepBatch`
records the question in ``sop_survey`` with where it was asked and the time its answer is awaited until).
The member's next message in that chat within the window is read by :meth:`Surveys.on_reply` (the
priority-44 handler of handlers/sop.py, which stops the event when the reply was the survey's, so the
knowledge base never sees it):

- a score (:func:`parse_score`: 「9」「9分」「给个8分吧」「九分」「十分」「满分」) is stored; a promoter
  (9–10) or passive (7–8) is thanked, a detractor (0–6) is asked why and the member's owner told;
- the detractor's next message is stored as the comment (the owner is told again, with it);
- a message that holds no score gets one gentle re-ask; after it, such messages are ordinary chat
  (a score is still taken until the window ends).

A message after the window is ordinary chat. Every statement is in bot.sop.store.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.members import MEMBERS
from bot.openquestions import open_questions
from bot.sop.timing import parse_duration

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.context import Context
    from bot.events import MessageEvent
    from bot.sop.store import SopStore

MAX_ANSWER = 500          # characters of a score reply kept
MAX_COMMENT = 1000        # characters of a comment kept
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_CN = "零〇一二两三四五六七八九十"
# a number, then what follows it; a number followed by a unit (9点, 3盒, 2次 …) is not a score
_NUMBER_RX = re.compile(rf"(\d+(?:\.\d+)?|[{_CN}]+)\s*(分?)")
_NOT_A_SCORE = set("点号月日年元块盒包袋斤克个次天周岁%：:")
_FILLER_RX = re.compile(r"[\s，。！？!?,.~～、吧呀啊哈嗯呢哦喔了的]+")


def _chinese(token: str) -> int | None:
    """「九」 9, 「十」 10, 「十一」 11, 「二十」 20; None for what is not a plain number up to 99."""
    if all(c in _CN_DIGITS for c in token):
        return _CN_DIGITS[token] if len(token) == 1 else None
    tens, ten, ones = token.partition("十")
    if not ten or "十" in ones or len(tens) > 1 or len(ones) > 1:
        return None
    return (_CN_DIGITS.get(tens, 0) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)


def _candidates(text: str) -> list[tuple[int | None, bool]]:
    """(value, followed by 分) of every number in ``text`` that could be a score."""
    found: list[tuple[int | None, bool]] = []
    for m in _NUMBER_RX.finditer(text):
        token, fen = m.group(1), bool(m.group(2))
        after = text[m.end():m.end() + 1]
        if not fen and after in _NOT_A_SCORE:
            continue
        if token[0].isdigit():
            value = int(token) if token.isdigit() else None
        else:
            if not fen and _FILLER_RX.sub("", text) != token:
                continue  # 「一般」「一起」: a Chinese numeral counts alone or as 「九分」
            value = _chinese(token)
        found.append((value, fen))
    return found


def parse_score(text: str) -> int | None:
    """The 0–10 score a reply gives, or None: digits (「9」「9分」「给个8分吧」, full-width too), Chinese
    numerals (「九」「九分」「十分」「零分」), 「满分」 = 10. Chatter around it is ignored; numbers followed by a
    unit (「9点」「3盒」) are not scores; a number with 分 wins over the others; two different scores, a
    fraction or one outside 0–10 (「11」) give None."""
    t = unicodedata.normalize("NFKC", text).strip()
    if not t or len(t) > 200:
        return None
    if "满分" in t:
        return 10
    found = _candidates(t)
    with_fen = [v for v, fen in found if fen]
    values = set(with_fen) if with_fen else {v for v, _ in found}
    if len(values) != 1:
        return None
    value = values.pop()
    return value if value is not None and 0 <= value <= 10 else None


def group_of(score: int) -> str:
    """promoter (9–10), passive (7–8) or detractor (0–6)."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


async def _say(ctx: Context, text: str) -> None:
    """Answer where the member wrote: @-mentioning them in a group."""
    chat = getattr(ctx.event, "chat", None)
    await ctx.reply(text, mention=chat is not None and chat.is_group)


def _last_asked(row: Any) -> datetime:
    """When the survey last asked the member something: the score question, or a detractor's reason."""
    return row.answered_at if row.state == "commenting" and row.answered_at else row.asked_at


class Surveys:
    """Reading members' replies to surveys, storing them, and telling the owner of a detractor."""

    def __init__(self, app: BotApp, store: SopStore) -> None:
        self.app = app
        self.store = store

    @property
    def default_window(self) -> timedelta:
        return parse_duration(self.app.config.sop.survey_window)

    async def asked_at(self, session: Any, chat_id: str, member_id: str, now: datetime) -> datetime | None:
        """When the member's survey still open in this chat asked its question (bot.openquestions), or None."""
        row = await self.store.open_survey(session, member_id, now)
        return _last_asked(row) if row is not None and row.asked_in == chat_id else None

    async def on_reply(self, ctx: Context, event: MessageEvent) -> bool:
        """Take the member's message as their survey answer when one is awaited in this chat; True when it was."""
        text = event.text.strip()
        if not text:
            return False
        now = ctx.now()
        row = await self.store.open_survey(ctx.session, event.sender.id, now)
        if row is None or row.asked_in != event.chat.id:
            return False  # nothing awaited, or said elsewhere than where the question was asked
        if await open_questions(self.app).newer(ctx.session, event.chat.id, event.sender.id, _last_asked(row), now,
                                                besides="survey"):
            return False  # the bot asked something else since (e.g. 「您是不是想问」): the reply answers that
        if row.state == "commenting":
            await self._comment(ctx, row, text, now)
            return True
        score = parse_score(text)
        if score is None:
            if row.state == "reasked":
                return False  # asked twice already: ordinary chat
            await self.store.set_survey(ctx.session, row.id, {"state": "reasked"})
            await _say(ctx, ctx.render("sop/survey_reask.j2"))
            return True
        await self._score(ctx, row, score, text, now)
        return True

    async def _score(self, ctx: Context, row: Any, score: int, text: str, now: datetime) -> None:
        values: dict[str, Any] = {"score": score, "answer": text[:MAX_ANSWER], "answered_at": now,
                                  "state": "done", "open_until": None}
        if group_of(score) == "detractor":
            values.update(state="commenting", open_until=now + timedelta(seconds=row.window_s))
        await self.store.set_survey(ctx.session, row.id, values)
        if values["state"] == "commenting":
            await _say(ctx, row.reason or ctx.render("sop/survey_thanks.j2", group="detractor"))
            await self._alert(ctx, row, score, "", "score")
        else:
            await _say(ctx, ctx.render("sop/survey_thanks.j2", group=group_of(score)))

    async def _comment(self, ctx: Context, row: Any, text: str, now: datetime) -> None:
        comment = text[:MAX_COMMENT]
        await self.store.set_survey(ctx.session, row.id, {"comment": comment, "commented_at": now, "state": "done",
                                                          "open_until": None})
        await _say(ctx, ctx.render("sop/survey_thanks.j2", group="comment"))
        await self._alert(ctx, row, int(row.score), comment, "comment")

    async def _alert(self, ctx: Context, row: Any, score: int, comment: str, what: str) -> None:
        """An app message about a detractor to the member's owner, else (asked in a group) the group's owner,
        else ``sop.survey_alert_to``, else the ops users: the score (and then the comment) with the member's tier."""
        directory = self.app.maybe(MEMBERS)
        profile = await directory.profile(ctx.session, row.member_id) if directory is not None else None
        staff = await self._staff(ctx, row, profile.owner_staff if profile is not None else "")
        if not staff:
            return
        tier = (profile.tier_name or profile.tier) if profile is not None else ""
        await ctx.send("app_message", to=staff, key=f"survey:{row.id}:{what}",
                       text=ctx.render("sop/survey_alert.j2", row=row, score=score, comment=comment, tier=tier,
                                       name=row.member_name or (profile.name if profile else "") or row.member_id))

    async def _staff(self, ctx: Context, row: Any, owner: str) -> list[str]:
        if owner:
            return [owner]
        directory = self.app.maybe(MEMBERS)
        if directory is not None and row.asked_in != row.member_id:
            group = await directory.group(ctx.session, row.asked_in)
            if group is not None and group.owner_id:
                return [group.owner_id]
        return list(self.app.config.sop.survey_alert_to or self.app.config.bot.ops_users)
