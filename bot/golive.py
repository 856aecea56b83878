"""Go-live checks: what ``check-config`` warns about, and the example content ``serve`` refuses to send.

The shipped content (the brand 禾屿茶: knowledge base, SOP scripts, Moments calendar, tiers ladder) is an
example set: each of its directories holds a marker file ``EXAMPLE.md``. With a sender that reaches real
people (``bot.sender = "wecom"`` or ``"robot"``), ``serve`` refuses to start while any content in use is
marked, unless ``bot.allow_example_content = true``. ``siyu init`` scaffolds a brand's own content
(without the marker).
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Config

EXAMPLE_MARKER = "EXAMPLE.md"
REAL_SENDERS = ("wecom", "robot")
EXAMPLE_WEBHOOK_SECRET = "change-me-webhook-secret"  # noqa: S105  # config.example.toml's placeholder
EXAMPLE_USERS = frozenset({"admin01", "staff01", "staff02"})  # the ids the example config and docs use
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def content_in_use(cfg: Config) -> dict[str, Path]:
    """What the bot serves from: label → the directory holding it."""
    used = {"知识库": cfg.resolve(cfg.knowledge.dir), "SOP 脚本": cfg.resolve(cfg.sop.dir),
            "会员等级": cfg.resolve(cfg.tiers.rules).parent}
    if cfg.moments.enabled:
        used["朋友圈日历"] = cfg.resolve(cfg.moments.calendar).parent
    return used


def example_content(cfg: Config) -> list[str]:
    """The content in use that is marked as the example set ("知识库 /path/knowledge_base", …)."""
    return [f"{label} {where}" for label, where in content_in_use(cfg).items() if (where / EXAMPLE_MARKER).is_file()]


def refuse_example(cfg: Config) -> str | None:
    """Why ``serve`` must not start (example content with a real sender), or None."""
    if cfg.bot.sender not in REAL_SENDERS or cfg.bot.allow_example_content:
        return None
    marked = example_content(cfg)
    if not marked:
        return None
    return (f"bot.sender = \"{cfg.bot.sender}\" would send the example brand's content to real customers: "
            f"{'; '.join(marked)} (marked by {EXAMPLE_MARKER}). Use your own content (`siyu init DIR` scaffolds "
            f"it), or set bot.allow_example_content = true to send it anyway.")


def warnings(cfg: Config) -> list[str]:
    """Go-live warnings: what is valid but not ready for real customers."""
    out: list[str] = []
    real = cfg.bot.sender in REAL_SENDERS
    if cfg.webhook.secret.get_secret_value() == EXAMPLE_WEBHOOK_SECRET:
        out.append("webhook.secret 还是示例值 change-me-webhook-secret：任何人都能伪造 /webhook 事件，"
                   "请换成随机长字符串（SIYU_WEBHOOK__SECRET）")
    examples = sorted(EXAMPLE_USERS & {*cfg.bot.admins, *cfg.bot.staff_ids})
    if examples:
        out.append(f"bot.admins / bot.staff_ids 里有示例 ID：{'、'.join(examples)}，请换成你们企业微信的 user id")
    if not cfg.bot.admins:
        out.append("bot.admins 为空：没有人能授予角色或修改敏感词库")
    mod = cfg.moderation
    users = {*mod.reviewers, *(u for r in mod.routes for u in r.users)}
    robots = {r.robot for r in mod.routes if r.robot} if mod.routes else ({mod.robot} if mod.robot else set())
    if not mod.reviewers:
        out.append("moderation.reviewers 为空：没有合规审核员接收预警和日报，也没人能 /alerts（或用 /role grant 授予）")
    keyed = [r for r in sorted(robots) if r in cfg.group_robot.keys]
    if not users and not keyed:
        out.append("合规预警没有去处：moderation.reviewers / routes 没有人，告警机器人也没有 group_robot.keys")
    for robot in sorted(robots - set(keyed)):
        out.append(f"告警机器人 {robot!r} 在 group_robot.keys 里没有 key：预警发不出去"
                   "（合规内容从不使用 group_robot.default_key）")
    if cfg.bot.sender == "wecom":
        for key in ("token", "encoding_aes_key"):
            if not getattr(cfg.wecom, key).get_secret_value():
                out.append(f"wecom.{key} 为空：收不到企业微信回调（SIYU_WECOM__{key.upper()}）")
    if real and cfg.server.host in LOOPBACK:
        out.append(f"server.host = {cfg.server.host}，而 bot.sender = \"{cfg.bot.sender}\"：只有本机能访问回调地址"
                   "（放在同一台机器的反向代理后面时可以忽略）")
    if real:
        marked = example_content(cfg)
        if marked:
            how = "已设置 bot.allow_example_content = true，会照发" if cfg.bot.allow_example_content \
                else "serve 会拒绝启动"
            out.append(f"正在使用示例品牌「禾屿茶」的内容（{'；'.join(marked)}），"
                       f"而 bot.sender = \"{cfg.bot.sender}\"：{how}。用 siyu init 生成自己的内容")
    return out
