"""The terminal simulator runs the real pipeline; a script on stdin shows what the bot sends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_simulate_reads_a_script_from_stdin(db_url: str, tmp_path: Path) -> None:
    script = "/whoami\n:as 运营小王 admin\n/role grant @wm小明 operator\n:dm\n/whoami\n:quit\n"
    env = {**os.environ, "SIYU_DATABASE__URL": db_url, "PYTHONPATH": str(REPO)}
    env.pop("SIYU_TEST_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot", "simulate", "--config", str(REPO / "config.example.toml"),
         "--name", "小明", "--group", "新人群"],
        input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=True).stdout
    assert "[新人群] 小明> /whoami" in out
    assert "👤 小明（ID：wm小明）" in out
    assert "已授予 wm小明 运营角色" in out
    assert "当前会话：运营小王（私聊）" in out
