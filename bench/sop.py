"""SOP benchmark: due steps claimed and enqueued per second, exact counts, and peak memory.

10,000 groups each run a 10-step script (one step an hour). A fake clock is moved an
hour at a time — nothing sleeps — and after each move the step pump claims every due
step and writes its outbox row; the outbox is then sent through a counting sender.

  sop        steps claimed, rendered and enqueued per second by the step pump
  baseline   a plain bulk INSERT of the same number of outbox rows (1,000 rows a statement, executemany),
             measured in the same run on the same database, hour by hour just before the pump (and
             deleted again, so both write into an outbox of the same size): the ratio is sop / baseline
  counts     sent (distinct outbox keys delivered), duplicates (delivered more than once),
             missing (never delivered) — must be 100,000 / 0 / 0
  memory     the peak RSS of a process running 10,000 groups against one running 100 groups

Each size runs in its own process, so its peak memory is its own.

    .venv/bin/python bench/sop.py                                   # SQLite in a temporary directory
    .venv/bin/python bench/sop.py --db postgresql://user@host:5432/postgres   # a fresh database on that server
    .venv/bin/python bench/sop.py --groups 2000 --small 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SCRIPT = """\
id: bench-10
name: 十步
trigger: manual
per: group
quiet_hours: "off"
late: {grace: 1d, then: send}
steps:
""" + "".join(f'  - {{at: "+{h}h", via: reply, text: "第 {h + 1} 步：{{{{ group.name }}}} 的茶友们好"}}\n'
              for h in range(10))


class CountingSender:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def send(self, delivery: Any) -> Any:
        from bot.senders.base import SendResult

        self.keys.append(delivery.key)
        return SendResult({})

    async def close(self) -> None:
        return None


async def _pg_database(server_url: str) -> tuple[str, str]:
    import asyncpg

    base = server_url.rsplit("/", 1)[0]
    name = f"siyu_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{base}/{name}", name


async def _pg_drop(server_url: str, name: str) -> None:
    import asyncpg

    base = server_url.rsplit("/", 1)[0]
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def child(groups: int, db: str, batch: int) -> dict[str, Any]:
    from datetime import timedelta

    from sqlalchemy import func, select

    from bot.app import BotApp
    from bot.clock import FakeClock
    from bot.config import load_config
    from bot.sop import SOP
    from bot.sop.engine import StepPump, Subject
    from bot.sop.models import SopStep
    from bot.storage.models import OutboxRow
    from handlers import feature

    tmp = Path(tempfile.mkdtemp(prefix="siyu-bench-sop-"))
    (tmp / "scripts").mkdir()
    (tmp / "scripts" / "bench-10.yaml").write_text(SCRIPT, encoding="utf-8")
    dropped = ""
    if db.startswith("postgres"):
        url, dropped = await _pg_database(db)
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    env = {"SIYU_DATABASE__URL": url, "SIYU_SOP__DIR": str(tmp / "scripts"), "SIYU_SOP__POLL_BATCH": str(batch),
           "SIYU_MOMENTS__ENABLED": "false", "SIYU_LOG__LEVEL": "WARNING", "SIYU_OUTBOX__BATCH_SIZE": "1000",
           "SIYU_OUTBOX__CONCURRENCY": "64", "SIYU_DATABASE__SQLITE_SYNCHRONOUS": "NORMAL"}
    cfg = load_config(REPO / "config.example.toml", env)
    clock = FakeClock()
    sender = CountingSender()
    app = BotApp(cfg, sender=sender, clock=clock, features=[feature("admin"), feature("sop")], run_workers=False)
    await app.start()
    out: dict[str, Any] = {"groups": groups, "steps": groups * 10, "db": app.db.dialect}
    try:
        outbox = OutboxRow.__table__
        engine = app.get(SOP)
        script = engine.scripts["bench-10"]
        pump = next(p for p in app.pumps if isinstance(p, StepPump))
        t0 = time.perf_counter()
        for first in range(0, groups, 500):
            async with app.db.session() as s:
                for i in range(first, min(groups, first + 500)):
                    await engine.start(s, script, Subject(per="group", chat_id=f"wr{i:06d}", chat_name=f"禾屿{i}群"),
                                       anchor=clock.now(), started_by="bench")
        out["start_runs_s"] = round(time.perf_counter() - t0, 2)

        # the baseline: the same number of outbox rows written with plain bulk INSERTs
        now = clock.now()

        def chunk(first: int, n: int) -> list[dict[str, Any]]:
            return [{"key": f"base:{i}", "kind": "reply", "chat_id": f"wr{i % groups:06d}",
                     "destination": {"to": [], "chat": {"id": f"wr{i % groups:06d}", "type": "group",
                                                        "name": f"禾屿{i % groups}群"}},
                     "payload": {"text": f"第 {i % 10 + 1} 步：禾屿{i % groups}群 的茶友们好", "msgtype": "text"},
                     "rate_key": f"appchat:wr{i % groups:06d}", "status": "sent", "attempts": 0, "source": "bench",
                     "created_at": now, "next_attempt_at": now} for i in range(first, min(first + n, groups * 10))]

        # Interleaved hour by hour, so both see the same table sizes and the same machine load.
        base_s = claimed_s = send_s = 0.0
        claimed = 0
        per_hour = groups
        for hour in range(10):
            if hour:
                clock.advance(timedelta(hours=1))
            for first in range(hour * per_hour, (hour + 1) * per_hour, 1000):
                rows = chunk(first, min(1000, (hour + 1) * per_hour - first))
                t = time.perf_counter()
                async with app.db.session() as s:
                    await s.execute(outbox.insert(), rows)
                base_s += time.perf_counter() - t
            async with app.db.session() as s:  # the step pump writes into an outbox of the same size
                await s.execute(outbox.delete().where(outbox.c.key.like("base:%")))
            t = time.perf_counter()
            claimed += await pump.drain()
            claimed_s += time.perf_counter() - t
            t = time.perf_counter()
            await app.outbox_pump.drain()
            send_s += time.perf_counter() - t
        out["baseline_per_s"] = round(groups * 10 / base_s)
        out["claimed"] = claimed
        out["sop_s"] = round(claimed_s, 2)
        out["sop_per_s"] = round(claimed / claimed_s)
        out["send_per_s"] = round(len(sender.keys) / send_s) if send_s else 0

        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["ratio"] = round(out["sop_per_s"] / out["baseline_per_s"], 3)

        expected = {f"sop:{r}:{k}:0" for r in range(1, groups + 1) for k in range(1, 11)}
        delivered = set(sender.keys)
        out["sent"] = len(delivered & expected)
        out["duplicates"] = len(sender.keys) - len(delivered)
        out["missing"] = len(expected - delivered)
        out["unexpected"] = len(delivered - expected)
        async with app.db.read() as s:
            out["steps_done"] = (await s.execute(select(func.count()).select_from(SopStep.__table__).where(
                SopStep.__table__.c.state == "done"))).scalar_one()
            out["outbox_sop_rows"] = (await s.execute(select(func.count()).select_from(outbox).where(
                outbox.c.key.like("sop:%")))).scalar_one()
    finally:
        await app.stop()
        if dropped:
            await _pg_drop(db, dropped)
    return out


def run_child(groups: int, db: str, batch: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", "--groups", str(groups), "--db", db,
                           "--batch", str(batch)], capture_output=True, text=True, env={**os.environ,
                                                                                      "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite", help="sqlite (default) or a PostgreSQL server URL")
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=100, help="the group count peak memory is compared against")
    ap.add_argument("--batch", type=int, default=200, help="sop.poll_batch (steps claimed per round)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.groups, args.db, args.batch))))
        return
    small = run_child(args.small, args.db, args.batch)
    big = run_child(args.groups, args.db, args.batch)
    print(f"database: {big['db']}   poll_batch: {args.batch}")
    for r in (small, big):
        print(f"  {r['groups']:>6} groups: {r['claimed']:>7} steps claimed+enqueued in {r['sop_s']:>6.2f} s "
              f"= {r['sop_per_s']:>6}/s | bulk INSERT {r['baseline_per_s']:>6}/s | ratio {r['ratio']:.3f} | "
              f"sent {r['sent']} dup {r['duplicates']} missing {r['missing']} | peak RSS {r['peak_rss_mb']} MB")
    print(f"  peak memory {big['groups']} vs {small['groups']} groups: {big['peak_rss_mb']} / {small['peak_rss_mb']} MB"
          f" = ×{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}")
    print(json.dumps({"small": small, "big": big}, ensure_ascii=False))


if __name__ == "__main__":
    main()
