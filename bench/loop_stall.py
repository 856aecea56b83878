"""Event-loop stalls: /healthz and acknowledgement latency while long texts are processed.

Starts siyu as ``serve`` runs it (every feature on, workers processing, SQLite in a temporary
directory unless ``--db``) and, in two phases of the same length, probes it all the time:

  /healthz      one GET after another (a pause of 20 ms between them)
  ack           a short encrypted /wecom/callback message every 50 ms (the time to its 200)

  baseline      only the probes
  heavy         the probes, and meanwhile 40 KB messages (the issue's repros: "a."*20000,
                "vx:"+"a_"*20000, "微 信 "*5000 — scanned by moderation, matched by the knowledge base)
                and 56 KB message-archive records (POST /archive/import) every second

and prints max and p99 of each probe per phase, and the heavy/baseline ratio. The target: /healthz
answers within 100 ms while a 40 KB message or a 56 KB archive record is processed.

    .venv/bin/python bench/loop_stall.py
    .venv/bin/python bench/loop_stall.py --seconds 10 --db postgresql://user@host/db
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import AES_KEY, CORP, TOKEN, free_port, wait_ready  # noqa: E402

ARCHIVE_SECRET = "bench-archive-secret"
HEAVY_TEXTS = {"dots": "a." * 20000, "ids": "vx:" + "a_" * 20000, "words": "微 信 " * 5000}
ARCHIVE_TEXT = "a." * 28000  # 56 KB


def serve(port: int, db: str) -> None:
    import logging

    from aiohttp import web

    from bot.app import BotApp
    from bot.cli import serving_app
    from bot.config import load_config
    from bot.senders.console import ConsoleSender

    env = {"SIYU_DATABASE__URL": db, "SIYU_WECOM__TOKEN": TOKEN, "SIYU_WECOM__ENCODING_AES_KEY": AES_KEY,
           "SIYU_WECOM__CORP_ID": CORP, "SIYU_WECOM__MAX_CLOCK_SKEW_S": "0", "SIYU_LOG__LEVEL": "WARNING",
           "SIYU_MODERATION__ARCHIVE_SECRET": ARCHIVE_SECRET}
    cfg = load_config(REPO / "config.example.toml", env)
    logging.basicConfig(level=logging.WARNING)
    devnull = open(os.devnull, "w")
    bot = BotApp(cfg, sender=ConsoleSender("json", stream=devnull))
    web.run_app(serving_app(bot), host="127.0.0.1", port=port, print=None, access_log=None)


class Callbacks:
    def __init__(self) -> None:
        from bot.testing import CallbackSigner

        self.signer = CallbackSigner(TOKEN, AES_KEY, CORP)
        self.next_id = 10**15

    def post(self, text: str) -> tuple[str, bytes]:
        from bot.testing import text_xml

        self.next_id += 1
        xml = text_xml(text, sender=f"wmMember{self.next_id % 97}", msg_id=self.next_id, corp_id=CORP)
        return self.signer.app_post(xml, corp_id=CORP, timestamp=int(time.time()), nonce=str(self.next_id))


def archive_body(seq: int) -> bytes:
    record = {"seq": seq, "msgid": f"bench-{seq}", "action": "send", "from": "wmMember1", "tolist": ["staff01"],
              "roomid": "", "msgtime": int(time.time() * 1000), "msgtype": "text", "text": {"content": ARCHIVE_TEXT}}
    return json.dumps(record, ensure_ascii=False).encode()


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "max_ms": round(ordered[-1] * 1000, 1),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1)}


async def phase(port: int, seconds: float, heavy: bool, calls: Callbacks, seq0: int,
                what: tuple[str, ...] = ("messages", "archive"), texts: tuple[str, ...] = tuple(HEAVY_TEXTS)
                ) -> dict[str, Any]:
    import aiohttp

    from bot.signing import webhook_signature

    base = f"http://127.0.0.1:{port}"
    health: list[float] = []
    acks: list[float] = []
    heavy_acks: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        async def probe_health() -> None:
            nonlocal errors
            while time.monotonic() < end:
                t0 = time.perf_counter()
                async with s.get(f"{base}/healthz") as r:
                    await r.read()
                    errors += r.status != 200
                health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)

        async def post(text: str, into: list[float]) -> None:
            nonlocal errors
            query, body = calls.post(text)
            t0 = time.perf_counter()
            async with s.post(f"{base}/wecom/callback?{query}", data=body) as r:
                await r.read()
                errors += r.status != 200
            into.append(time.perf_counter() - t0)

        async def probe_acks() -> None:
            while time.monotonic() < end:
                await post("请问怎么退款", acks)
                await asyncio.sleep(0.05)

        async def load_heavy() -> None:
            nonlocal errors
            i = 0
            while time.monotonic() < end - 1:
                if "messages" in what:
                    await post(HEAVY_TEXTS[texts[i % len(texts)]], heavy_acks)
                if "archive" in what:
                    body = archive_body(seq0 + i)
                    async with s.post(f"{base}/archive/import", data=body,
                                      headers={"X-Siyu-Signature": webhook_signature(ARCHIVE_SECRET, body)}) as r:
                        await r.read()
                        errors += r.status != 200
                i += 1
                await asyncio.sleep(1.0)

        tasks = [probe_health(), probe_acks()] + ([load_heavy()] if heavy else [])
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
    return {"healthz": summary(health), "ack": summary(acks), "errors": errors,
            **({"heavy_ack": summary(heavy_acks)} if heavy_acks else {})}


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="siyu-stall-") as tmp:
        db = args.db or f"sqlite:///{tmp}/stall.db"
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--db", db],  # noqa: ASYNC220
                                cwd=REPO)
        try:
            await wait_ready(port, proc)
            calls = Callbacks()
            await phase(port, 2.0, False, calls, 0)  # warm-up: jieba, the lexicon, the first matcher
            baseline = await phase(port, args.seconds, False, calls, 0)
            heavy = await phase(port, args.seconds, True, calls, 1, tuple(args.heavy.split(",")),
                                tuple(args.texts.split(",")))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("baseline", json.dumps(baseline))
    print("heavy   ", json.dumps(heavy))
    print(json.dumps({
        "database": "postgresql" if args.db and args.db.startswith("postgres") else "sqlite",
        "heavy": args.heavy, "texts": args.texts,
        "healthz_max_ms": heavy["healthz"]["max_ms"], "healthz_p99_ms": heavy["healthz"]["p99_ms"],
        "ack_max_ms": heavy["ack"]["max_ms"], "ack_p99_ms": heavy["ack"]["p99_ms"],
        "healthz_max_ratio": round(heavy["healthz"]["max_ms"] / max(baseline["healthz"]["max_ms"], 0.1), 2),
        "ack_max_ratio": round(heavy["ack"]["max_ms"] / max(baseline["ack"]["max_ms"], 0.1), 2),
        "target_healthz_within_100ms": heavy["healthz"]["max_ms"] <= 100,
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each phase (default 8)")
    ap.add_argument("--db", help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--heavy", default="messages,archive",
                    help="what the heavy phase sends: messages, archive or both (default messages,archive)")
    ap.add_argument("--texts", default=",".join(HEAVY_TEXTS),
                    help="which 40 KB messages: dots, ids, words (5,000 hits of one term) (default all three)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.db)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
