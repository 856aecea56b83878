"""The real process: serve answers a signed webhook, SIGTERM finishes what is in hand, SIGKILL loses nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.signing import webhook_signature

REPO = Path(__file__).resolve().parent.parent
SECRET = "process-test-secret"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db_url: str, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.out = tmp / f"stdout-{self.port}.log"
        self.err = tmp / f"stderr-{self.port}.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "SIYU_DATABASE__URL": db_url,
                    "SIYU_WEBHOOK__SECRET": SECRET, "SIYU_CONSOLE__FORMAT": "json", "SIYU_SERVER__PORT": str(self.port),
                    "SIYU_BOT__PLUGINS": '["tests.plugins.slow:setup"]', "SIYU_TEST_MARKER_DIR": str(tmp), **env}
        full_env.pop("SIYU_TEST_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(REPO / "config.example.toml")],
            cwd=tmp, env=full_env, stdout=self.out.open("wb"), stderr=self.err.open("wb"))
        self.wait_ready()

    def wait_ready(self, within: float = 120.0) -> None:  # a busy machine starts slowly; a hang still fails
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.err.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()  # a server that never became ready must not outlive the test
        self.proc.wait(10)
        raise AssertionError(f"serve did not become ready:\n{self.err.read_text()}")

    def post(self, event: dict[str, object]) -> dict[str, object]:
        body = json.dumps(event, ensure_ascii=False).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/webhook", data=body, method="POST",
                                     headers={"X-Siyu-Signature": webhook_signature(SECRET, body)})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
            return json.loads(r.read())

    def deliveries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.startswith("{")]

    def wait_for(self, cond: object, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if cond():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met; stderr:\n{self.err.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def message(event_id: str, text: str) -> dict[str, object]:
    return {"id": event_id, "type": "message", "time": int(time.time()),
            "chat": {"id": "g1", "type": "group", "name": "新人群"},
            "sender": {"id": "wmAlice", "name": "Alice", "staff": False}, "text": text, "mentions_bot": True}


def test_signed_webhook_reply_appears_on_the_console(db_url: str, tmp_path: Path, servers: list[Server]) -> None:
    server = Server(db_url, tmp_path)
    servers.append(server)
    assert server.post(message("evt-hello", "/whoami")) == {"accepted": True, "duplicate": False}
    server.wait_for(lambda: server.deliveries())
    (d,) = server.deliveries()
    assert d["kind"] == "reply" and d["chat"] == "g1" and d["to"] == ["wmAlice"] and "Alice" in str(d["text"])
    assert str(d["key"]).startswith("webhook:evt-hello|")
    assert server.stop() == 0


def test_sigterm_finishes_the_handler_in_hand(db_url: str, tmp_path: Path, servers: list[Server]) -> None:
    server = Server(db_url, tmp_path, SIYU_TEST_SLOW="1.5")
    servers.append(server)
    server.post(message("evt-term", "slow please"))
    server.wait_for(lambda: list(tmp_path.glob("started-*")))
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    texts = [d["text"] for d in server.deliveries()]
    assert texts == ["慢慢回复：slow please"]


def test_sigkill_mid_handler_loses_nothing_and_sends_once(db_url: str, tmp_path: Path,
                                                          servers: list[Server]) -> None:
    first = Server(db_url, tmp_path, SIYU_TEST_SLOW="60", SIYU_INBOX__LEASE_S="2",
                   SIYU_INBOX__HANDLER_TIMEOUT_S="120")
    servers.append(first)
    assert first.post(message("evt-kill", "slow and steady")) == {"accepted": True, "duplicate": False}
    first.wait_for(lambda: list(tmp_path.glob("started-*")))  # acknowledged, claimed, handler running
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert first.deliveries() == []

    second = Server(db_url, tmp_path, SIYU_TEST_SLOW="0", SIYU_INBOX__LEASE_S="2")
    servers.append(second)
    # WeCom-style retry of the same event after the crash: a duplicate, not a second run
    assert second.post(message("evt-kill", "slow and steady")) == {"accepted": True, "duplicate": True}
    second.wait_for(lambda: second.deliveries(), within=30)
    time.sleep(2.5)  # past another lease: nothing more may arrive
    texts = [d["text"] for d in second.deliveries()]
    assert texts == ["慢慢回复：slow and steady"]
    assert second.stop() == 0
