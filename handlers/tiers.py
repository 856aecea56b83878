"""Member tiers: points from what members do, the ladder, and the commands around it.

Every handler calls the ladder (``ctx.get(LADDER)``, :class:`bot.tiers.ladder.Ladder`);
the feature is assembled in :func:`bot.tiers.feature.install`.
"""

from __future__ import annotations

import re
from typing import Any

from bot.commands import Arg, CommandError
from bot.context import Context
from bot.events import (
    ContactAdded,
    ContactChanged,
    GroupCreated,
    GroupDismissed,
    MemberJoined,
    MemberLeft,
    MessageEvent,
)
from bot.members import CHANNEL_NAMES
from bot.roles import OPERATOR
from bot.routing import Predicate, Router, command_text
from bot.tiers import CUSTOMERS, LADDER
from bot.tiers.customers import NOTE_LIMIT, SILENT_DAYS
from bot.tiers.ladder import Award
from bot.tiers.rules import (
    ACTIONS,
    AMOUNT_LIMIT_YUAN,
    POINTS_PER_ENTRY,
    POINTS_TOTAL_LIMIT,
    REQUIREMENTS,
    SPEND_TOTAL_LIMIT_CENTS,
)

TAG_RX = re.compile(r"[^\s@＠/／]{1,32}")  # tier:… tags belong to the ladder

router = Router("tiers")
router.describe("tier", "会员等级：查看、调整、规则、统计、全量重算（运营）")
router.describe("points", "积分：为成员加减积分（运营）")
router.describe("group", "群分层：设置群服务的等级与容量、群主（运营）")
router.describe("tag", "成员标签：打标签、去标签、查看（运营）；打标签会触发 tag_added 类 SOP")
router.describe("members", "沉默客户（运营）")
for alias, path in (("我的", "me"), ("积分", "me"), ("我的积分", "me"), ("排行", "rank"), ("排行榜", "rank"),
                    ("作业", "homework"), ("等级", "tier"), ("等级规则", "tier rules"), ("加积分", "points add"),
                    ("购买", "purchase"), ("标签", "tag"), ("群分层", "group"), ("备注", "note"),
                    ("档案", "member"), ("客户档案", "member"), ("沉默客户", "members silent")):
    router.alias(alias, path)

is_submission = Predicate(lambda e, app: bool(app.get(LADDER).submissions(e)), "is_checkin_or_homework",
                          with_app=True)


# ── bookkeeping: observers, never blocking ──

@router.message(priority=30)
async def on_message(event: MessageEvent, ctx: Context) -> None:
    if event.sender.staff or command_text(event.text) is not None:
        return
    ladder, at = ctx.get(LADDER), event.time
    submissions = ladder.submissions(event)
    group = event.chat.is_group
    seen = await ladder.refresh(ctx.session, event.sender, at, chat=event.chat, active=True,
                                actions=("message", *submissions) if group else tuple(submissions))
    await ladder.count_message(ctx.session, event.sender.id, event.chat, at)
    if group:
        # Members who were there before the bot show up first by speaking.
        await ladder.joined(ctx.session, event.chat, event.sender, at, scene="other", inviter=None, seen=seen)
        await ladder.award(ctx.session, ctx, event.sender.id, "message", source_event=f"message:{event.key}",
                           at=at, chat=event.chat, seen=seen)
    for action in submissions:
        award = await ladder.award(ctx.session, ctx, event.sender.id, action, source_event=f"{action}:{event.key}",
                                   at=at, chat=event.chat, reason=ACTIONS[action], seen=seen)
        if not award.duplicate:
            await _acknowledge(ctx, event, award, action)


@router.message(is_submission, priority=35, block=True)
async def submitted(event: MessageEvent, ctx: Context) -> None:
    """A check-in or homework was acknowledged at priority 30; it is not a question for the knowledge base."""


@router.on(MemberJoined, priority=30)
async def on_join(event: MemberJoined, ctx: Context) -> None:
    ladder, at = ctx.get(LADDER), event.time
    inviter = event.inviter.id if event.inviter and event.scene == "invite" else None
    seen = await ladder.refresh(ctx.session, event.member, at, chat=event.chat, inviter=inviter)
    await ladder.joined(ctx.session, event.chat, event.member, at, scene=event.scene, inviter=inviter, seen=seen)
    if inviter and event.inviter and not event.inviter.staff and not event.member.staff \
            and ladder.rules.action("referral") is not None:
        by = await ladder.refresh(ctx.session, event.inviter, at, actions=("referral",))
        await ladder.award(ctx.session, ctx, inviter, "referral", source_event=f"referral:{event.member.id}",
                           at=at, chat=event.chat, reason=f"邀请 {event.member.display} 入群", seen=by)


@router.on(MemberLeft, priority=30)
async def on_leave(event: MemberLeft, ctx: Context) -> None:
    await ctx.get(LADDER).left(ctx.session, event.chat, event.member.id, event.time)
    if not event.member.staff:
        await ctx.get(CUSTOMERS).churned(ctx.session, member_id=event.member.id,
                                         kind="removed" if event.scene == "removed" else "left", staff_id="",
                                         chat_id=event.chat.id, at=event.time, source_event=f"left:{event.key}")


@router.on(ContactChanged, priority=30)
async def on_contact_changed(event: ContactChanged, ctx: Context) -> None:
    customers = ctx.get(CUSTOMERS)
    if event.lost:
        await customers.churned(ctx.session, member_id=event.member.id, kind=event.change, staff_id=event.staff.id,
                                chat_id="", at=event.time, source_event=f"contact:{event.key}")
    elif event.change == "edited" and event.tags is not None:
        await customers.sync_tags(ctx.session, ctx, event.member.id, event.staff.id, event.tags, event.time,
                                  key=f"wecom-tags:{event.key}")


@router.on(ContactAdded, priority=30)
async def on_contact(event: ContactAdded, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    m = await ladder.touch(ctx.session, event.member, event.time, state=event.state or None,
                           owner_staff=event.staff.id)
    channels = ctx.app.maybe(CHANNEL_NAMES)
    channel = await channels.channel_name(ctx.session, event.state) if channels and event.state else None
    if channel:  # added through a channel code (渠道活码): its name is the customer's source tag
        await ladder.add_tag(ctx.session, ctx, m, channel, source="channel", at=event.time, key=f"channel:{event.key}")


@router.on(GroupCreated, priority=30)
async def on_group(event: GroupCreated, ctx: Context) -> None:
    owner = event.owner.id if event.owner is not None else None
    await ctx.get(LADDER).group_created(ctx.session, event.chat, owner, event.time)


@router.on(GroupDismissed, priority=30)
async def on_dismiss(event: GroupDismissed, ctx: Context) -> None:
    await ctx.get(LADDER).group_dismissed(ctx.session, event.chat.id, event.time)
    customers = ctx.get(CUSTOMERS)
    for member_id in await customers.churn_members_of_group(ctx.session, event.chat.id):
        await customers.churned(ctx.session, member_id=member_id, kind="dismissed", staff_id="", chat_id=event.chat.id,
                                at=event.time, source_event=f"dismissed:{event.key}:{member_id}")


# ── members ──

@router.command("me", help="查看我的等级、积分、权益，以及离下一级还差什么")
async def me(event: MessageEvent, ctx: Context) -> None:
    await ctx.get(LADDER).touch(ctx.session, event.sender, event.time)
    await ctx.reply(await _card(ctx, event.sender.id, "tiers/me.j2"))


@router.command("rank", where="group", help="本群积分排行榜")
async def rank(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    rows = await ladder.leaders(ctx.session, event.chat.id)
    await ctx.reply(ctx.render("tiers/rank.j2", rows=rows, names=ladder.rules.names, chat=event.chat,
                               me=event.sender.id))


@router.command("homework", Arg("content", "作业内容或链接", rest=True), help="提交作业，获得作业积分",
                examples=["/homework 第三课笔记 https://…"])
async def homework(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    if ladder.rules.action("homework") is None:
        await ctx.reply(ctx.render("tiers/homework.j2", award=None, enabled=False))
        return
    seen = await ladder.refresh(ctx.session, event.sender, event.time, chat=event.chat, active=True,
                                actions=("homework",))
    award = await ladder.award(ctx.session, ctx, event.sender.id, "homework", source_event=f"homework:{event.key}",
                               at=event.time, chat=event.chat, reason=ctx.args["content"][:200], seen=seen)
    await _acknowledge(ctx, event, award, "homework")


# ── operators ──

@router.command("tier show", Arg("member", "成员", type="mention"), roles=[OPERATOR], private=True,
                help="查看某位成员的等级、积分明细和最近变动", examples=["/tier show @Alice"])
async def tier_show(event: MessageEvent, ctx: Context) -> None:
    m = await _one(ctx, ctx.args["member"])
    if m is not None:
        await ctx.reply(await _card(ctx, m.id, "tiers/show.j2"))


@router.command("tier set", Arg("member", "成员", type="mention"), Arg("tier", "等级|auto"),
                Arg("reason", "原因", rest=True), roles=[OPERATOR], private=True, confirm=True,
                help="把成员固定在某个等级（auto 恢复按规则评定），记录审计",
                examples=["/tier set @Alice quality 线下活动表现突出", "/tier set @Alice auto 恢复规则评定"])
async def tier_set(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    m = await _one(ctx, ctx.args["member"])
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


@router.command("points add", Arg("member", "成员", type="mention"),
                Arg("points", "积分", type="int", min=-POINTS_PER_ENTRY, max=POINTS_PER_ENTRY),
                Arg("reason", "原因", rest=True), roles=[OPERATOR], private=True,
                help=f"为成员加积分（负数为扣分，每次最多 ±{POINTS_PER_ENTRY:,}），记入积分流水",
                examples=["/points add @Alice 20 分享了使用心得"])
async def points_add(event: MessageEvent, ctx: Context) -> None:
    m = await _one(ctx, ctx.args["member"])
    if m is None:
        return
    if ctx.args["points"] == 0:
        await ctx.reply(ctx.render("tiers/points_zero.j2"))
        return
    award = await ctx.get(LADDER).award(
        ctx.session, ctx, m.id, "grant", source_event=f"grant:{event.key}", at=ctx.now(),
        points=ctx.args["points"], reason=f"{ctx.args['reason']}（{event.sender.display}）")
    if award.limited:
        raise CommandError(f"{m.name or m.id} 的积分总额不能超过 ±{POINTS_TOTAL_LIMIT:,}，这次没有记录")
    await ctx.reply(ctx.render("tiers/points_added.j2", member=m, award=award, tier=_tier_of(ctx, award)))


@router.command("purchase", Arg("member", "成员", type="mention"),
                Arg("amount", "金额（元）", type="float", min=0.01, max=AMOUNT_LIMIT_YUAN, decimals=2),
                Arg("sku", "商品", optional=True, default=""), roles=[OPERATOR], private=True,
                help=f"记录一笔购买（计入购买次数、消费金额和购买积分；金额 0.01–{AMOUNT_LIMIT_YUAN:,} 元）",
                examples=["/purchase @Alice 268 正山小种礼盒"])
async def purchase(event: MessageEvent, ctx: Context) -> None:
    m = await _one(ctx, ctx.args["member"])
    if m is None:
        return
    cents = round(ctx.args["amount"] * 100)
    award = await ctx.get(LADDER).purchase(ctx.session, ctx, m.id, cents, sku=ctx.args["sku"],
                                           recorded_by=event.sender.id, source=f"purchase:{event.key}", at=ctx.now())
    if award is not None and award.limited:
        raise CommandError(f"{m.name or m.id} 的积分或累计消费将超出上限（积分 ±{POINTS_TOTAL_LIMIT:,}，"
                           f"消费 {SPEND_TOTAL_LIMIT_CENTS // 100:,} 元），这笔没有记录")
    await ctx.reply(ctx.render("tiers/purchase_done.j2", member=m, cents=cents, sku=ctx.args["sku"], award=award,
                               tier=_tier_of(ctx, award)))


@router.command("tier rules", help="查看等级规则：升级条件、积分规则、降级规则和各级权益")
async def tier_rules(event: MessageEvent, ctx: Context) -> None:
    await ctx.reply(ctx.render("tiers/rules.j2", rules=ctx.get(LADDER).rules, requirements=REQUIREMENTS,
                               actions=ACTIONS))


@router.command("tier stats", roles=[OPERATOR], private=True, help="各等级人数与本周升降级次数")
async def tier_stats(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    stats = await ladder.weekly_stats(ctx.session, ctx.now())
    await ctx.reply(ctx.render("tiers/stats.j2", stats=stats, tiers=ladder.rules.tiers))


@router.command("tier recompute", roles=[OPERATOR], private=True, confirm=True,
                help="按积分流水全量重算所有成员的积分与等级，并报告差异")
async def tier_recompute(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    diffs = await ladder.recompute(ctx.session, ctx, ctx.now(), apply=True)
    await ctx.reply(ctx.render("tiers/recompute.j2", diffs=diffs[:10], total=len(diffs),
                               ignored=await ladder.entries_out_of_bounds(ctx.session),
                               limit=f"{POINTS_PER_ENTRY:,}"))


@router.command("tag add", Arg("member", "成员", type="mention"), Arg("tag", "标签"), roles=[OPERATOR], private=True,
                help="给成员打标签（来源、兴趣、进度…），会触发 trigger: tag_added 的 SOP",
                examples=["/tag add @Alice 红茶爱好者", "/tag add wmAbc123 直播课学员"])
async def tag_add(event: MessageEvent, ctx: Context) -> None:
    tag = await _tag_name(ctx)
    m = await _one(ctx, ctx.args["member"]) if tag else None
    if m is None:
        return
    added = await ctx.get(LADDER).add_tag(ctx.session, ctx, m, tag, source="operator", at=ctx.now(), key=event.key)
    if added:
        await ctx.get(CUSTOMERS).tag_changed(ctx.session, ctx, m, add=[tag], remove=[], key=f"tag:{event.key}")
    await ctx.reply(ctx.render("tiers/tag_done.j2", member=m, tag=tag, added=added, removed=None))


@router.command("tag del", Arg("member", "成员", type="mention"), Arg("tag", "标签"), roles=[OPERATOR], private=True,
                help="去掉成员的一个标签", examples=["/tag del @Alice 直播课学员"])
async def tag_del(event: MessageEvent, ctx: Context) -> None:
    tag = await _tag_name(ctx)
    m = await _one(ctx, ctx.args["member"]) if tag else None
    if m is None:
        return
    removed = await ctx.get(LADDER).remove_tag(ctx.session, m.id, tag)
    if removed:
        await ctx.get(CUSTOMERS).tag_changed(ctx.session, ctx, m, add=[], remove=[tag], key=f"tag:{event.key}")
    await ctx.reply(ctx.render("tiers/tag_done.j2", member=m, tag=tag, added=None, removed=removed))


@router.command("tag list", Arg("member", "成员", type="mention", optional=True), roles=[OPERATOR], private=True,
                help="列出某位成员的标签；不写成员则列出所有标签及人数", examples=["/tag list", "/tag list @Alice"])
async def tag_list(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    if not ctx.args["member"]:
        await ctx.reply(ctx.render("tiers/tag_list.j2", member=None, tags=(),
                                   counts=await ladder.tag_counts(ctx.session)))
        return
    m = await _one(ctx, ctx.args["member"])
    if m is not None:
        await ctx.reply(ctx.render("tiers/tag_list.j2", member=m, tags=await ladder.tags(ctx.session, m.id),
                                   counts=None))


@router.command("note", Arg("member", "成员|list"), Arg("content", "内容", rest=True, optional=True, default=""),
                roles=[OPERATOR], private=True,
                help=f"给客户记备注（最多 {NOTE_LIMIT} 字，记下作者和时间，显示在 /member 档案里）；"
                     "/note list @成员 查看备注",
                examples=["/note @Alice 喜欢岩茶，月底生日", "/note list @Alice"])
async def note(event: MessageEvent, ctx: Context) -> None:
    who, text = ctx.args["member"], ctx.args["content"].strip()
    if who.lower() == "list":
        await _note_list(ctx, text)
        return
    if not text or len(text) > NOTE_LIMIT:
        await ctx.reply(ctx.render("tiers/note_invalid.j2", empty=not text, length=len(text), limit=NOTE_LIMIT))
        return
    m = await _one(ctx, who.lstrip("@＠"))
    if m is None:
        return
    customers = ctx.get(CUSTOMERS)
    await customers.add_note(ctx.session, m.id, event.sender, text, ctx.now())
    _, total = await customers.notes(ctx.session, m.id, 0)
    await ctx.reply(ctx.render("tiers/note_done.j2", member=m, text=text, total=total))


async def _note_list(ctx: Context, who: str) -> None:
    if not who:
        raise CommandError("请写上成员：/note list @成员")
    m = await _one(ctx, who.split()[0].lstrip("@＠"))
    if m is not None:
        notes, total = await ctx.get(CUSTOMERS).notes(ctx.session, m.id)
        await ctx.reply(ctx.render("tiers/note_list.j2", member=m, notes=notes, total=total))


@router.command("member", Arg("member", "成员", type="mention"), roles=[OPERATOR], private=True,
                help="客户档案（等级与变动、积分、标签、来源、所在群、最近发言、备注、SOP、转人工和告警）",
                examples=["/member @Alice", "/member wmAbc123"])
async def member_profile(event: MessageEvent, ctx: Context) -> None:
    m = await _one(ctx, ctx.args["member"])
    if m is not None:
        await ctx.reply(ctx.render("tiers/profile.j2", **await ctx.get(CUSTOMERS).profile(ctx.session, m.id)))


@router.command("members silent", Arg("days", "天数", type="int", min=SILENT_DAYS[0], max=SILENT_DAYS[1]),
                roles=[OPERATOR], private=True,
                help=f"沉默客户：N 天（{SILENT_DAYS[0]}–{SILENT_DAYS[1]}）没有发言的客户，按群和等级统计",
                examples=["/members silent 14"])
async def members_silent(event: MessageEvent, ctx: Context) -> None:
    report = await ctx.get(CUSTOMERS).silent(ctx.session, ctx.args["days"], ctx.now())
    await ctx.reply(ctx.render("tiers/silent.j2", **report))


@router.command("group set", Arg("tier", "等级"), Arg("capacity", "容量", type="int", optional=True, min=1),
                roles=[OPERATOR], where="group",
                help="声明本群服务哪个等级（升级的成员会被邀请进有空位的对应群）",
                examples=["/group set quality 200", "/group set vip"])
async def group_set(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    wanted = ctx.args["tier"].lower()
    tier = ladder.rules.serving(wanted)
    if tier is None:
        await ctx.reply(ctx.render("tiers/unknown_tier.j2", tier=wanted, tiers=ladder.rules.tiers))
        return
    row = await ladder.serve(ctx.session, event.chat, tier, ctx.args["capacity"], ctx.now())
    await ctx.reply(ctx.render("tiers/group.j2", group=row, tier=tier))


@router.command("group owner", Arg("staff", "员工", type="mention"), roles=[OPERATOR], where="group",
                help="设置本群的负责人（成员升降级时通知他）", examples=["/group owner @zhangsan"])
async def group_owner(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    row = await ladder.set_owner(ctx.session, event.chat, ctx.args["staff"], ctx.now())
    await ctx.reply(ctx.render("tiers/group.j2", group=row, tier=ladder.rules.tier(row.tier or "")))


@router.command("group list", roles=[OPERATOR], private=True, help="列出已分层的群：服务等级、人数/容量、负责人")
async def group_list(event: MessageEvent, ctx: Context) -> None:
    ladder = ctx.get(LADDER)
    rows = await ladder.tiered_groups(ctx.session)
    await ctx.reply(ctx.render("tiers/group_list.j2", rows=rows, names=ladder.rules.names))


# ── shared by the handlers above ──

async def _acknowledge(ctx: Context, event: MessageEvent, award: Award, action: str) -> None:
    if award.change is not None:
        return  # the upgrade message says it all
    tier = award.decision.tier if award.decision is not None else None
    await ctx.reply(ctx.render("tiers/earned.j2", award=award, action=ACTIONS.get(action, action), member=event.sender,
                               tier=tier), mention=True)


def _tier_of(ctx: Context, award: Award | None) -> Any:
    """The tier an award left the member in (None when nothing was recorded)."""
    return ctx.get(LADDER).rules.tier(award.decision.tier) if award and award.decision else None


async def _tag_name(ctx: Context) -> str:
    """The tag argument, or "" after telling the operator why it cannot be used."""
    tag = ctx.args["tag"].strip()
    if not TAG_RX.fullmatch(tag) or tag.startswith("tier:"):
        await ctx.reply(ctx.render("tiers/tag_invalid.j2", tag=tag))
        return ""
    return tag


async def _one(ctx: Context, who: str) -> Any:
    """The one member ``who`` names, or None after listing the candidates (none or several)."""
    rows = await ctx.get(LADDER).resolve(ctx.session, who)
    if len(rows) == 1:
        return rows[0]
    await ctx.reply(ctx.render("tiers/member_lookup.j2", who=who, rows=rows))
    return None


async def _card(ctx: Context, member_id: str, template: str) -> str:
    return ctx.render(template, **await ctx.get(LADDER).card(ctx.session, member_id, ctx.now()))
