"""Operations under hostile or broken conditions: logs cannot be forged, identical errors do not flood,
/healthz says degraded when the database takes no write, start-up names the database, slow clients are
cut off, names are cleaned of control and bidi characters."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Config
from bot.logs import JsonFormatter, TextFormatter, Throttle
from bot.signing import webhook_signature
from bot.testing import TEST_ENV, serve
from bot.testing.database import pg_url
from bot.textsafe import clean_name, escape_log
from bot.web import create_web_app, server_options
from tests.conftest import REPO

# ── #13: names and logs ──


@pytest.mark.parametrize(("raw", "clean"), [
    ("Alice", "Alice"),
    ("张三\u202e人民币", "张三人民币"),
    ("A\x1b[31mlice\x1b[0m", "Alice"),
    ("Bob\nCRITICAL granted admin", "Bob CRITICAL granted admin"),
    ("\u2066x\u2069\u200f\x00y\x7f", "xy"),
    ("  many   spaces\t", "many spaces"),
    ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # emoji joiners stay
])
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


def test_clean_name_is_bounded() -> None:
    assert len(clean_name("名" * 1000)) == 64


def _format(formatter: logging.Formatter, msg: str, *args: object) -> str:
    record = logging.LogRecord("siyu.web", logging.INFO, __file__, 1, msg, args, None)
    return formatter.format(record)


def test_a_log_line_cannot_be_forged() -> None:
    evil = "evt-1\n2026-11-23 02:00:00,000 CRITICAL siyu.roles: granted admin to wmMallory\x1b[2K\u202e"
    line = _format(TextFormatter("%(levelname)s %(name)s: %(message)s"), "processing %s", evil)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\n2026-11-23" in line and "\\x1b[2K" in line and "\\u202e" in line
    out = json.loads(_format(JsonFormatter(), "processing %s", evil))
    assert "\u202e" not in out["msg"] and "\\u202e" in out["msg"]
    assert escape_log("普通的文字 ok") == "普通的文字 ok"


def test_a_traceback_keeps_its_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), sys.exc_info())
    out = TextFormatter("%(message)s").format(record)
    assert out.startswith("failed a\\nb\nTraceback")


# ── #12: identical errors once per interval ──


def test_identical_errors_are_logged_once_per_interval_with_a_count() -> None:
    now = [1000.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    handler.addFilter(Throttle(60, clock=lambda: now[0]))
    log = logging.getLogger("siyu.test.throttle")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        for _ in range(4585):
            try:
                raise OSError(28, "No space left on device")
            except OSError:
                log.exception("could not store a %s event", "webhook")
            now[0] += 0.01
        log.warning("another problem")
        log.info("info is never held back")
        log.info("info is never held back")
        now[0] += 60
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            log.exception("could not store a %s event", "webhook")
    finally:
        log.removeHandler(handler)
    lines = [ln for ln in stream.getvalue().splitlines() if ln.startswith(("ERROR", "WARNING", "INFO"))]
    assert lines[0] == "ERROR could not store a webhook event"
    assert lines[1:4] == ["WARNING another problem", "INFO info is never held back", "INFO info is never held back"]
    assert lines[4] == "ERROR could not store a webhook event (and 4584 more like it in the last 60 s)"
    assert len(lines) == 5


# ── #12: /healthz degraded ──


async def _refuse_writes(app: BotApp) -> None:
    async with app.db.session() as s:
        if app.db.is_sqlite:
            for op in ("INSERT", "UPDATE"):
                await s.execute(text(f"CREATE TRIGGER kv_full_{op} BEFORE {op} ON kv_state "
                                     "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
        else:
            await s.execute(text("CREATE FUNCTION kv_full() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ "
                                 "LANGUAGE plpgsql"))
            await s.execute(text("CREATE TRIGGER kv_full BEFORE INSERT OR UPDATE ON kv_state "
                                 "FOR EACH ROW EXECUTE FUNCTION kv_full()"))


async def test_healthz_is_degraded_when_the_database_takes_no_write(bot: BotApp) -> None:
    async with serve(bot) as client:
        r = await client.get("/healthz")
        assert (r.status, (await r.json())["status"]) == (200, "ok")
    await _refuse_writes(bot)
    async with serve(bot) as client:  # a new server: a new probe, no remembered answer
        r = await client.get("/healthz")
        body = await r.json()
    assert r.status == 503 and body["status"] == "degraded"
    assert "not writable" in body["error"]


# ── #12: start-up names the database ──


def _serve(db_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **TEST_ENV, "SIYU_DATABASE__URL": db_url, "SIYU_SERVER__PORT": "0",
           "SIYU_LOG__LEVEL": "INFO"}
    return subprocess.run([sys.executable, "-m", "bot", "serve", "-c", str(REPO / "config.example.toml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(bool(pg_url()), reason="SQLite files")
def test_start_up_errors_name_the_database_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    missing = blocker / "data" / "siyu.db"
    r = _serve(f"sqlite:///{missing}", tmp_path)
    assert r.returncode == 2
    assert str(missing) in r.stderr and len(r.stderr.splitlines()) < 10, r.stderr
    unopenable = tmp_path / "a-directory.db"  # SQLite cannot open it (as a read-only file would not take writes)
    unopenable.mkdir()
    r = _serve(f"sqlite:///{unopenable}", tmp_path)
    assert r.returncode == 2
    assert str(unopenable) in r.stderr and len(r.stderr.splitlines()) < 10, r.stderr


# ── #14: slow clients ──


async def _runner(app: BotApp) -> tuple[web.AppRunner, int]:
    await app.start()
    runner = web.AppRunner(create_web_app(app, manage_lifecycle=False), **server_options(app))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _trickle(port: int, first: bytes, drip: bytes, seconds: float) -> tuple[float, bytes]:
    """Send ``first``, then ``drip`` every 0.2 s; how long until the server closed, and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(first)
    got = b""
    try:
        while time.monotonic() - started < seconds:
            try:
                chunk = await asyncio.wait_for(reader.read(1000), 0.2)
            except TimeoutError:
                writer.write(drip)
                continue
            if not chunk:
                break
            got += chunk
        else:
            return seconds, got
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, got


async def test_slow_clients_are_cut_off(make_bot: Callable[..., BotApp], make_config: Callable[..., Config]) -> None:
    app = make_bot(cfg=make_config(SERVER__READ_TIMEOUT_S="1"))
    runner, port = await _runner(app)
    try:
        body = json.dumps({"id": "e1", "type": "message", "chat": {"id": "g", "type": "group"},
                           "sender": {"id": "wmA"}, "text": "x"}).encode()
        sig = webhook_signature(TEST_ENV["SIYU_WEBHOOK__SECRET"], body)
        results = await asyncio.gather(
            _trickle(port, b"POST /webhook HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n", 8),
            _trickle(port, b"GET /healthz HTTP/1.1\r\n", b"X", 8),
            _trickle(port, b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"X-Siyu-Signature: " + sig.encode() + b"\r\n"
                           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5], b" ", 8),
            *(_trickle(port, b"GET / HTTP/1.1\r\n", b"X-a: b\r\n", 8) for _ in range(17)),
        )
        for took, answer in results:
            assert took < 4, (took, answer)
        assert b" 408 " in results[2][1]
    finally:
        await runner.cleanup()


# ── #12: a database held by another writer delays no acknowledgement past WeCom's patience ──


async def test_a_callback_not_stored_in_time_is_answered_503_and_stored_on_the_retry(
        make_bot: Callable[..., BotApp], make_config: Callable[..., Config]) -> None:
    app = make_bot(cfg=make_config(SERVER__ACK_TIMEOUT_S="0.2"))
    await app.start()
    gate = asyncio.Event()
    real_insert = app.inbox_writer.insert

    async def held(items: list) -> list[bool]:  # another process holds the database's write lock
        await gate.wait()
        return await real_insert(items)

    app.inbox_writer.insert = held  # type: ignore[method-assign]
    body = json.dumps({"id": "held-1", "type": "message", "time": int(time.time()),
                       "chat": {"id": "g", "type": "group"}, "sender": {"id": "wmA"}, "text": "你好"}).encode()
    headers = {"X-Siyu-Signature": webhook_signature(TEST_ENV["SIYU_WEBHOOK__SECRET"], body),
               "Content-Type": "application/json"}
    async with serve(app) as client:
        try:
            r = await client.post("/webhook", data=body, headers=headers)
            answer = (r.status, await r.text())
        finally:
            gate.set()  # the lock is released; the sender sends the event again
        assert answer == (503, json.dumps({"error": "could not store the event in time; retry later"})), answer
        r = await client.post("/webhook", data=body, headers=headers)
        assert r.status == 200
    async with app.db.read() as s:
        assert (await s.execute(text("SELECT count(*) FROM inbox WHERE dedup_key LIKE '%held-1%'"))).scalar_one() == 1
