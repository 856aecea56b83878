"""``python -m bot tiers …``: recompute everyone from the ledger; validate a rules file."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.storage.keys import bounded_key
from bot.tiers.rules import AMOUNT_LIMIT_YUAN, POINTS_PER_ENTRY

EPILOG = """\
examples:
  python -m bot tiers check                     validate the rules file named in the config (tiers.rules)
  python -m bot tiers check my-tiers.yaml       validate another file
  python -m bot tiers recompute --dry-run       show members whose totals or tier differ from the ledger
  python -m bot tiers recompute --json          correct them; one JSON object per member, then a summary
  python -m bot tiers import-purchases orders.csv   record purchases from a shop export (once per order id)

import-purchases reads CSV with a header row (id,member,amount[,sku][,time][,name]) or JSON Lines
({"id": "…", "member": "wmAbc…", "amount": 268, "sku": "…", "time": "2026-11-20 10:00"}), from a
file or "-" for stdin. amount is in yuan (more than 0, at most 10,000,000); time is local
(bot.timezone) or ISO 8601 with an offset and defaults to now. Every line is checked first: one bad
line imports nothing. An order id already imported is skipped, so the same export can be imported
again safely; a purchase that would take a member's spend beyond 20,000,000 yuan is not imported.

recompute leaves ledger entries beyond the bounds (more than ±1,000,000 points, written before there
were bounds) out of every total and says how many there are: it repairs an overflowed ledger.
"""


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, report_check
    from bot.tiers.rulesfile import load_rules
    from bot.yamldoc import FileProblems

    if args.path:
        path = Path(args.path)
    else:
        cfg = config_from_args(args)
        path = cfg.resolve(cfg.tiers.rules)
    try:
        rules = load_rules(path)
    except FileProblems as exc:
        return report_check(args.json, str(path), exc.problems, "refused; the rules in service stay as they are",
                            field="file")
    ladder = " → ".join(f"{t.name}({t.id})" for t in rules.tiers)
    return report_check(args.json, str(path), [], f"{len(rules.tiers)} tiers, {len(rules.points)} point rules — "
                        f"{ladder}", field="file", version=rules.version,
                        tiers=[{"id": t.id, "name": t.name, "requires": t.requires} for t in rules.tiers])


async def _recompute(args: argparse.Namespace) -> tuple[list[Any], int]:
    from bot.cliargs import config_from_args, make_app
    from bot.effects import Effects
    from bot.senders.console import RecordingSender
    from bot.tiers import LADDER

    cfg = config_from_args(args)
    # No workers: tier changes are queued in the outbox and sent by the running bot.
    app = make_app(args, cfg, sender=RecordingSender(), run_workers=False)
    await app.start()
    try:
        ladder = app.get(LADDER)
        async with app.db.session() as s:
            fx = Effects(app, s, "tiers-recompute")
            diffs = await ladder.recompute(s, fx, app.clock.now(), apply=not args.dry_run)
            ignored = await ladder.entries_out_of_bounds(s)
            if args.dry_run:
                await s.rollback()
        return diffs, ignored
    finally:
        await app.stop()


def cmd_recompute(args: argparse.Namespace) -> int:
    from bot.cliargs import emit_json

    diffs, ignored = asyncio.run(_recompute(args))
    if args.json:
        for d in diffs:
            emit_json({"member": d.member_id, "fields": {k: list(v) for k, v in d.fields.items()}})
        summary: dict[str, Any] = {"differences": len(diffs), "applied": not args.dry_run}
        if ignored:
            summary["entries_out_of_bounds"] = ignored
        emit_json({"summary": summary})
    else:
        for d in diffs:
            print(f"{d.member_id}: " + ", ".join(f"{k} {a} → {b}" for k, (a, b) in d.fields.items()))
        verb = "would change" if args.dry_run else "corrected"
        print(f"{len(diffs)} member(s) {verb}" if diffs else "every member matches the ledger")
        if ignored:
            print(f"{ignored} ledger entr{'y' if ignored == 1 else 'ies'} beyond the bounds "
                  f"(±{POINTS_PER_ENTRY:,} points, 0–{AMOUNT_LIMIT_YUAN:,} yuan) left out of every total")
    return 0


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    line: int
    order_id: str
    member: str
    cents: int
    sku: str
    at: datetime | None
    name: str


def parse_purchases(text: str, fmt: str, tz: Any) -> tuple[list[PurchaseRecord], list[str]]:
    """Records of a purchase export and the problems found (``line N: problem``)."""
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = {"id", "member", "amount"} - set(reader.fieldnames or [])
        if missing:
            need = ", ".join(sorted(missing))
            return [], [f"line 1: the header needs the columns id, member, amount (missing: {need})"]
        rows = [(reader.line_num, dict(r)) for r in reader]
    else:
        rows, problems = _jsonl_rows(text)
    records: list[PurchaseRecord] = []
    seen: dict[str, int] = {}
    for n, r in rows:
        order_id = str(r.get("id") or "").strip()
        if order_id in seen:
            problems.append(f"line {n}: order id {order_id} already appears on line {seen[order_id]}")
            continue
        if order_id:
            seen[order_id] = n
        record = _purchase_record(n, order_id, r, tz)
        if isinstance(record, str):
            problems.append(f"line {n}: {record}")
        else:
            records.append(record)
    return records, problems


def _jsonl_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: a JSON object is required")
            continue
        rows.append((n, obj))
    return rows, problems


def _purchase_record(n: int, order_id: str, r: dict[str, Any], tz: Any) -> PurchaseRecord | str:
    """One line of an export as a record, or what is wrong with it."""
    member = str(r.get("member") or "").strip()
    if not order_id:
        return "id (the order id) is required"
    if not member:
        return "member (the member's WeCom id) is required"
    raw = str(r.get("amount", "")).strip()
    try:
        amount = float(raw) if len(raw) <= 32 else math.nan
    except ValueError:
        return f"amount must be a number of yuan, got {raw[:40]!r}"
    if not (0 < amount <= AMOUNT_LIMIT_YUAN):  # NaN and inf fail this too
        return f"amount must be more than 0 and at most {AMOUNT_LIMIT_YUAN:,} yuan, got {raw[:40]!r}"
    at: datetime | None = None
    when = str(r.get("time") or "").strip()
    if when:
        try:
            at = datetime.fromisoformat(when)
        except ValueError:
            return f"time must look like 2026-11-20 10:00 or ISO 8601, got {when!r}"
        if at.tzinfo is None:
            at = at.replace(tzinfo=tz)
    return PurchaseRecord(n, bounded_key(order_id), member[:128], round(amount * 100),
                          str(r.get("sku") or "").strip()[:64], at, str(r.get("name") or "").strip())


async def _import_purchases(args: argparse.Namespace, records: list[PurchaseRecord]) -> tuple[int, int, int]:
    from bot.cliargs import config_from_args, make_app
    from bot.effects import Effects
    from bot.events import Actor
    from bot.senders.console import RecordingSender
    from bot.tiers import LADDER

    cfg = config_from_args(args)
    app = make_app(args, cfg, sender=RecordingSender(), run_workers=False)
    await app.start()
    imported = skipped = changes = 0
    try:
        ladder = app.get(LADDER)
        for start in range(0, len(records), 500):
            async with app.db.session() as s:
                fx = Effects(app, s, "tiers-import")
                for rec in records[start:start + 500]:
                    at = rec.at or app.clock.now()
                    await ladder.touch(s, Actor(id=rec.member, name=rec.name), at)
                    award = await ladder.purchase(s, fx, rec.member, rec.cents, sku=rec.sku,
                                                  recorded_by=args.recorded_by, source=f"import:{rec.order_id}", at=at)
                    if award is None:
                        skipped += 1
                    elif award.limited:
                        print(f"✗ line {rec.line}: {rec.member}'s totals would leave their bounds; not imported",
                              file=sys.stderr)
                    else:
                        imported += 1
                        changes += int(award.change is not None)
        return imported, skipped, changes
    finally:
        await app.stop()


def cmd_import_purchases(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, emit_json

    if args.file == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        try:
            text, name = Path(args.file).read_text(encoding="utf-8-sig"), args.file
        except (OSError, UnicodeDecodeError) as exc:
            print(f"siyu: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
    fmt = args.format or ("csv" if name.lower().endswith(".csv") else "jsonl")
    records, problems = parse_purchases(text, fmt, config_from_args(args).bot.tz)
    if problems:
        for p in problems:
            print(f"✗ {name}: {p}", file=sys.stderr)
        print(f"nothing imported: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    imported, skipped, changes = asyncio.run(_import_purchases(args, records))
    if args.json:
        emit_json({"imported": imported, "already_imported": skipped, "tier_changes": changes})
    else:
        print(f"{imported} purchase(s) imported, {skipped} already imported, {changes} tier change(s) queued")
    return 0


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg
    from bot.tiers.facts import register_file_reader

    register_file_reader()

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
    i = tsub.add_parser("import-purchases", help="record purchases from a CSV / JSON Lines export, once per order",
                        description="Record purchases (购买记录) from a shop's export: each counts toward the "
                                    "member's purchases, spend and purchase points and may move them up a tier. "
                                    "Every line is checked first; one bad line imports nothing. Order ids already "
                                    "imported are skipped.", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("file", help="the export: .csv (header id,member,amount[,sku][,time][,name]) or .jsonl; - = stdin")
    i.add_argument("--format", choices=("csv", "jsonl"), help="file format (default: by the file name; stdin: jsonl)")
    i.add_argument("--recorded-by", default="import", help="who the purchases are recorded as (default: import)")
    add_config_arg(i)
    i.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    i.set_defaults(func=cmd_import_purchases)
