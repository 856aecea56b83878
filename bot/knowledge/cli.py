"""``python -m bot kb ask`` and ``python -m bot kb check``: the knowledge base from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ASK_EPILOG = """\
examples:
  python -m bot kb ask "退款多久到账"
  python -m bot kb ask "退款多久到账" --json
  python -m bot kb ask "群规是什么" --chat group --group 禾屿茶友会
  python -m bot kb ask "转人工" --at "2026-11-23 22:30"      (outside active_hours)
  python -m bot kb ask --kb knowledge_base --json < questions.txt   (one question per line)

Without --kb the entries come from knowledge.dir in the config plus the ones operators
added in chat (database.url); with --kb only that directory is loaded.
JSON fields: question, entry (id or null), score (0-1), mode (exact | keyword | contains |
regex | bm25 | suggest | none | chatter), answer (rendered text or null), suggestions (entry,
question, score) and problems (file:line: problem of files that were refused). Chatter
(好的, 谢谢, 👍 …: mode chatter) has entry null, score 0 and no suggestions.
"""

CHECK_EPILOG = """\
examples:
  python -m bot kb check                    the directory named by knowledge.dir
  python -m bot kb check knowledge_base --json

Each answer, rendered for a sample member, is scanned with the compliance lexicon
(moderation.lexicon_dir): a reject term is a problem (file:line: 条目 id：answer 第 1 行：
文案含违规词“包治百病”（广告法/夸大宣传，reject）), a review term a warning (⚠, exit status
unchanged); --no-lexicon skips it.
Exit status: 0 when every file is valid, 1 when a file has problems (each printed as
file:line: problem), 2 when the directory does not exist.

Warnings (⚠ file:line: …, JSON "warnings") name a figure or tier name written in an
answer that the ladder (tiers.yaml, or --tiers) contradicts: a quoted tier name that
is not a tier (您现在是「茶客」), "+N 积分" beside an action whose points differ, points
promised for a streak. They do not change the exit status; write {{ ladder.… }} instead.
"""


def _templates(tz: Any, ladder: Any = None) -> Any:
    from bot.knowledge.answers import TEMPLATES
    from bot.templates import Templates

    templates = Templates(tz, [TEMPLATES])
    if ladder is not None:
        templates.provide_ladder(lambda: ladder)
    return templates


def _load_db_entries(cfg: Any, kb: Any) -> str:
    """Add the database entries to ``kb``; a warning when the database cannot be read (files still serve)."""
    from bot.knowledge import store
    from bot.storage.db import Database

    url = cfg.database_url
    if url.startswith("sqlite") and ":memory:" not in url:
        path = Path(url.split(":///", 1)[1])
        if not path.exists():
            return ""

    async def read() -> dict[str, Any]:
        db = Database(url)
        try:
            async with db.read() as s:
                return await store.load_entries(s, kb.db_check)
        finally:
            await db.dispose()

    try:
        kb.load_db_rows(asyncio.run(read()))
    except Exception as exc:
        return f"database entries not loaded ({type(exc).__name__}: {str(exc)[:120]}); answering from files only"
    return ""


def _show(out: dict[str, Any], *, as_json: bool) -> None:
    """One answer of ``kb ask``: a JSON object, or the readable lines."""
    from bot.cliargs import emit_json

    if as_json:
        emit_json(out)
        return
    print(f"question: {out['question']}")
    print(f"entry:    {out['entry'] or '(none)'}")
    print(f"score:    {out['score']:.3f}")
    print(f"mode:     {out['mode']}")
    if out["answer"] is not None:
        print("answer:")
        for line in out["answer"].splitlines():
            print(f"  {line}")
    if out["suggestions"]:
        print("suggestions:")
        for i, s in enumerate(out["suggestions"], 1):
            print(f"  {i}. {s['entry']} — {s['question']} ({s['score']:.3f})")


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args
    from bot.knowledge.answers import render_answer
    from bot.knowledge.base import KnowledgeBase
    from bot.knowledge.entry import Where
    from bot.knowledge.matcher import MatchSettings
    from bot.ladderfacts import read_ladder_file
    from bot.members import MemberProfile

    cfg = config_from_args(args)
    tz = cfg.bot.tz
    templates = _templates(tz, read_ladder_file(cfg.resolve(cfg.tiers.rules)))  # {{ ladder.… }} as the bot has it
    k = cfg.knowledge
    settings = MatchSettings.from_config(k)
    directory = Path(args.kb) if args.kb else cfg.resolve(k.dir)
    if not directory.is_dir():
        print(f"siyu: knowledge directory {directory} does not exist", file=sys.stderr)
        return 2
    kb = KnowledgeBase(directory, settings=settings, check=templates.check, use_db=not args.kb)
    report = kb.load_now()
    for p in report.problems:
        print(f"warning: {p} (file refused)", file=sys.stderr)
    if not args.kb:
        warning = _load_db_entries(cfg, kb)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    now = datetime.now(tz)
    if args.at:
        try:
            at = datetime.fromisoformat(args.at.replace("T", " "))
        except ValueError:
            print(f"siyu: --at must look like 2026-11-23 22:30, got {args.at!r}", file=sys.stderr)
            return 2
        now = at if at.tzinfo else at.replace(tzinfo=tz)
    member = MemberProfile(id="cli", name=args.name, tier=args.tier, tier_name=args.tier).for_template()
    is_group = args.chat == "group"
    group = {"id": args.group or "", "name": args.group or "", "type": args.chat or "single"}
    where = Where(chat=args.chat or "", chat_id=args.group or "", chat_name=args.group or "", tier=args.tier,
                  tier_name=args.tier)
    problems = [str(p) for p in report.problems]

    def answer(question: str) -> dict[str, Any]:
        result = kb.matcher.match(question, where if (args.chat or args.tier or args.group) else None)
        entry = result.entry
        return {
            "question": question,
            "entry": entry.id if entry else None,
            "score": round(result.score, 3),
            "mode": result.mode,
            "answer": render_answer(templates, tz, entry, member, group if is_group else
                                    {"id": "", "name": "", "type": "single"}, now) if entry else None,
            "suggestions": [{"entry": c.entry.id, "question": c.question, "score": round(c.score, 3)}
                            for c in result.suggestions],
            **({"problems": problems} if problems else {}),
        }

    def show(out: dict[str, Any]) -> None:
        _show(out, as_json=args.json)

    if args.question:
        show(answer(" ".join(args.question)))
        return 0
    first = True
    for line in sys.stdin:
        question = line.strip()
        if not question:
            continue
        if not args.json and not first:
            print()
        first = False
        show(answer(question))
        sys.stdout.flush()
    return 0


def _lexicon(args: argparse.Namespace) -> Any:
    """The compliance lexicon the answers are checked with (its files; none with --no-lexicon, or when the
    config cannot be read and a directory was named)."""
    from bot.config import ConfigError, default_config_path, load_config
    from bot.textcheck import files_check

    if args.no_lexicon:
        return None
    try:
        return files_check(load_config(default_config_path(getattr(args, "config", None))))
    except ConfigError:
        return None


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cliargs import config_from_args, ladder_for_check, ladder_warnings, report_check, report_missing_dir
    from bot.knowledge.answers import answer_check, lexicon_warnings
    from bot.knowledge.files import KnowledgeFiles

    if args.dir:
        directory = Path(args.dir)
        tz = None
    else:
        cfg = config_from_args(args)
        directory = cfg.resolve(cfg.knowledge.dir)
        tz = cfg.bot.tz
    if not directory.is_dir():
        return report_missing_dir(args.json, directory, files=0, entries=0)
    from zoneinfo import ZoneInfo

    ladder = ladder_for_check(args, directory)
    templates = _templates(tz or ZoneInfo("Asia/Shanghai"), ladder)
    lexicon = _lexicon(args)
    files = KnowledgeFiles(directory, check=answer_check(templates, lambda: lexicon))
    report = files.refresh(force=True)
    warnings = [{"file": str(e.source.path), "line": e.source.line, "warning": f"条目 {e.id}：{w}"}
                for e in files.entries for w in lexicon_warnings(templates, lexicon, e)]
    warnings += ladder_warnings(ladder, files.dir.paths(), directory)  # the entry files the base loads
    return report_check(args.json, str(directory), report.problems,
                        f"{files.file_count} file(s) valid, {len(files.entries)} entries, "
                        f"{len(files.synonyms.groups)} synonym groups",
                        warnings=warnings, files=files.file_count, entries=len(files.entries),
                        synonyms=len(files.synonyms.groups))


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg, add_tiers_arg

    kb = sub.add_parser("kb", help="knowledge base: answer a question, check the entry files",
                        description="The knowledge base from the command line: see how a question would be "
                                    "answered, or validate the entry files.")
    kb_sub = kb.add_subparsers(dest="kb_command", metavar="SUBCOMMAND")
    kb.set_defaults(func=lambda a: (kb.print_help(), 2)[1])

    p = kb_sub.add_parser(
        "ask", help="show which entry answers a question (or each line of stdin)",
        description="Print the chosen entry id (or none), its score, the matching mode and the rendered answer, "
                    "plus \"did you mean\" suggestions. With no question, reads one question per line from stdin "
                    "and answers each (the knowledge base is loaded once).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ASK_EPILOG)
    add_config_arg(p)
    p.add_argument("question", nargs="*", help="the question (omit to read questions from stdin)")
    p.add_argument("--kb", metavar="DIR", help="load only this directory of entry files (no database entries)")
    p.add_argument("--chat", choices=["group", "single"], help="ask as if in a group or a 1:1 chat (entry scopes)")
    p.add_argument("--group", metavar="NAME", default="", help="the group's name or id (scopes, {{ group.name }})")
    p.add_argument("--tier", metavar="TIER", default="", help="the member's tier id (entries scoped by tier)")
    p.add_argument("--name", metavar="NAME", default="", help="the member's name in the answer (default 朋友)")
    p.add_argument("--at", metavar="TIME", help="pretend it is this local time (checks active_hours)")
    p.add_argument("--json", action="store_true", help="print one JSON object per question")
    p.set_defaults(func=cmd_ask)

    p = kb_sub.add_parser(
        "check", help="validate the entry files, synonyms and templates",
        description="Validate every *.yaml entry file and synonyms.txt of a knowledge directory: YAML syntax, "
                    "fields, ids unique across files, regular expressions, active hours and answer templates.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CHECK_EPILOG)
    add_config_arg(p)
    p.add_argument("dir", nargs="?", help="knowledge directory (default: knowledge.dir from the config)")
    add_tiers_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-lexicon", action="store_true",
                   help="do not check the answers against the compliance lexicon (moderation.lexicon_dir)")
    p.set_defaults(func=cmd_check)
