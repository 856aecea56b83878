"""Ingest benchmark: encrypted /wecom/callback posts acknowledged per second, and their latency.

Three servers are measured in one run with the same load generator (each server in
its own process, the load generator in this one):

  bare     an aiohttp handler that only answers 200
  decrypt  a handler that verifies and decrypts with wechatpy (the reference crypto) and answers 200
  siyu     the real app: verify, decrypt, parse, dedup, commit to the inbox, answer 200
           (workers on: the events are also dispatched and answered meanwhile; --no-workers to
           measure the acknowledgement path alone)

5 % of the requests repeat an earlier one (WeCom retries), so dedup is exercised.

    .venv/bin/python bench/ingest.py                      # SQLite in a temporary directory
    .venv/bin/python bench/ingest.py --db postgresql://user@host/db
    .venv/bin/python bench/ingest.py --requests 30000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP = "wx5823bf96d3bd56c7"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ── servers (run in a child process) ──


def serve(mode: str, port: int, db: str, workers: bool) -> None:
    from aiohttp import web

    if mode == "bare":
        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="")

        app = web.Application()
        app.router.add_post("/wecom/callback", ok)
        app.router.add_get("/healthz", ok)
    elif mode == "decrypt":
        from wechatpy.enterprise.crypto import WeChatCrypto

        crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)

        async def decrypt(request: web.Request) -> web.Response:
            body = await request.read()
            q = request.query
            crypto.decrypt_message(body.decode(), q["msg_signature"], q["timestamp"], q["nonce"])
            return web.Response(text="")

        async def health(request: web.Request) -> web.Response:
            return web.Response(text="")

        app = web.Application()
        app.router.add_post("/wecom/callback", decrypt)
        app.router.add_get("/healthz", health)
    else:
        import logging

        from bot.app import BotApp
        from bot.cli import serving_app
        from bot.config import load_config
        from bot.senders.console import ConsoleSender

        env = {"SIYU_DATABASE__URL": db, "SIYU_WECOM__TOKEN": TOKEN, "SIYU_WECOM__ENCODING_AES_KEY": AES_KEY,
               "SIYU_WECOM__CORP_ID": CORP, "SIYU_WECOM__MAX_CLOCK_SKEW_S": "0", "SIYU_LOG__LEVEL": "WARNING"}
        cfg = load_config(REPO / "config.example.toml", env)
        logging.basicConfig(level=logging.WARNING)
        devnull = open(os.devnull, "w")
        bot = BotApp(cfg, sender=ConsoleSender("json", stream=devnull), run_workers=workers)
        app = serving_app(bot)  # what ``python -m bot serve`` runs (its routes, lifecycle and start-up freeze)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ── load generator ──


def build_requests(n: int, seed: int = 7, first_id: int = 10**15) -> list[tuple[str, bytes]]:
    from bot.testing import CallbackSigner, text_xml

    rng = random.Random(seed)
    signer = CallbackSigner(TOKEN, AES_KEY, CORP)
    texts = ["请问怎么退款", "今天的直播几点开始", "打卡", "老师好，我的订单还没发货", "谢谢分享👍",
             "这个课程适合零基础吗", "群里的资料在哪里下载", "会员积分怎么用"]
    reqs: list[tuple[str, bytes]] = []
    for i in range(n):
        if reqs and rng.random() < 0.05:
            reqs.append(reqs[rng.randrange(len(reqs))])  # a WeCom retry
            continue
        xml = text_xml(rng.choice(texts), sender=f"staff{i % 50:02d}", msg_id=first_id + i, corp_id=CORP)
        reqs.append(signer.app_post(xml, corp_id=CORP, timestamp=1763800000, nonce=str(i)))
    return reqs


async def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def load(port: int, reqs: list[tuple[str, bytes]], concurrency: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    it = iter(reqs)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def worker() -> None:
            nonlocal errors
            for query, body in it:
                t0 = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/wecom/callback?{query}", data=body) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 3),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


async def measure(mode: str, args: argparse.Namespace, reqs: list[tuple[str, bytes]], warm: list[tuple[str, bytes]],
                  db: str) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", mode, "--port", str(port), "--db", db]
    if args.no_workers:
        cmd.append("--no-workers")
    proc = subprocess.Popen(cmd, cwd=REPO)  # noqa: ASYNC220 - started once, before the measurement
    try:
        await wait_ready(port, proc)
        await load(port, warm, args.concurrency)
        return await load(port, reqs, args.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def run(args: argparse.Namespace) -> None:
    reqs = build_requests(args.requests)
    warm = build_requests(1000, seed=99, first_id=2 * 10**15)  # distinct from the measured ones
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        for mode in ("bare", "decrypt", "siyu"):
            db = args.db or f"sqlite:///{tmp}/{mode}.db"
            results[mode] = await measure(mode, args, reqs, warm, db)
            print(f"{mode:8s} {results[mode]}", flush=True)
    bare, full = results["bare"], results["siyu"]
    summary = {
        "database": "postgresql" if args.db and args.db.startswith("postgres") else "sqlite",
        "workers": not args.no_workers,
        "siyu_per_second": full["per_second"], "siyu_p50_ms": full["p50_ms"], "siyu_p99_ms": full["p99_ms"],
        "ratio_vs_bare": round(full["per_second"] / bare["per_second"], 3),
        "ratio_vs_decrypt": round(full["per_second"] / results["decrypt"]["per_second"], 3),
    }
    print(json.dumps(summary, ensure_ascii=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000, help="measured requests per server (default 20000)")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    ap.add_argument("--db", default="", help="database URL for siyu (default: SQLite in a temporary directory)")
    ap.add_argument("--no-workers", action="store_true", help="siyu without inbox workers and sender")
    ap.add_argument("--serve", choices=["bare", "decrypt", "siyu"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.db, not args.no_workers)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
