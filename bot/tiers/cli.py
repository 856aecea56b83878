"""``python -m bot tiers …``: recompute everyone from the ledger; validate a rules file."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  python -m bot tiers check                     validate the rules file named in the config (tiers.rules)
  python -m bot tiers check my-tiers.yaml       validate another file
  python -m bot tiers recompute --dry-run       show members whose totals or tier differ from the ledger
  python -m bot tiers recompute --json          correct them; one JSON object per member, then a summary
"""


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cli import config_from_args, emit_json
    from bot.tiers.rules import load_rules
    from bot.yamldoc import FileProblems

    if args.path:
        path = Path(args.path)
    else:
        cfg = config_from_args(args)
        path = cfg.resolve(cfg.tiers.rules)
    try:
        rules = load_rules(path)
    except FileProblems as exc:
        if args.json:
            for p in exc.problems:
                emit_json({"ok": False, **p.to_json()})
        else:
            for p in exc.problems:
                print(f"✗ {p}", file=sys.stderr)
        return 1
    if args.json:
        emit_json({"ok": True, "file": str(path), "version": rules.version,
                   "tiers": [{"id": t.id, "name": t.name, "requires": t.requires} for t in rules.tiers]})
    else:
        ladder = " → ".join(f"{t.name}({t.id})" for t in rules.tiers)
        print(f"✓ {path}: {len(rules.tiers)} tiers, {len(rules.points)} point rules — {ladder}")
    return 0


async def _recompute(args: argparse.Namespace) -> list[Any]:
    from bot.app import BotApp
    from bot.cli import config_from_args
    from bot.senders.console import RecordingSender
    from bot.tiers.ladder import SessionEffects
    from handlers.tiers import LADDER

    cfg = config_from_args(args)
    # No workers: tier changes are queued in the outbox and sent by the running bot.
    app = BotApp(cfg, sender=RecordingSender(), run_workers=False)
    await app.start()
    try:
        ladder = app.get(LADDER)
        async with app.db.session() as s:
            fx = SessionEffects(app, s, "tiers-recompute")
            diffs = await ladder.recompute(s, fx, app.clock.now(), apply=not args.dry_run)
            if args.dry_run:
                await s.rollback()
        return diffs
    finally:
        await app.stop()


def cmd_recompute(args: argparse.Namespace) -> int:
    from bot.cli import emit_json

    diffs = asyncio.run(_recompute(args))
    if args.json:
        for d in diffs:
            emit_json({"member": d.member_id, "fields": {k: list(v) for k, v in d.fields.items()}})
        emit_json({"summary": {"differences": len(diffs), "applied": not args.dry_run}})
    else:
        for d in diffs:
            print(f"{d.member_id}: " + ", ".join(f"{k} {a} → {b}" for k, (a, b) in d.fields.items()))
        verb = "would change" if args.dry_run else "corrected"
        print(f"{len(diffs)} member(s) {verb}" if diffs else "every member matches the ledger")
    return 0


def register(sub: Any) -> None:
    from bot.cli import add_config_arg

    p = sub.add_parser("tiers", help="member tiers: validate the rules, recompute from the ledger",
                       description="The member ladder (tiers.yaml) and its points ledger.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="tiers_command", metavar="SUBCOMMAND", required=True)
    c = tsub.add_parser("check", help="validate a tiers.yaml; exit 1 with file:line: problem lines",
                        description="Validate a rules file. Exit 0 when valid, 1 with one line per problem.")
    c.add_argument("path", nargs="?", help="the rules file (default: tiers.rules of the config)")
    add_config_arg(c)
    c.add_argument("--json", action="store_true", help="print JSON objects")
    c.set_defaults(func=cmd_check)
    r = tsub.add_parser("recompute", help="rebuild every member's totals and tier from the ledger",
                        description="Rebuild every member's point totals from the ledger and their tier from the "
                                    "rules, report the differences and correct them (tier changes are queued like "
                                    "any other: member told, operator told, tags marked).")
    add_config_arg(r)
    r.add_argument("--dry-run", action="store_true", help="report the differences, change nothing")
    r.add_argument("--json", action="store_true", help="one JSON object per member, then a summary object")
    r.set_defaults(func=cmd_recompute)
