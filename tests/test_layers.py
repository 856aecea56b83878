"""The layers contract (.importlinter) holds, and it does fail on an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def run_contract(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / ".importlinter")], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          timeout=120)


def copy_tree(dest: Path) -> Path:
    for name in ("bot", "handlers", "moderation"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.txt", "*.yaml",
                                                                                "*.j2", "data", "eval"))
    shutil.copy(REPO / ".importlinter", dest / ".importlinter")
    return dest


def test_the_tree_keeps_its_layers() -> None:
    result = run_contract(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    dispatcher = root / "bot" / "dispatcher.py"
    dispatcher.write_text(dispatcher.read_text(encoding="utf-8") + "\nfrom bot.app import BotApp  # noqa\n",
                          encoding="utf-8")
    result = run_contract(root)
    assert result.returncode == 1
    assert "bot.dispatcher is not allowed to import bot.app" in result.stdout
