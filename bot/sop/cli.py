"""``python -m bot sop preview|check`` and ``python -m bot moments week``: scripts and the calendar offline.

Nothing here needs the bot running: scripts and the calendar are read from the
files; ``moments week`` also lays the chat changes (``/moments skip|set|approve``)
and what was already published over the plan when the database can be read.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# The commands import what they use inside themselves: `python -m bot --help` loads none of the feature.

PREVIEW_EPILOG = """\
examples:
  python -m bot sop preview newcomer-7d --start "2026-11-23 10:00"
  python -m bot sop preview sop_templates/newcomer-7d.yaml --start "2026-11-23 10:00" --json
  python -m bot sop preview checkin-21d --group 禾屿打卡营 --days 3

Every step's due time is in bot.timezone, moved out of quiet hours. Texts render
with a sample member 小明 (no points, no tags; --member sets the name), so a step with
a when: condition shows whether that member would get it. With --json one object
per occurrence: {"step": 2, "due": "2026-11-24T09:30:00+08:00", "via": "reply",
"text": "…"} plus "occurrence", "stage", "when", "would_send", "moved_from" (the
time before quiet hours) where they apply.
"""

CHECK_EPILOG = """\
examples:
  python -m bot sop check                  the directory named by sop.dir
  python -m bot sop check sop_templates --json

Checks every script (*.yaml except the Moments calendar) and the calendar file in
the directory. Each text, rendered with sample values, is scanned with the compliance
lexicon (moderation.lexicon_dir): a reject term in a step refuses its script (a
problem); in the calendar it holds the slot for /moments approve (a ⚠ warning, as is
every review term); --no-lexicon skips it. Exit status: 0 when every file is valid,
1 when a file has problems (each printed as file:line: problem), 2 when the directory
does not exist.

Warnings (⚠ file:line: …, JSON "warnings") also name a figure or tier name written in a
step, template or Moments text that the ladder (tiers.yaml, or --tiers) contradicts: a
quoted tier name that is not a tier (升到「茶师」), "+N 积分" beside an action whose points
differ, points promised for a streak. They do not change the exit status; write
{{ ladder.… }} instead.
"""

WEEK_EPILOG = """\
examples:
  python -m bot moments week --from 2026-11-23
  python -m bot moments week --from 2026-12-10 --days 3 --json
  python -m bot moments week --calendar sop_templates/moments.yaml

With --json one object per slot: {"date", "weekday", "time", "slot", "theme",
"text", "via", "staff", "tags", "tiers", "source" (weekly | override | campaign |
chat), "status"} — status is planned, skipped, awaiting_approval or, for dates
already handled, what happened (queued, reminded, done, missed …).
"""


def _config_ladder(cfg: Any) -> Any:
    from bot.ladderfacts import read_ladder_file

    return read_ladder_file(cfg.resolve(cfg.tiers.rules))


def _templates(tz: ZoneInfo, ladder: Any = None) -> Any:
    from bot.templates import Templates

    templates = Templates(tz)
    if ladder is not None:  # {{ ladder.… }} as the bot has it (bot.ladderfacts)
        templates.provide_ladder(lambda: ladder)
    return templates


def _quietly(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command with the bot's own log quiet: its problems are printed by the command instead."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        log = logging.getLogger("siyu")
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            return fn(args)
        finally:
            log.setLevel(level)

    return run


def _defaults(cfg: Any) -> Any:
    from bot.sop.script import Defaults

    return Defaults.of(cfg.sop)


def _read_db(cfg: Any, work: Any) -> tuple[Any, str]:
    """Run ``work(db, session)`` on the configured database if it exists; (result or None, warning)."""
    from bot.storage.db import Database

    url = cfg.database_url
    if url.startswith("sqlite") and ":memory:" not in url and not Path(url.split(":///", 1)[1]).exists():
        return None, ""

    async def read() -> Any:
        db = Database(url)
        try:
            async with db.read() as s:
                return await work(db, s)
        finally:
            await db.dispose()

    try:
        return asyncio.run(read()), ""
    except Exception as exc:
        return None, f"database not read ({type(exc).__name__}: {str(exc)[:120]}); showing the file only"


def cmd_preview(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, emit_json
    from bot.commands import CommandError, parse_when
    from bot.sop.files import ScriptFiles
    from bot.sop.preview import timeline
    from bot.sop.script import VIA_NAMES, parse_script
    from bot.yamldoc import FileProblems, read_text

    cfg = config_from_args(args)
    tz = cfg.bot.tz
    templates = _templates(tz, _config_ladder(cfg))
    target = Path(args.script)
    if target.suffix in (".yaml", ".yml") or target.is_file():
        try:
            script = parse_script(read_text(target), str(target), templates=templates,
                                  templates_dir=target.parent / "templates", defaults=_defaults(cfg))
        except FileProblems as exc:
            for p in exc.problems:
                print(f"✗ {p}", file=sys.stderr)
            return 1
    else:
        directory = cfg.resolve(cfg.sop.dir)
        files = ScriptFiles(directory, templates=templates, defaults=_defaults(cfg),
                            exclude=(cfg.resolve(cfg.moments.calendar).name,))
        files.refresh(force=True)
        found = files.scripts.get(args.script)
        if found is None:
            bad = [str(p) for p in files.problems]
            print(f"siyu: no script {args.script!r} in {directory} (scripts: {', '.join(sorted(files.scripts)) or '-'})"
                  + ("\n" + "\n".join(bad) if bad else ""), file=sys.stderr)
            return 1
        script = found
    try:
        anchor = parse_when(args.start, tz) if args.start else datetime.now(tz)
    except CommandError:
        print(f"siyu: --start must look like 2026-11-23 10:00, got {args.start!r}", file=sys.stderr)
        return 2
    items = timeline(script, anchor, templates, tz, member={"name": args.member} if args.member else None,
                     group={"id": args.group, "name": args.group} if args.group else None,
                     max_occurrences=args.max_occurrences, horizon_days=args.days)
    if args.json:
        for item in items:
            emit_json(item.to_json())
        return 0
    print(f"{script.id} — {script.name} (version {script.version}), from {anchor.astimezone(tz):%Y-%m-%d %H:%M %Z}")
    for item in items:
        head = f"{item.due:%Y-%m-%d %a %H:%M}  step {item.number}"
        if item.of != 1:
            head += f" ({item.occurrence}/{item.of or '∞'})"
        head += f"  {item.via} ({VIA_NAMES.get(item.via, item.via)})"
        if item.stage:
            head += f"  [{item.stage}]"
        if item.moved:
            head += f"  moved from {item.nominal:%H:%M} (quiet hours)"
        print(head)
        if item.when:
            print(f"  when {item.when}: {'sent' if item.would_send else 'not sent'} to the sample member")
        for line in (item.error or item.text).splitlines() or [""]:
            print(f"  {line}")
    return 0


def _step_warnings(files: Any, templates: Any, tz: ZoneInfo, lexicon: Any) -> list[dict[str, Any]]:
    """The review terms of the compliance lexicon in each step's text, rendered as its first occurrence
    would be for a sample member (a reject term has refused the script already)."""
    from bot.sop.preview import timeline
    from bot.textcheck import warnings_of

    if lexicon is None:
        return []
    anchor = datetime.now(tz)
    return [{"file": script.file, "line": 0, "warning": f"步骤 {item.key}：{w}"} for script in files.scripts.values()
            for item in timeline(script, anchor, templates, tz, max_occurrences=1)
            for w in warnings_of(lexicon.findings(item.text))]


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, ladder_for_check, ladder_warnings, report_check, report_missing_dir
    from bot.sop.files import ScriptFiles
    from bot.sop.moments import calendar_findings_at, load_calendar
    from bot.textcheck import files_check
    from bot.yamldoc import FileProblems

    cfg = config_from_args(args)
    directory = Path(args.dir) if args.dir else cfg.resolve(cfg.sop.dir)
    calendar = directory / cfg.resolve(cfg.moments.calendar).name if args.dir else cfg.resolve(cfg.moments.calendar)
    if not directory.is_dir():
        return report_missing_dir(args.json, directory, scripts=0)
    ladder = ladder_for_check(args, directory)
    templates = _templates(cfg.bot.tz, ladder)
    lexicon = None if args.no_lexicon else files_check(cfg)
    files = ScriptFiles(directory, templates=templates, defaults=_defaults(cfg), exclude=(calendar.name,),
                        lexicon=lexicon)
    report = files.refresh(force=True)
    problems = list(report.problems)
    warnings = _step_warnings(files, templates, cfg.bot.tz, lexicon)
    has_calendar = calendar.is_file()
    if has_calendar:
        try:
            loaded = load_calendar(calendar, files.name(calendar), templates=templates,
                                   templates_dir=directory / "templates")
            warnings += [{"file": loaded.file, "line": line, "warning": w}
                         for line, w in calendar_findings_at(loaded, templates, lexicon)]
        except FileProblems as exc:
            problems.extend(exc.problems)
    cal = f", calendar {files.name(calendar)}" if has_calendar else ""
    texts = [*directory.glob("*.yaml"), *(directory / "templates").rglob("*.j2")]  # scripts, calendar, templates
    return report_check(args.json, str(directory), problems, f"{len(files.scripts)} script(s) valid{cal}",
                        warnings=warnings + ladder_warnings(ladder, texts, directory), scripts=len(files.scripts),
                        calendar=files.name(calendar) if has_calendar else None)


def cmd_week(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args
    from bot.sop.moments import ChatChanges, load_calendar
    from bot.sop.timing import WEEKDAY_CN
    from bot.yamldoc import FileProblems

    cfg = config_from_args(args)
    tz = cfg.bot.tz
    path = Path(args.calendar) if args.calendar else cfg.resolve(cfg.moments.calendar)
    templates = _templates(tz, _config_ladder(cfg))
    try:
        calendar = load_calendar(path, str(path), templates=templates, templates_dir=path.parent / "templates")
    except FileProblems as exc:
        for p in exc.problems:
            print(f"✗ {p}", file=sys.stderr)
        return 1
    try:
        start = date.fromisoformat(args.start) if args.start else datetime.now(tz).date()
    except ValueError:
        print(f"siyu: --from must be a date like 2026-11-23, got {args.start!r}", file=sys.stderr)
        return 2
    days = [start + timedelta(days=i) for i in range(args.days)]
    changes, posts = ChatChanges(), {}
    if not args.calendar:
        from bot.sop.store import MomentsStore

        async def work(db: Any, s: Any) -> Any:
            store = MomentsStore(db)
            return ChatChanges.from_rows(await store.all_changes(s)), await store.posts(s, days)

        found, warning = _read_db(cfg, work)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        if found is not None:
            changes, posts = found
    for day in days:
        plan = calendar.plan(day, tz, changes, force_approval=cfg.moments.approval)
        if not args.json:
            extra = f"  {plan.note}" if plan.note else ""
            if plan.approval_required:
                extra += f"  approved by {plan.approved_by}" if plan.approved_by else "  awaiting approval"
            print(f"{day} {WEEKDAY_CN[day.weekday()]}{extra}")
            if plan.skipped_day:
                print("  (nothing: the calendar skips this day)")
        for ps in plan.slots:
            _week_slot(args, cfg, calendar, templates, plan, ps, posts.get((day.isoformat(), ps.slot.id)))
    return 0


def _week_slot(args: argparse.Namespace, cfg: Any, calendar: Any, templates: Any, plan: Any, ps: Any,
               post: Any) -> None:
    """One slot of ``moments week``: a JSON object, or two lines and its text."""
    from bot.cliargs import emit_json
    from bot.sop.moments import ORIGIN_NAMES, slot_text
    from bot.sop.timing import WEEKDAY_CN

    slot, day = ps.slot, ps.day
    status = post.state if post is not None else (
        "skipped" if ps.skipped_by else "awaiting_approval" if plan.approval_required and not plan.approved_by
        else "planned")
    try:
        text = slot_text(templates, slot, day)
    except Exception as exc:
        text = f"(render failed: {exc})"
    tags = list(slot.tags or calendar.tags)
    tiers = list(slot.tiers or calendar.tiers)
    staff = list(slot.staff or calendar.staff or cfg.moments.staff)
    via = slot.via or cfg.moments.delivery
    if args.json:
        rec = {"date": day.isoformat(), "weekday": WEEKDAY_CN[day.weekday()], "time": slot.hhmm,
               "slot": slot.id, "theme": slot.theme, "text": text, "via": via, "staff": staff, "tags": tags,
               "tiers": tiers, "source": slot.origin, "status": status}
        if slot.attachments:
            rec["attachments"] = [dict(a) for a in slot.attachments]
        if slot.campaign:
            rec["campaign"] = slot.campaign
        emit_json(rec)
        return
    audience = "、".join(tags + tiers) or "全部客户"
    print(f"  {slot.hhmm} {slot.theme or slot.id}  [{ORIGIN_NAMES.get(slot.origin, slot.origin)}; {via}; "
          f"{audience}; {status}]")
    for line in text.splitlines():
        print(f"    {line}")


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg, add_tiers_arg

    sop = sub.add_parser("sop", help="SOP scripts: preview a timeline, check the script files",
                         description="SOP scripts from the command line: see when each step of a script would go out "
                                     "and what it would say, or validate the script files.")
    sop_sub = sop.add_subparsers(dest="sop_command", metavar="SUBCOMMAND")
    sop.set_defaults(func=lambda a: (sop.print_help(), 2)[1])

    p = sop_sub.add_parser("preview", help="the timeline of one script for a start time",
                           description="Print every step of a script with its real due time (bot.timezone, quiet "
                                       "hours applied), delivery and rendered text, for a run starting at --start.",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=PREVIEW_EPILOG)
    add_config_arg(p)
    p.add_argument("script", help="a script id from sop.dir, or the path of a script file")
    p.add_argument("--start", metavar="TIME", help="when the run starts, local time \"2026-11-23 10:00\" (default now)")
    p.add_argument("--group", metavar="NAME", default="", help="the group's name in the texts ({{ group.name }})")
    p.add_argument("--member", metavar="NAME", default="", help="the member's name in the texts (default 小明)")
    p.add_argument("--days", type=int, default=60, metavar="N",
                   help="list repeating steps up to N days after the start (default 60)")
    p.add_argument("--max-occurrences", type=int, default=30, metavar="N",
                   help="list at most N occurrences of a repeating step (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON object per occurrence")
    p.set_defaults(func=_quietly(cmd_preview))

    p = sop_sub.add_parser("check", help="validate the script files, their templates and the Moments calendar",
                           description="Validate every script file: YAML syntax, fields, triggers, timing, conditions, "
                                       "deliveries and templates; and the Moments calendar in the same directory.",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CHECK_EPILOG)
    add_config_arg(p)
    p.add_argument("dir", nargs="?", help="script directory (default: sop.dir from the config)")
    add_tiers_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-lexicon", action="store_true",
                   help="do not check the texts against the compliance lexicon (moderation.lexicon_dir)")
    p.set_defaults(func=_quietly(cmd_check))

    moments = sub.add_parser("moments", help="the Moments (朋友圈) calendar: the plan for the coming days",
                             description="The Moments calendar from the command line.")
    m_sub = moments.add_subparsers(dest="moments_command", metavar="SUBCOMMAND")
    moments.set_defaults(func=lambda a: (moments.print_help(), 2)[1])
    p = m_sub.add_parser("week", help="every slot of the next days: time, theme, text, audience, status",
                         description="Print the Moments plan for --days days from --from: the weekly slots with the "
                                     "holiday overrides, campaigns and the changes made in chat.",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=WEEK_EPILOG)
    add_config_arg(p)
    p.add_argument("--from", dest="start", metavar="DATE", help="first date, YYYY-MM-DD (default today)")
    p.add_argument("--days", type=int, default=7, metavar="N", help="how many days (default 7)")
    p.add_argument("--calendar", metavar="FILE", help="read this calendar file only (no database)")
    p.add_argument("--json", action="store_true", help="print one JSON object per slot")
    p.set_defaults(func=_quietly(cmd_week))
