"""What every CLI subcommand shares: the --config argument, loading the config, JSON and check output.

Kept apart from bot.cli (which builds and runs the whole bot) so a feature's CLI
module can use it without importing the entry point.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, default_config_path, load_config
from bot.ladderfacts import LadderFacts, contradictions, read_ladder_file


def make_app(args: argparse.Namespace, config: Config, **kw: Any) -> Any:
    """The whole bot (a ``bot.app.BotApp``) for a subcommand: bot.cli puts the factory in ``args``."""
    return args.make_app(config, **kw)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="PATH",
                   help="config file (default: ./config.toml, else ./config.example.toml)")


def add_tiers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tiers", metavar="PATH",
                   help="the ladder's rules file the texts are checked against "
                        "(default: tiers.yaml beside the directory, else tiers.rules of the config)")


def ladder_for_check(args: argparse.Namespace, directory: Path) -> LadderFacts | None:
    """The ladder a ``… check`` checks texts against: --tiers, else tiers.yaml beside the directory, else the
    config's tiers.rules; None when there is none (or it is not usable: ``tiers check`` says why)."""
    if getattr(args, "tiers", None):
        return read_ladder_file(Path(args.tiers))
    beside = directory.parent / "tiers.yaml"
    if beside.is_file():
        return read_ladder_file(beside)
    try:
        cfg = load_config(default_config_path(getattr(args, "config", None)))
    except ConfigError:
        return None
    return read_ladder_file(cfg.resolve(cfg.tiers.rules))


def ladder_warnings(facts: LadderFacts | None, paths: Iterable[Path], base: Path) -> list[dict[str, Any]]:
    """Every figure or tier name in these text files that the ladder contradicts (bot.ladderfacts.contradictions),
    as ``{"file", "line", "warning"}`` with the file named relative to ``base``'s parent."""
    if facts is None:
        return []
    found = []
    for path in sorted(paths):
        name = str(path.relative_to(base.parent)) if path.is_relative_to(base.parent) else str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        found += [{"file": name, "line": n, "warning": w} for n, w in contradictions(text, facts)]
    return found


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
                 warnings: Sequence[dict[str, Any]] = (), **counts: Any) -> int:
    """How every ``… check`` command answers: one ``file:line: problem`` line per problem, one ``⚠`` line per
    warning (not a problem: the exit status ignores it) and a summary (or one JSON object
    ``{"ok", "dir" (or "file"), <counts>, "problems", "warnings"}``); exit 0 when valid, 1 with problems.
    A warning is ``{"file", "line", "warning"}`` (``line`` 0: the file as a whole): a compliance term in a
    text, or a figure the ladder contradicts."""
    if as_json:
        emit_json({"ok": not problems, field: where, **counts, "problems": [p.to_json() for p in problems],
                   "warnings": list(warnings)})
    else:
        for p in problems:
            print(f"✗ {p}")
        for w in warnings:
            at = f"{w['file']}:{w['line']}" if w.get("line") else w["file"]
            print(f"⚠ {at}: {w['warning']}")
        shown = f", {len(warnings)} warning(s)" if warnings else ""
        print(f"{'✗' if problems else '✓'} {where}: {summary}, {len(problems)} problem(s){shown}")
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
