"""``python -m bot …`` / ``siyu …``: the command line.

Each feature adds its subcommands through a ``register(subparsers)`` function
listed in CLI_MODULES; the arguments and output they share are in bot.cliargs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from bot import __version__
from bot.cliargs import add_config_arg, config_from_args, emit_json
from bot.config import Config, ConfigError, default_config_path, describe, load_config
from bot.golive import refuse_example, warnings

CLI_MODULES: list[str] = [
    "bot.tiers.cli",
    "bot.simulate",
    "bot.knowledge.cli",
    "bot.compliance.cli",
    "bot.sop.cli",
    "bot.access.cli",
    "bot.insights.cli",
]

EPILOG = """\
examples:
  python -m bot serve                        start on config.toml (or config.example.toml)
  python -m bot check-config config.toml     validate a config file, name every bad key
  python -m bot simulate --group 新人群       chat with the bot in the terminal

Every config key can be overridden by an environment variable SIYU_<SECTION>__<KEY>,
e.g. SIYU_DATABASE__URL=postgresql://user:pass@host/db or SIYU_BOT__ADMINS='["admin01"]'.
"""


def freeze_startup_objects() -> None:
    """Move what start-up loaded (jieba's and pypinyin's tables, lexicons, the knowledge base) out of
    the cyclic garbage collector's walks: they live as long as the process, and walking them on every
    full collection slows every scan."""
    gc.collect()
    gc.freeze()


async def _freeze_on_startup(_app: object) -> None:
    freeze_startup_objects()


def serving_app(bot: Any) -> Any:
    """The aiohttp application ``serve`` runs: the bot's routes and lifecycle, then the freeze."""
    from bot.web import create_web_app

    web_app = create_web_app(bot)
    web_app.on_startup.append(_freeze_on_startup)  # runs after the bot's start (a cleanup context runs first)
    return web_app


def make_app(config: Config, **kw: Any) -> Any:
    """The whole bot for a subcommand that needs one (``args.make_app``: feature CLIs never import the app)."""
    from bot.app import BotApp  # here, not at the top: `siyu --help` and `check-config` need no bot

    return BotApp(config, **kw)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import BotApp
    from bot.logs import setup_logging
    from bot.web import AccessLogger, server_options

    cfg = config_from_args(args)
    if args.host:
        cfg.server.host = args.host
    if args.port is not None:
        cfg.server.port = args.port
    setup_logging(cfg.log.level, cfg.log.format)
    if (why := refuse_example(cfg)) is not None:
        logging.getLogger("siyu.cli").critical("%s", why)
        print(f"siyu: {why}", file=sys.stderr)
        return 2
    logging.getLogger("siyu.cli").info("serving on http://%s:%d (config: %s)", cfg.server.host, cfg.server.port,
                                       cfg.source)
    try:
        asyncio.run(_migrate_first(cfg))  # a database that cannot be used stops us here, in one line
        bot = BotApp(cfg)
        web.run_app(serving_app(bot), host=cfg.server.host, port=cfg.server.port, print=None,
                    access_log_class=AccessLogger, access_log=logging.getLogger("siyu.access"),
                    shutdown_timeout=15, **server_options(bot))
    except Exception as exc:
        if not _database_error(exc, cfg.database.url):
            raise
        where = describe_database(cfg.database.url)
        logging.getLogger("siyu.cli").critical("cannot use the database %s: %s", where, _first_line(exc))
        print(f"siyu: cannot use the database {where}: {_first_line(exc)}", file=sys.stderr)
        return 2
    return 0


async def _migrate_first(cfg: Config) -> None:
    """Open the database, bring its schema up to date and close it again — before the server starts, so a
    database that cannot be opened or written fails with its own error, not in the middle of start-up."""
    from bot.storage import migrate
    from bot.storage.db import Database

    db = Database(cfg.database_url)
    try:
        await migrate.upgrade(db)
    except Exception:
        # SQLite's driver answers a failed connect from its own thread: give it the moment it needs to hand
        # that answer to this loop, or it finds the loop closed and prints a traceback after our one line.
        await asyncio.sleep(0.5)
        raise
    finally:
        await db.dispose()


def describe_database(url: str) -> str:
    """The database a URL names, as an error may show it: the SQLite file's absolute path, or the server
    URL without its password."""
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split(":///", 1)[-1]
        return path if path == ":memory:" else str(Path(path).resolve())
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _database_error(exc: BaseException, url: str) -> bool:
    """Whether start-up failed on the database: an error of the driver, or of the SQLite file's directory."""
    import sqlite3
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    folder = str(Path(describe_database(url)).parent) if url.startswith("sqlite") else None
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SQLAlchemyError | sqlite3.Error):
            return True
        if folder and isinstance(e, OSError) and e.filename and str(Path(e.filename).resolve()).startswith(folder):
            return True
        e = e.__cause__ or e.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def cmd_check_config(args: argparse.Namespace) -> int:
    path = default_config_path(args.path or getattr(args, "config", None))
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        if args.json:
            emit_json({"ok": False, "source": exc.source, "problems": exc.problems})
        else:
            print(f"✗ {exc}", file=sys.stderr)
        return 1
    found = warnings(cfg)
    if args.json:
        emit_json({"ok": True, "source": cfg.source, "warnings": found, "config": describe(cfg)})
    else:
        print(f"✓ {cfg.source}: configuration is valid")
        for section, values in describe(cfg).items():
            print(f"[{section}]")
            for k, v in values.items():
                print(f"  {k} = {json.dumps(v, ensure_ascii=False)}")
        if found:
            print(f"\n⚠ {len(found)} go-live warning(s):")
            for w in found:
                print(f"  ⚠ {w}")
    return 3 if found and args.strict else 0


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.scaffold import scaffold

    directory = Path(args.dir)
    written, kept = scaffold(directory)
    for path in written:
        print(f"+ {path}")
    for path in kept:
        print(f"= {path} (exists, left as it is)")
    print(f"\n{directory}: 把【待填写】换成自己的内容，然后检查：\n"
          f"  siyu kb check {directory / 'knowledge_base'}\n  siyu sop check {directory / 'sop_templates'}\n"
          f"  siyu tiers check {directory / 'tiers.yaml'}\n"
          f"配置文件放在 {directory} 里（从 config.example.toml 复制为 config.toml），路径按默认值就会用到这些文件；"
          f"上线前：siyu check-config --strict")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.storage import migrate
    from bot.storage.db import Database

    cfg = config_from_args(args)

    async def run() -> set[str]:
        db = Database(cfg.database_url)
        try:
            await migrate.upgrade(db)
            return await migrate.current_heads(db)
        finally:
            await db.dispose()

    heads = asyncio.run(run())
    print(f"database at {', '.join(sorted(heads))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siyu", description="siyu (私域) — WeCom community bot: knowledge base, SOP, Moments, compliance, tiers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"siyu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the bot: HTTP callbacks, workers, scheduler",
                       description="Run the bot: WeCom/aibot/webhook callbacks, inbox workers, outbox sender and "
                                   "scheduler. Stops cleanly on SIGTERM/Ctrl-C.")
    add_config_arg(p)
    p.add_argument("--host", help="listen address (overrides server.host)")
    p.add_argument("--port", type=int, help="listen port (overrides server.port)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check-config", help="validate a config file and print it with secrets masked",
                       description="Validate a config file (and SIYU_* environment overrides). Exit 0 when valid, "
                                   "1 with one line per bad key otherwise. Valid configs also get go-live warnings "
                                   "(example secrets and ids, no reviewers or alert route, missing callback "
                                   "token/AES key, loopback host or example content with a real sender); "
                                   "--strict exits 3 when there are any.")
    p.add_argument("path", nargs="?", help="config file (default: --config, ./config.toml, ./config.example.toml)")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--strict", action="store_true", help="exit 3 when there are go-live warnings")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("init", help="scaffold a brand's own knowledge base, SOP script, Moments calendar and tiers",
                       description="Write a brand's own content with 【待填写】 placeholders into DIR: "
                                   "knowledge_base/, sop_templates/ (a manual script and the Moments calendar, "
                                   "approval on) and tiers.yaml. Valid as written (kb check, sop check, tiers check "
                                   "pass); existing files are left as they are.")
    p.add_argument("dir", nargs="?", default=".", help="where to write (default: the current directory)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("migrate", help="apply database migrations (serve does this on start)",
                       description="Apply every pending schema migration to database.url and print the revision.")
    add_config_arg(p)
    p.set_defaults(func=cmd_migrate)

    for name in CLI_MODULES:
        importlib.import_module(name).register(sub)
    parser.set_defaults(make_app=make_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
