"""``siyu report``: the operations report for a period, as text, JSON or CSV."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import date
from typing import Any

EPILOG = """\
examples:
  siyu report                                   the last 30 days (report.default_days) up to today
  siyu report --since 2026-11-01 --until 2026-11-30 --json
  siyu report --days 7 --group wrOgQhDgAAcwMT --csv

Days are local days in bot.timezone; --since and --until are both included. Every figure is compared
with the period of the same length just before. What each figure counts: docs/report.md.
"""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 366:
        raise argparse.ArgumentTypeError(f"a number of days from 1 to 366: {text!r}")
    return int(text)


async def _report(args: argparse.Namespace) -> dict[str, Any]:
    from bot.cliargs import config_from_args, make_app
    from bot.insights import INSIGHTS
    from bot.insights.period import MAX_DAYS, Period, local_today, period_of_days
    from bot.members import MEMBERS
    from bot.senders.console import RecordingSender

    cfg = config_from_args(args)
    tz = cfg.bot.tz
    app = make_app(args, cfg, sender=RecordingSender(), run_workers=False)
    await app.start()
    try:
        until = args.until or local_today(app.clock.now(), tz)
        period = Period(args.since, until, tz) if args.since else \
            period_of_days(until, args.days or cfg.report.default_days, tz)
        if period.since > period.until:
            raise SystemExit(f"siyu report: --since {period.since} is after --until {period.until}")
        if period.days > MAX_DAYS:
            raise SystemExit(f"siyu report: at most {MAX_DAYS} days at a time ({period.days} asked)")
        async with app.db.read() as s:
            if args.group and await app.get(MEMBERS).group(s, args.group) is None:
                raise SystemExit(f"siyu report: no group {args.group!r} is known (use its chat id)")
        return await app.get(INSIGHTS).report(period, args.group)
    finally:
        await app.stop()


def cmd_report(args: argparse.Namespace) -> int:
    from bot.cliargs import emit_json
    from bot.insights.report import flatten

    report = asyncio.run(_report(args))
    if args.json:
        emit_json(report)
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(("metric", "value", "previous"))
        w.writerows(("" if v is None else v for v in row) for row in flatten(report))
    else:
        print(text_report(report))
    return 0


def text_report(r: dict[str, Any]) -> str:
    """The report as lines of ``metric  value  (previous)``."""
    from bot.insights.report import flatten

    p = r["period"]
    head = f"report {p['since']} … {p['until']} ({p['days']} days, {p['timezone']}); previous " \
           f"{p['previous']['since']} … {p['previous']['until']}"
    if r["scope"]["group"]:
        head += f"; group {r['scope']['group']}"
    width = max((len(m) for m, _, _ in flatten(r)), default=10)
    lines = [head] + [f"  {m:<{width}}  {_fmt(v):>12}  ({_fmt(prev)})" for m, v, prev in flatten(r)]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return str(v)


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg

    p = sub.add_parser("report", help="the operations report for a period (users, conversion, behaviour, "
                                      "referral, deals, NPS) against the period before",
                       description="The figures the team steers by, for a period of local days, each compared "
                                   "with the period of the same length just before. Defined in docs/report.md.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first local day (default: --days before "
                   "--until)")
    p.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last local day, included (default: today)")
    p.add_argument("--days", type=_days, metavar="N", help="without --since: the N days up to --until "
                   "(default: report.default_days, 30)")
    p.add_argument("--group", metavar="CHAT_ID", help="only this group: its members at the end of each "
                   "period, its messages, check-ins, homework, questions and invitations")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--csv", action="store_true", help="print metric,value,previous rows")
    add_config_arg(p)
    p.set_defaults(func=cmd_report)
