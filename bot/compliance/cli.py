"""``python -m bot moderate`` (scan stdin, check lexicons) and ``python -m bot import-archive``.

Feature CLI: the whole bot only through ``bot.cliargs.make_app`` (never ``bot.app``); imports are
function-level so ``siyu --help`` loads neither the engine nor the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

MODERATE_EPILOG = """\
examples:
  echo "加 我 v x 吧" | python -m bot moderate
  python -m bot moderate --json < messages.txt
  python -m bot moderate --lexicon moderation/lexicons --json < messages.txt
  python -m bot moderate check                 validate the lexicon directory of the config
  python -m bot moderate check moderation/lexicons

Reads one message per line on stdin and prints, per line (with --json):
  {"text": …, "hits": [{"term", "category", "level", "start", "end", "matched", "stage", "normalised", "cut"}]}
start/end are offsets into the line; stage is exact | normalised | variant | pinyin | detector.
Without --lexicon the terms come from moderation.lexicon_dir plus the words added with /word
(database.url, read-only; skipped with a warning when it cannot be read).
"""

CHECK_EPILOG = """\
Exit status: 0 when every lexicon file and the variant tables are valid, 1 when a file has
problems (each printed as file:line: problem), 2 when the directory does not exist.
"""

IMPORT_EPILOG = """\
examples:
  python -m bot import-archive chatdata.jsonl
  decrypt-tool | python -m bot import-archive - --json
  python -m bot import-archive chatdata.jsonl --skip-bad

Input: one decrypted 会话内容存档 record per line, as the Finance SDK's DecryptData gives it,
plus its "seq": {"seq": 1, "msgid": "…", "action": "send", "from": "zhangsan", "tolist": ["wm…"],
"roomid": "", "msgtime": 1547087894783, "msgtype": "text", "text": {"content": "…"}}.
Every line is checked first; with any bad line nothing is imported (each is listed as
"line N: problem") unless --skip-bad is given. Records already imported (same msgid) are
skipped, so importing a file twice raises no alert twice. The highest seq is remembered
(printed as "cursor"; pull from there next time). Alerts are queued and sent by the
configured sender at the end (the console prints them); --no-send leaves them to `serve`.
Exit status: 0 imported, 1 bad lines, 2 unreadable input or config.
"""


def _db_words(cfg: Any) -> tuple[list[Any], str]:
    """The words added with /word, read-only from ``database.url`` (none, with a warning, when unreadable)."""
    url = cfg.database_url
    if url.startswith("sqlite") and ":memory:" not in url and not Path(url.split(":///", 1)[1]).exists():
        return [], ""

    async def read() -> list[Any]:
        from bot.compliance.store import Store
        from bot.storage.db import Database

        db = Database(url)
        try:
            async with db.read() as s:
                return await Store.active_words(s)
        finally:
            await db.dispose()

    try:
        return asyncio.run(read()), ""
    except Exception as exc:
        return [], f"words added with /word not loaded ({type(exc).__name__}: {str(exc)[:120]}); files only"


def cmd_moderate(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, emit_json
    from bot.textcheck import matcher_for
    from moderation.lexicon import LexiconFiles

    cfg = config_from_args(args)
    m = cfg.moderation
    directory = Path(args.lexicon) if args.lexicon else cfg.resolve(m.lexicon_dir)
    if not directory.is_dir():
        print(f"siyu: lexicon directory {directory} does not exist", file=sys.stderr)
        return 2
    files = LexiconFiles(directory)
    report = files.refresh(force=True)
    for p in report.problems:
        print(f"warning: {p} (file refused)", file=sys.stderr)
    words: list[Any] = []
    if not args.lexicon:
        words, warning = _db_words(cfg)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    matcher = matcher_for(m, files.build(words))
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        hits = matcher.scan(line)
        if args.json:
            emit_json({"text": line, "hits": [
                {"term": h.term, "category": h.category, "level": h.level, "start": h.start, "end": h.end,
                 "matched": h.matched, "stage": h.stage, "normalised": h.normalised, "cut": h.cut}
                for h in hits]})
        elif not hits:
            print(f"✓ {line}")
        else:
            print(f"✗ {line}")
            for h in hits:
                print(f"    {h.level:<6} {h.category} 「{h.term}」 ← 「{h.matched}」 [{h.start}:{h.end}] {h.stage}"
                      f"{' (cut)' if h.cut else ''}")
        sys.stdout.flush()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, report_check, report_missing_dir
    from bot.yamldoc import FileProblems
    from moderation.lexicon import LexiconFiles
    from moderation.variants import load_digits, load_meanings, load_variants

    if args.dir:
        directory = Path(args.dir)
    else:
        cfg = config_from_args(args)
        directory = cfg.resolve(cfg.moderation.lexicon_dir)
    if not directory.is_dir():
        return report_missing_dir(args.json, directory)
    files = LexiconFiles(directory)
    problems = list(files.refresh(force=True).problems)
    for load in (load_variants, load_digits, load_meanings):
        try:
            load()
        except FileProblems as exc:
            problems += exc.problems
    lexicon = files.build()
    return report_check(args.json, str(directory), problems,
                        f"{len(files.good)} file(s) valid, {lexicon.size} terms, {len(lexicon.allow)} allow terms "
                        f"in {len(lexicon.categories)} categories",
                        files=len(files.good), terms=lexicon.size, allow=len(lexicon.allow),
                        categories=sorted(lexicon.categories))


def cmd_import(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, emit_json
    from bot.compliance import archive

    cfg = config_from_args(args)
    try:
        if args.file == "-":
            lines = sys.stdin.buffer.read().splitlines()
        else:
            lines = Path(args.file).read_bytes().splitlines()
    except OSError as exc:
        print(f"siyu: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    records, problems = archive.parse_lines(lines)
    for p in problems:
        print(f"✗ {args.file}:{p.line}: {p.error}", file=sys.stderr)
    if problems and not args.skip_bad:
        msg = f"{len(problems)} bad line(s); nothing imported (fix them, or --skip-bad to import the good lines)"
        if args.json:
            emit_json({"ok": False, "imported": 0, "problems": [p.to_json() for p in problems], "error": msg})
        else:
            print(f"✗ {msg}", file=sys.stderr)
        return 1

    async def run() -> archive.ImportReport:
        from bot.cliargs import make_app
        from bot.compliance import MODERATION

        app = make_app(args, cfg, run_workers=False)
        await app.start()
        try:
            service = app.get(MODERATION)
            report = await archive.import_records(app, service, records)
            if not args.no_send:
                await app.outbox_pump.drain()
            return report
        finally:
            await app.stop()

    report = asyncio.run(run())
    report.problems = problems
    if args.json:
        emit_json({"ok": not problems, **report.to_json()})
    else:
        print(f"✓ {report.records} record(s): {report.imported} imported, {report.duplicates} already imported, "
              f"{report.skipped} skipped, {report.alerts} alert(s), {report.repeats} repeat(s) within the dedup "
              f"window, {report.recalls} recall(s); cursor seq = {report.cursor}")
    return 1 if problems else 0


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg

    p = sub.add_parser("moderate", help="scan messages for sensitive words (stdin), or check the lexicons",
                       description="Scan one message per line of stdin with the sensitive-word engine and print its "
                                   "hits, with offsets into the line; or `moderate check` to validate lexicon files.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MODERATE_EPILOG)
    add_config_arg(p)
    p.add_argument("--lexicon", metavar="DIR", help="load only this lexicon directory (no words from the database)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input line")
    p.set_defaults(func=cmd_moderate)
    msub = p.add_subparsers(dest="moderate_command", metavar="SUBCOMMAND")
    c = msub.add_parser("check", help="validate lexicon files and the variant tables",
                        description="Validate every *.yaml lexicon file (fields, levels, scopes, duplicates, one "
                                    "category per file) and the variant and digit tables.",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CHECK_EPILOG)
    add_config_arg(c)
    c.add_argument("dir", nargs="?", help="lexicon directory (default: moderation.lexicon_dir from the config)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_check)

    p = sub.add_parser("import-archive", help="import message-archive records (会话内容存档, JSONL) and raise alerts",
                       description="Import decrypted message-archive records, one JSON per line, from a file or "
                                   "stdin ('-'): staff messages to customers are checked like live messages.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=IMPORT_EPILOG)
    add_config_arg(p)
    p.add_argument("file", help="a .jsonl file, or - for stdin")
    p.add_argument("--skip-bad", action="store_true", help="import the good lines even when some lines are bad")
    p.add_argument("--no-send", action="store_true", help="queue the alerts but leave sending to the running bot")
    p.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    p.set_defaults(func=cmd_import)
