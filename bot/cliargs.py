"""What every CLI subcommand shares: the --config argument, loading the config, JSON and check output.

Kept apart from bot.cli (which builds and runs the whole bot) so a feature's CLI
module can use it without importing the entry point.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bot.config import Config, ConfigError, default_config_path, load_config


def make_app(args: argparse.Namespace, config: Config, **kw: Any) -> Any:
    """The whole bot (a ``bot.app.BotApp``) for a subcommand: bot.cli puts the factory in ``args``."""
    return args.make_app(config, **kw)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="PATH",
                   help="config file (default: ./config.toml, else ./config.example.toml)")


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config named by --config, printing errors and exiting 2 if it is invalid."""
    path = default_config_path(getattr(args, "config", None))
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"siyu: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def report_check(as_json: bool, where: str, problems: Sequence[Any], summary: str, *, field: str = "dir",
                 warnings: Sequence[str] = (), **counts: Any) -> int:
    """How every ``… check`` command answers: one ``file:line: problem`` line per problem, one ``⚠`` line per
    warning (not a problem: the exit status ignores it) and a summary (or one JSON object
    ``{"ok", "dir" (or "file"), <counts>, "problems", "warnings"}``); exit 0 when valid, 1 with problems."""
    if as_json:
        emit_json({"ok": not problems, field: where, **counts, "problems": [p.to_json() for p in problems],
                   "warnings": list(warnings)})
    else:
        for p in problems:
            print(f"✗ {p}")
        for w in warnings:
            print(f"⚠ {w}")
        print(f"{'✗' if problems else '✓'} {where}: {summary}, {len(problems)} problem(s)")
    return 1 if problems else 0


def report_missing_dir(as_json: bool, directory: Any, **counts: Any) -> int:
    """How a directory ``… check`` command answers when the directory is not there: exit 2, the same
    JSON shape as ``report_check`` (``counts`` zero) or one ``✗`` line on stderr."""
    if as_json:
        emit_json({"ok": False, "dir": str(directory), **counts, "problems": [
            {"file": str(directory), "line": 0, "problem": "directory does not exist"}]})
    else:
        print(f"✗ {directory}: directory does not exist", file=sys.stderr)
    return 2
