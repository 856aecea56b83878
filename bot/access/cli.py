"""``siyu console invite USER``: a one-time sign-in link for the web console, printed for an admin to pass on."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.cliargs import add_config_arg, config_from_args, emit_json, make_app


async def _invite(args: argparse.Namespace) -> tuple[str, str]:
    from bot.access import ACCESS
    from bot.access.service import AccessDenied
    from bot.senders.console import RecordingSender

    cfg = config_from_args(args)
    app = make_app(args, cfg, sender=RecordingSender(), run_workers=False)
    await app.start()
    try:
        access = app.get(ACCESS)
        async with app.db.session() as s:
            try:
                token = await access.invite(s, args.user.lstrip("@＠"), by=args.by)
            except AccessDenied as exc:
                return "", exc.reason
        return access.link(token, args.base_url or f"http://{cfg.server.host}:{cfg.server.port}"), ""
    finally:
        await app.stop()


def cmd_invite(args: argparse.Namespace) -> int:
    link, problem = asyncio.run(_invite(args))
    if args.json:
        emit_json({"ok": bool(link), "user": args.user.lstrip("@＠"), "link": link, "problem": problem})
    elif link:
        print(link)
    else:
        print(f"siyu: {problem}", file=sys.stderr)
    return 0 if link else 1


def register(sub: Any) -> None:
    p = sub.add_parser("console", help="the web console: one-time sign-in links",
                       description="The web console under /console. Staff sign in with 企业微信 (when the bot uses "
                                   "the WeCom API) or with a one-time link an admin issues.")
    csub = p.add_subparsers(dest="console_command", metavar="SUBCOMMAND", required=True)
    i = csub.add_parser("invite", help="print a one-time sign-in link for a staff member who holds a role",
                        description="Print a one-time sign-in link (valid console.invite_minutes) for USER, who "
                                    "must be an admin (bot.admins) or hold a role (/role grant). Exit 1 if not.")
    i.add_argument("user", help="the staff member's WeCom user id (e.g. zhangsan or @zhangsan)")
    i.add_argument("--by", default="cli", help="recorded as who issued the link (default: cli)")
    i.add_argument("--base-url", default="", help="the address staff open (default: console.public_url, "
                                                   "else http://server.host:server.port)")
    add_config_arg(i)
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_invite)
