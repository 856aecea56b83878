"""Where a moderation alert goes: the routes, robot or app message, the group owner, escalation.

:meth:`AlertRouting.route` is the one place that decides who hears of new
alerts; :meth:`AlertRouting.escalate` is the timer it sets for a ``reject``
alert nobody acknowledged in time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.compliance.config import ModerationConfig, ModerationRoute
from bot.effects import Effects
from bot.members import MEMBERS
from bot.storage.keys import bounded_key

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.compliance.service import Observed
    from bot.compliance.store import Store

log = logging.getLogger("siyu.moderation")

ESCALATE_TASK = "moderation.escalate"
ALERTING = ("reject", "review")  # the levels that are sent; info hits are only noted
LEVEL_MARK = {"reject": "🔴", "review": "🟠", "info": "⚪"}
STAGE_LABEL = {"exact": "原词", "normalised": "规范化后命中（全半角/繁简/大小写/拆字符/重复字）",
               "variant": "变体词表（字母、谐音、数字写法）", "pinyin": "拼音谐音（待人工确认）",
               "detector": "联系方式/链接识别", "behaviour": "消息类型（会话存档：红包、转账、名片、小程序、文件）"}
STATUS_LABEL = {"open": "待处理", "acked": "已确认", "resolved": "已处理", "false_positive": "误报", "noted": "仅记录"}


def routes_of(cfg: ModerationConfig) -> list[ModerationRoute]:
    """The configured routes; without any, one route: reject and review of every category to the
    compliance robot and the reviewers."""
    if cfg.routes:
        return list(cfg.routes)
    return [ModerationRoute(categories=[], levels=["reject", "review"], robot=cfg.robot, users=list(cfg.reviewers))]


def robot_destination(robot: str) -> dict[str, Any]:
    """A compliance robot by name only: never ``group_robot.default_key``, which may post into a customer group."""
    return {"robot": robot, "named_only": True}


def escalation_key(alert_id: int) -> str:
    return f"moderation:escalate:{alert_id}"


class AlertRouting:
    def __init__(self, app: BotApp, store: Store) -> None:
        self.app = app
        self.store = store
        self.cfg: ModerationConfig = app.config.moderation

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.app.config.bot.tz)

    async def route(self, fx: Effects, msg: Observed, audience: str, alerts: list[dict[str, Any]],
                    context: list[dict[str, Any]]) -> int:
        """Where a moderation alert is routed: queue the deliveries of a message's new alerts; how many.

        - Dedup window: by the time an alert gets here it is new — a hit the same sender already raised
          with the same term in the same chat within ``dedup_window_min`` only counted as a repeat of that
          alert (``Moderation.observe``) and is not sent again.
        - A customer's message in a group (ads, spam): one app message to the group's owner, from the member
          directory (``/group owner``), else ``group_owner_fallback``; never the compliance robot.
        - A staff member's message: every route (``moderation.routes``; default: reject and review of every
          category to ``robot`` and ``reviewers``) whose categories and levels match the alert receives it —
          a route's ``robot`` as one group-robot message per robot, its ``users`` as app messages (users who
          get the same alerts share one message).
        - Escalation: a ``reject`` alert also sets a timer (``escalate_after_h``); if it is still open then,
          :meth:`escalate` tells ``escalate_to`` / ``escalate_robot``.
        """
        if audience == "customer":
            return await self._to_group_owner(fx, msg, alerts, context)
        robots, users = self.targets(alerts)
        render = self.app.templates.render
        values = {"msg": msg, "context": context, "at": self.local(msg.at), "mark": LEVEL_MARK, "stages": STAGE_LABEL}
        queued = 0
        for robot, items in robots.items():
            queued += await fx.send("group_robot", text=render("moderation/alert.j2", alerts=_unique(items), **values),
                                    destination=robot_destination(robot),
                                    key=bounded_key(f"moderation:alert:{msg.key}:robot:{robot}"))
        by_text: dict[str, list[str]] = defaultdict(list)
        for user, items in users.items():
            by_text[render("moderation/alert.j2", alerts=_unique(items), **values)].append(user)
        for i, (text, to) in enumerate(by_text.items()):
            queued += await fx.send("app_message", text=text, to=sorted(to),
                                    key=bounded_key(f"moderation:alert:{msg.key}:app:{i}"))
        for a in alerts:
            targets = [f"robot:{r}" for r, items in robots.items() if a in items]
            targets += [f"app:{u}" for u, items in users.items() if a in items]
            await self.store.set_notified(fx.session, [a["id"]], targets)
            if a["level"] == "reject" and (self.cfg.escalate_to or self.cfg.escalate_robot):
                await fx.schedule(escalation_key(a["id"]), ESCALATE_TASK,
                                  self.app.clock.now() + timedelta(hours=self.cfg.escalate_after_h),
                                  {"alert_id": a["id"]})
        return queued

    def targets(self, alerts: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]],
                                                             dict[str, list[dict[str, Any]]]]:
        """The robots and the users whose routes match the alerts' category and level: name → its alerts."""
        robots: dict[str, list[dict[str, Any]]] = defaultdict(list)
        users: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in alerts:
            for r in routes_of(self.cfg):
                if (r.categories and a["category"] not in r.categories) or a["level"] not in r.levels:
                    continue
                if r.robot:
                    robots[r.robot].append(a)
                for u in r.users:
                    users[u].append(a)
        return robots, users

    async def repeated(self, fx: Effects, msg: Observed, row: Any, *, reopened: bool) -> int:
        """A staff member repeated an alert's violation ``repeat_notify_after`` times within the dedup window:
        tell the alert's routes once (by key), saying whether the acknowledged alert was reopened."""
        if row.audience != "staff":
            return 0
        robots, users = self.targets([dict(row._mapping)])
        text = self.app.templates.render("moderation/repeat.j2", a=row, msg=msg, reopened=reopened,
                                         at=self.local(msg.at), mark=LEVEL_MARK)
        queued = 0
        for robot in robots:
            queued += await fx.send("group_robot", text=text, destination=robot_destination(robot),
                                    key=bounded_key(f"moderation:repeat:{row.id}:robot:{robot}"))
        if users:
            queued += await fx.send("app_message", text=text, to=sorted(users),
                                    key=bounded_key(f"moderation:repeat:{row.id}:app"))
        return queued

    async def _to_group_owner(self, fx: Effects, msg: Observed, alerts: list[dict[str, Any]],
                              context: list[dict[str, Any]]) -> int:
        owners = await self.group_owners(fx.session, msg.chat.id)
        text = self.app.templates.render("moderation/customer_alert.j2", msg=msg, alerts=alerts, context=context,
                                         at=self.local(msg.at), mark=LEVEL_MARK)
        queued = await fx.send("app_message", text=text, to=owners, key=bounded_key(f"moderation:customer:{msg.key}"))
        await self.store.set_notified(fx.session, [a["id"] for a in alerts], [f"app:{u}" for u in owners])
        return queued

    async def group_owners(self, session: Any, chat_id: str) -> list[str]:
        """The group's owner as the member directory knows it (``/group owner``), else the configured fallback."""
        directory = self.app.maybe(MEMBERS)
        group = await directory.group(session, chat_id) if directory is not None else None
        if group is not None and group.owner_id:
            return [group.owner_id]
        return list(self.cfg.group_owner_fallback)

    async def escalate(self, session: Any, payload: dict[str, Any], _task: Any) -> None:
        """The escalation timer of a ``reject`` alert: still open → tell ``escalate_to`` / ``escalate_robot``."""
        alert_id = int(payload["alert_id"])
        row = await self.store.alert(session, alert_id)
        if row is None or row.status != "open":
            return  # acknowledged, resolved or marked false positive in time
        now = self.app.clock.now()
        hours = (now - row.created_at).total_seconds() / 3600
        text = self.app.templates.render("moderation/escalation.j2", a=row, hours=hours, at=self.local(row.message_at),
                                         mark=LEVEL_MARK)
        fx = Effects(self.app, session, source=f"alert:{alert_id}")
        if self.cfg.escalate_to:
            await fx.send("app_message", text=text, to=self.cfg.escalate_to, key=f"moderation:escalate:{alert_id}:app")
        if self.cfg.escalate_robot:
            await fx.send("group_robot", text=text, destination=robot_destination(self.cfg.escalate_robot),
                          key=f"moderation:escalate:{alert_id}:robot")
        await self.store.update_alert(session, alert_id, escalated_at=now)


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for a in items:
        if a["id"] not in seen:
            seen.add(a["id"])
            out.append(a)
    return out
