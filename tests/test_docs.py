"""The READMEs' commands run as written, their links resolve, the docs cover every config key.

Every shell line of a ```bash block in README.md and README.zh-CN.md is one of:
- a cheap, offline ``.venv/bin/siyu …`` command (maybe fed by ``echo … |``): run as written in a fresh
  copy of the repository (its own data/ folder), expecting exit 0 and some output;
- a long-running one (``scripts/run``, ``scripts/test``, ``siyu serve``, ``siyu simulate``): the
  script exists and the arguments shown are ones the command accepts (siyu's argument parser, or
  pytest's ``--help`` for what ``scripts/test`` hands on);
- the signed-webhook example: posted to a real ``siyu serve`` started in the copy, twice.
A line that is none of these fails the test, so a new command in a README is checked or thought about.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
READMES = [REPO / "README.md", REPO / "README.zh-CN.md"]
SIYU = ".venv/bin/siyu"
LONG_RUNNING = {"serve", "simulate"}
WEBHOOK_LINES = ("body=", "sig=", "curl ")
IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "site", "__pycache__", "*.egg-info", ".pytest_cache",
                                ".ruff_cache", "*.db", "*.db-wal", "*.db-shm", "config.toml")


def bash_blocks(path: Path) -> list[list[str]]:
    """The ```bash blocks of a markdown file, each as its command lines (comments dropped)."""
    blocks = []
    for body in re.findall(r"^```(?:bash|sh)\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S):
        lines: list[str] = []
        for raw in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s{2,}#.*$", "", raw).strip()
            if line and not line.startswith("#"):
                lines.append(line)
        blocks.append(lines)
    return blocks


def readme_commands() -> list[tuple[str, str]]:
    return [(p.name, line) for p in READMES for block in bash_blocks(p) for line in block]


def kind_of(line: str) -> str:
    if line.startswith(WEBHOOK_LINES):
        return "webhook"
    words = shlex.split(line.split("|")[-1])
    program = words[0].removeprefix("./")
    if program in ("scripts/run", "scripts/test"):
        return program
    if program == SIYU and len(words) > 1:
        return "long" if words[1] in LONG_RUNNING else "run"
    return "unknown"


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository (no data, no config.toml) with this interpreter's venv as .venv."""
    dest = tmp_path_factory.mktemp("clone") / "siyu"
    shutil.copytree(REPO, dest, ignore=IGNORE, symlinks=True)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")} | {"PYTHONUNBUFFERED": "1"}


def run(line: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -o pipefail; {line}"], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_every_readme_command_is_known() -> None:
    commands = readme_commands()
    assert commands, "no ```bash blocks found"
    unknown = [f"{name}: {line}" for name, line in commands if kind_of(line) == "unknown"]
    assert not unknown, "commands this test does not know how to check:\n" + "\n".join(unknown)


def test_cheap_commands_run_as_written(copy: Path) -> None:
    lines = sorted({line for _, line in readme_commands() if kind_of(line) == "run"})
    assert lines
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda line: (line, run(line, copy)), lines))
    failed = [f"$ {line}\nexit {r.returncode}\n{r.stdout[-800:]}{r.stderr[-800:]}"
              for line, r in results if r.returncode != 0 or not r.stdout.strip()]
    assert not failed, "\n\n".join(failed)


def test_long_running_commands_accept_the_flags_shown(copy: Path) -> None:
    from bot.cli import build_parser

    lines = {line for _, line in readme_commands() if kind_of(line) in ("scripts/run", "scripts/test", "long")}
    pytest_help = ""
    for line in sorted(lines):
        words = shlex.split(line)
        program = words[0].removeprefix("./")
        if program == "scripts/test":  # hands its arguments to pytest
            assert os.access(copy / program, os.X_OK), f"{program} is not an executable script"
            if not pytest_help:
                pytest_help = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                                             text=True, timeout=120, check=True).stdout
            missing = [w for w in words[1:] if w.startswith("-") and not re.search(
                rf"(^|[\s,]){re.escape(w)}\b", pytest_help, re.M)]
            assert not missing, f"{line}: pytest does not know {missing}"
            continue
        if program == "scripts/run":  # hands its arguments to `siyu serve`
            assert os.access(copy / program, os.X_OK), f"{program} is not an executable script"
            argv = ["serve", *words[1:]]
        else:
            argv = words[1:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{line}: siyu refuses these arguments (exit {exc.code})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_signed_webhook_example_is_accepted_once(copy: Path) -> None:
    if not shutil.which("openssl") or not shutil.which("curl"):
        pytest.skip("the example needs openssl and curl")
    block = next(b for b in bash_blocks(READMES[0]) if any(line.startswith("curl ") for line in b))
    port = free_port()
    script = "\n".join(block).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    proc = subprocess.Popen([SIYU, "serve", "--port", str(port)], cwd=copy, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "siyu serve did not come up"
            time.sleep(0.2)
        first = run(script, copy, timeout=30)
        second = run(script, copy, timeout=30)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert '"accepted": true' in first.stdout and '"duplicate": false' in first.stdout, first.stdout + first.stderr
    assert '"duplicate": true' in second.stdout, second.stdout + second.stderr
    assert "可用命令" in out, out[-2000:]  # the console sender printed the answer to /help


def test_every_relative_link_in_the_readmes_resolves() -> None:
    broken = []
    for readme in READMES:
        text = re.sub(r"^```.*?^```", "", readme.read_text(encoding="utf-8"), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (readme.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{readme.name}: {target}")
    assert not broken, broken


def test_the_configuration_page_lists_every_key() -> None:
    config = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = []
    for section, keys in config.items():
        part = page.split(f"## `[{section}]`", 1)
        if len(part) < 2:
            missing.append(f"[{section}]")
            continue
        body = part[1].split("\n## ", 1)[0]
        missing += [f"{section}.{key}" for key in keys
                    if f"| `{key}` |" not in body or f"SIYU_{section.upper()}__{key.upper()}" not in body]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_the_plugin_example_compiles() -> None:
    page = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert len(blocks) >= 2
    for i, code in enumerate(blocks):
        compile(code, f"docs/plugins.md[{i}]", "exec")
