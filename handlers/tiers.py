"""Member tiers: points from what members do, the ladder, and the commands around it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update

from bot.commands import Arg, strip_bot_mention
from bot.context import Context
from bot.events import Actor, ContactAdded, GroupCreated, GroupDismissed, MemberJoined, MemberLeft, MessageEvent
from bot.members import MEMBERS
from bot.pump import Reloader
from bot.roles import OPERATOR
from bot.routing import Predicate, Router, command_text
from bot.services import ServiceKey
from bot.tiers.ladder import GROUP, MEMBER, MEMBERSHIP, Ladder, SessionEffects
from bot.tiers.rules import ACTIONS, REQUIREMENTS, load_rules
from bot.yamldoc import FileProblems, file_stamp

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.tiers")

LADDER: ServiceKey[Ladder] = ServiceKey("ladder")
LEAD_RX = re.compile(r"^[\s#＃【\[「(（]+")  # what may come before a keyword: #打卡, 【打卡】, 「交作业」
TAG_RX = re.compile(r"[^\s@＠/／]{1,32}")  # tier:… tags belong to the ladder


def rules_reload(ladder: Ladder, path: Path) -> Callable[[bool], bool]:
    """Picks up edits of tiers.yaml; a broken edit is refused and the old rules stay live."""
    seen = [file_stamp(path)]

    def reload(_files: bool) -> bool:
        stamp = file_stamp(path)
        if stamp is None or stamp == seen[0]:
            return False
        seen[0] = stamp
        try:
            rules = load_rules(path)
        except FileProblems as exc:
            log.error("tiers rules not reloaded, the previous rules stay live:\n%s",
                      "\n".join(str(p) for p in exc.problems))
            return False
        if rules.version == ladder.rules.version:
            return False
        ladder.rules = rules
        log.info("tiers rules reloaded (version %s); /tier recompute applies them to everyone now", rules.version)
        return True

    return reload


def setup(app: BotApp) -> Router:
    path = app.config.resolve(app.config.tiers.rules)
    try:
        rules = load_rules(path)
    except FileProblems as exc:
        raise ValueError("tiers.rules: the rules file cannot be used:\n" + str(exc)) from None
    ladder = Ladder(app, rules)
    app.provide(LADDER, ladder)
    app.provide(MEMBERS, ladder)
    app.pumps.append(Reloader("tiers-rules", app.clock, app.config.tiers.reload_interval_s,
                              rules_reload(ladder, path)))

    async def daily_review(fire_time: datetime) -> None:
        async with app.db.session() as s:
            fx = SessionEffects(app, s, f"tiers-daily:{fire_time.isoformat()}")
            changed = await ladder.reevaluate_all(s, fx, app.clock.now())
        fx.kick()
        log.info("daily tier review: %d members changed tier", changed)

    app.scheduler.add_cron("tiers-daily-review", daily_review, crontab=app.config.tiers.daily_review)

    router = Router("tiers")
    router.describe("tier", "会员等级：查看、调整、规则、统计、全量重算（运营）")
    router.describe("points", "积分：为成员加减积分（运营）")
    router.describe("group", "群分层：设置群服务的等级与容量、群主（运营）")
    router.describe("tag", "成员标签：打标签、去标签、查看（运营）；打标签会触发 tag_added 类 SOP")

    # ── bookkeeping: observers, never blocking ──

    @router.message(priority=30)
    async def on_message(event: MessageEvent, ctx: Context) -> None:
        if event.sender.staff or command_text(event.text) is not None:
            return
        at = event.time
        await ladder.touch(ctx.session, event.sender, at, chat=event.chat, active=True)
        if event.chat.is_group:
            # Members who were there before the bot show up first by speaking.
            await ladder.joined(ctx.session, event.chat, event.sender, at, scene="other", inviter=None)
            await ladder.award(ctx.session, ctx, event.sender.id, "message", source_event=f"message:{event.key}",
                               at=at, chat=event.chat)
        for action in keyword_actions(event):
            award = await ladder.award(ctx.session, ctx, event.sender.id, action, source_event=f"{action}:{event.key}",
                                       at=at, chat=event.chat, reason=ACTIONS[action])
            if not award.duplicate:
                await _acknowledge(ctx, event, award, action)

    def keyword_actions(event: MessageEvent) -> list[str]:
        """The actions a member's message performs by starting with their keyword (「打卡 白牡丹 清甜」)."""
        if event.sender.staff or command_text(event.text) is not None:
            return []
        text = LEAD_RX.sub("", strip_bot_mention(event.text, app.bot_names))
        return [a for a in ("checkin", "homework") if (rule := ladder.rules.action(a)) is not None
                and any(text.startswith(k) for k in rule.keywords)]

    @router.message(Predicate(lambda e: bool(keyword_actions(e)), "is_checkin_or_homework"), priority=35,
                    block=True)
    async def submitted(event: MessageEvent, ctx: Context) -> None:
        """A check-in or homework was acknowledged at priority 30; it is not a question for the knowledge base."""

    @router.on(MemberJoined, priority=30)
    async def on_join(event: MemberJoined, ctx: Context) -> None:
        at = event.time
        inviter = event.inviter.id if event.inviter and event.scene == "invite" else None
        await ladder.touch(ctx.session, event.member, at, chat=event.chat, inviter=inviter)
        await ladder.joined(ctx.session, event.chat, event.member, at, scene=event.scene, inviter=inviter)
        if inviter and event.inviter and not event.inviter.staff and not event.member.staff \
                and ladder.rules.action("referral") is not None:
            await ladder.touch(ctx.session, event.inviter, at)
            await ladder.award(ctx.session, ctx, inviter, "referral", source_event=f"referral:{event.member.id}",
                               at=at, chat=event.chat, reason=f"邀请 {event.member.display} 入群")

    @router.on(MemberLeft, priority=30)
    async def on_leave(event: MemberLeft, ctx: Context) -> None:
        await ladder.left(ctx.session, event.chat, event.member.id, event.time)

    @router.on(ContactAdded, priority=30)
    async def on_contact(event: ContactAdded, ctx: Context) -> None:
        await ladder.touch(ctx.session, event.member, event.time, state=event.state or None,
                           owner_staff=event.staff.id)

    @router.on(GroupCreated, priority=30)
    async def on_group(event: GroupCreated, ctx: Context) -> None:
        row = await ladder.group(ctx.session, event.chat, event.time)
        if event.owner is not None and row.owner_id is None:
            await ctx.session.execute(update(GROUP).where(GROUP.c.chat_id == event.chat.id)
                                      .values(owner_id=event.owner.id))

    @router.on(GroupDismissed, priority=30)
    async def on_dismiss(event: GroupDismissed, ctx: Context) -> None:
        await ctx.session.execute(update(GROUP).where(GROUP.c.chat_id == event.chat.id)
                                  .values(dismissed_at=event.time))

    # ── members ──

    @router.command("me", help="查看我的等级、积分、权益，以及离下一级还差什么")
    async def me(event: MessageEvent, ctx: Context) -> None:
        await ladder.touch(ctx.session, event.sender, event.time)
        await ctx.reply(await _card(ctx, ladder, event.sender.id, "tiers/me.j2"))

    @router.command("rank", where="group", help="本群积分排行榜")
    async def rank(event: MessageEvent, ctx: Context) -> None:
        size = ctx.config.tiers.leaderboard_size
        rows = (await ctx.session.execute(
            select(MEMBER.c.id, MEMBER.c.name, MEMBER.c.points, MEMBER.c.tier)
            .join(MEMBERSHIP, MEMBERSHIP.c.member_id == MEMBER.c.id)
            .where(and_(MEMBERSHIP.c.chat_id == event.chat.id, MEMBERSHIP.c.left_at.is_(None),
                        MEMBER.c.staff.is_(False)))
            .order_by(MEMBER.c.points.desc(), MEMBER.c.id).limit(size))).all()
        names = {t.id: t.name for t in ladder.rules.tiers}
        await ctx.reply(ctx.render("tiers/rank.j2", rows=rows, names=names, chat=event.chat, me=event.sender.id))

    @router.command("homework", Arg("content", "作业内容或链接", rest=True), help="提交作业，获得作业积分",
                    examples=["/homework 第三课笔记 https://…"])
    async def homework(event: MessageEvent, ctx: Context) -> None:
        if ladder.rules.action("homework") is None:
            await ctx.reply(ctx.render("tiers/homework.j2", award=None, enabled=False))
            return
        await ladder.touch(ctx.session, event.sender, event.time, chat=event.chat, active=True)
        award = await ladder.award(ctx.session, ctx, event.sender.id, "homework", source_event=f"homework:{event.key}",
                                   at=event.time, chat=event.chat, reason=ctx.args["content"][:200])
        await _acknowledge(ctx, event, award, "homework")

    # ── operators ──

    @router.command("tier show", Arg("member", "成员", type="mention"), roles=[OPERATOR],
                    help="查看某位成员的等级、积分明细和最近变动", examples=["/tier show @Alice"])
    async def tier_show(event: MessageEvent, ctx: Context) -> None:
        m = await _one(ctx, ladder, ctx.args["member"])
        if m is not None:
            await ctx.reply(await _card(ctx, ladder, m.id, "tiers/show.j2"))

    @router.command("tier set", Arg("member", "成员", type="mention"), Arg("tier", "等级|auto"),
                    Arg("reason", "原因", rest=True), roles=[OPERATOR], confirm=True,
                    help="把成员固定在某个等级（auto 恢复按规则评定），需确认并记录审计",
                    examples=["/tier set @Alice quality 线下活动表现突出", "/tier set @Alice auto 恢复规则评定"])
    async def tier_set(event: MessageEvent, ctx: Context) -> None:
        m = await _one(ctx, ladder, ctx.args["member"])
        if m is None:
            return
        wanted = ctx.args["tier"].lower()
        if wanted != "auto" and ladder.rules.tier(wanted) is None:
            await ctx.reply(ctx.render("tiers/unknown_tier.j2", tier=wanted, tiers=ladder.rules.tiers))
            return
        decision, change = await ladder.set_tier(
            ctx.session, ctx, m.id, None if wanted == "auto" else wanted, operator=event.sender.id,
            reason=ctx.args["reason"], source_event=f"tier-set:{event.key}", at=ctx.now())
        await ctx.reply(ctx.render("tiers/set_done.j2", member=m, decision=decision, change=change,
                                   tier=ladder.rules.tier(decision.tier), auto=wanted == "auto"))

    @router.command("points add", Arg("member", "成员", type="mention"), Arg("points", "积分", type="int"),
                    Arg("reason", "原因", rest=True), roles=[OPERATOR],
                    help="为成员加积分（负数为扣分），记入积分流水", examples=["/points add @Alice 20 分享了使用心得"])
    async def points_add(event: MessageEvent, ctx: Context) -> None:
        m = await _one(ctx, ladder, ctx.args["member"])
        if m is None:
            return
        if ctx.args["points"] == 0:
            await ctx.reply(ctx.render("tiers/points_zero.j2"))
            return
        award = await ladder.award(ctx.session, ctx, m.id, "grant", source_event=f"grant:{event.key}", at=ctx.now(),
                                   points=ctx.args["points"], reason=f"{ctx.args['reason']}（{event.sender.display}）")
        await ctx.reply(ctx.render("tiers/points_added.j2", member=m, award=award,
                                   tier=ladder.rules.tier(award.decision.tier) if award.decision else None))

    @router.command("purchase", Arg("member", "成员", type="mention"),
                    Arg("amount", "金额（元）", type="float", min=0.01), Arg("sku", "商品", optional=True, default=""),
                    roles=[OPERATOR], help="记录一笔购买（计入购买次数、消费金额和购买积分）",
                    examples=["/purchase @Alice 268 正山小种礼盒"])
    async def purchase(event: MessageEvent, ctx: Context) -> None:
        m = await _one(ctx, ladder, ctx.args["member"])
        if m is None:
            return
        cents = round(ctx.args["amount"] * 100)
        award = await ladder.purchase(ctx.session, ctx, m.id, cents, sku=ctx.args["sku"], recorded_by=event.sender.id,
                                      source=f"purchase:{event.key}", at=ctx.now())
        await ctx.reply(ctx.render("tiers/purchase_done.j2", member=m, cents=cents, sku=ctx.args["sku"], award=award,
                                   tier=ladder.rules.tier(award.decision.tier) if award and award.decision else None))

    @router.command("tier rules", help="查看等级规则：升级条件、积分规则、降级规则和各级权益")
    async def tier_rules(event: MessageEvent, ctx: Context) -> None:
        await ctx.reply(ctx.render("tiers/rules.j2", rules=ladder.rules, requirements=REQUIREMENTS, actions=ACTIONS))

    @router.command("tier stats", roles=[OPERATOR], help="各等级人数与本周升降级次数")
    async def tier_stats(event: MessageEvent, ctx: Context) -> None:
        stats = await ladder.weekly_stats(ctx.session, ctx.now())
        await ctx.reply(ctx.render("tiers/stats.j2", stats=stats, tiers=ladder.rules.tiers))

    @router.command("tier recompute", roles=[OPERATOR], confirm=True,
                    help="按积分流水全量重算所有成员的积分与等级，并报告差异（需确认）")
    async def tier_recompute(event: MessageEvent, ctx: Context) -> None:
        diffs = await ladder.recompute(ctx.session, ctx, ctx.now(), apply=True)
        await ctx.reply(ctx.render("tiers/recompute.j2", diffs=diffs[:10], total=len(diffs)))

    @router.command("tag add", Arg("member", "成员", type="mention"), Arg("tag", "标签"), roles=[OPERATOR],
                    help="给成员打标签（来源、兴趣、进度…），会触发 trigger: tag_added 的 SOP",
                    examples=["/tag add @Alice 红茶爱好者", "/tag add wmAbc123 直播课学员"])
    async def tag_add(event: MessageEvent, ctx: Context) -> None:
        tag = await _tag_name(ctx)
        m = await _one(ctx, ladder, ctx.args["member"]) if tag else None
        if m is None:
            return
        added = await ladder.add_tag(ctx.session, ctx, m, tag, source="operator", at=ctx.now(), key=event.key)
        await ctx.reply(ctx.render("tiers/tag_done.j2", member=m, tag=tag, added=added, removed=None))

    @router.command("tag del", Arg("member", "成员", type="mention"), Arg("tag", "标签"), roles=[OPERATOR],
                    help="去掉成员的一个标签", examples=["/tag del @Alice 直播课学员"])
    async def tag_del(event: MessageEvent, ctx: Context) -> None:
        tag = await _tag_name(ctx)
        m = await _one(ctx, ladder, ctx.args["member"]) if tag else None
        if m is None:
            return
        removed = await ladder.remove_tag(ctx.session, m.id, tag)
        await ctx.reply(ctx.render("tiers/tag_done.j2", member=m, tag=tag, added=None, removed=removed))

    @router.command("tag list", Arg("member", "成员", type="mention", optional=True), roles=[OPERATOR],
                    help="列出某位成员的标签；不写成员则列出所有标签及人数", examples=["/tag list", "/tag list @Alice"])
    async def tag_list(event: MessageEvent, ctx: Context) -> None:
        if ctx.args["member"]:
            m = await _one(ctx, ladder, ctx.args["member"])
            if m is None:
                return
            profile = await ladder.profile(ctx.session, m.id)
            await ctx.reply(ctx.render("tiers/tag_list.j2", member=m, tags=profile.tags if profile else (),
                                       counts=None))
        else:
            await ctx.reply(ctx.render("tiers/tag_list.j2", member=None, tags=(),
                                       counts=await ladder.tag_counts(ctx.session)))

    @router.command("group set", Arg("tier", "等级"), Arg("capacity", "容量", type="int", optional=True, min=1),
                    roles=[OPERATOR], where="group",
                    help="声明本群服务哪个等级（升级的成员会被邀请进有空位的对应群）",
                    examples=["/group set quality 200", "/group set vip"])
    async def group_set(event: MessageEvent, ctx: Context) -> None:
        wanted = ctx.args["tier"].lower()
        tier = ladder.rules.tier(wanted) or next((t for t in ladder.rules.tiers if t.group_tag == wanted), None)
        if tier is None:
            await ctx.reply(ctx.render("tiers/unknown_tier.j2", tier=wanted, tiers=ladder.rules.tiers))
            return
        await ladder.group(ctx.session, event.chat, ctx.now())
        await ctx.session.execute(update(GROUP).where(GROUP.c.chat_id == event.chat.id).values(
            tier=tier.id, capacity=ctx.args["capacity"]))
        row = (await ctx.session.execute(select(GROUP).where(GROUP.c.chat_id == event.chat.id))).first()
        await ctx.reply(ctx.render("tiers/group.j2", group=row, tier=tier))

    @router.command("group owner", Arg("staff", "员工", type="mention"), roles=[OPERATOR], where="group",
                    help="设置本群的负责人（成员升降级时通知他）", examples=["/group owner @zhangsan"])
    async def group_owner(event: MessageEvent, ctx: Context) -> None:
        await ladder.group(ctx.session, event.chat, ctx.now())
        await ctx.session.execute(update(GROUP).where(GROUP.c.chat_id == event.chat.id)
                                  .values(owner_id=ctx.args["staff"]))
        row = (await ctx.session.execute(select(GROUP).where(GROUP.c.chat_id == event.chat.id))).first()
        await ctx.reply(ctx.render("tiers/group.j2", group=row, tier=ladder.rules.tier(row.tier or "")))

    @router.command("group list", roles=[OPERATOR], help="列出已分层的群：服务等级、人数/容量、负责人")
    async def group_list(event: MessageEvent, ctx: Context) -> None:
        rows = (await ctx.session.execute(select(GROUP).where(and_(GROUP.c.tier.is_not(None),
                                                                   GROUP.c.dismissed_at.is_(None)))
                                          .order_by(GROUP.c.tier, GROUP.c.chat_id))).all()
        names = {t.id: t.name for t in ladder.rules.tiers}
        await ctx.reply(ctx.render("tiers/group_list.j2", rows=rows, names=names))

    return router


async def _acknowledge(ctx: Context, event: MessageEvent, award: Any, action: str) -> None:
    tier = None
    if award.change is not None:
        return  # the upgrade message says it all
    if award.decision is not None:
        tier = award.decision.tier
    await ctx.reply(ctx.render("tiers/earned.j2", award=award, action=ACTIONS.get(action, action), member=event.sender,
                               tier=tier), mention=True)


async def _tag_name(ctx: Context) -> str:
    """The tag argument, or "" after telling the operator why it cannot be used."""
    tag = ctx.args["tag"].strip()
    if not TAG_RX.fullmatch(tag) or tag.startswith("tier:"):
        await ctx.reply(ctx.render("tiers/tag_invalid.j2", tag=tag))
        return ""
    return tag


async def _one(ctx: Context, ladder: Ladder, who: str) -> Any:
    rows = await ladder.resolve(ctx.session, who)
    if len(rows) == 1:
        return rows[0]
    await ctx.reply(ctx.render("tiers/member_lookup.j2", who=who, rows=rows))
    return None


async def _card(ctx: Context, ladder: Ladder, member_id: str, template: str) -> str:
    from bot.tiers.ladder import CHANGES, LEDGER, stats_of
    from bot.tiers.rules import evaluate

    m = (await ctx.session.execute(select(MEMBER).where(MEMBER.c.id == member_id))).first()
    decision = evaluate(ladder.rules, stats_of(m), ctx.now())
    tier = ladder.rules.tier(m.tier)
    recent = (await ctx.session.execute(select(LEDGER).where(LEDGER.c.member_id == member_id)
                                        .order_by(LEDGER.c.id.desc()).limit(5))).all()
    changes = (await ctx.session.execute(select(CHANGES).where(CHANGES.c.member_id == member_id)
                                         .order_by(CHANGES.c.id.desc()).limit(3))).all()
    today = (await ctx.session.execute(select(func.coalesce(func.sum(LEDGER.c.points), 0)).where(and_(
        LEDGER.c.member_id == member_id, LEDGER.c.day == ladder.local_day(ctx.now()))))).scalar_one()
    return ctx.render(template, m=m, tier=tier, decision=decision, requirements=REQUIREMENTS, recent=recent,
                      changes=changes, today=today, actions=ACTIONS, names={t.id: t.name for t in ladder.rules.tiers},
                      silent=decision.rule == "inactive", member=Actor(id=m.id, name=m.name))
