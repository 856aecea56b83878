"""Fault suite: the e2e mix while ``serve`` is SIGKILLed and the fake WeCom fails 30 % of the calls.

The same signed, encrypted callbacks as bench/e2e.py (its mix and signers, imported) are posted at a
steady rate to real ``serve`` processes (``bot.sender = "wecom"``) while

- a ``serve`` process is SIGKILLed at ``--kills`` random moments and started again on its port
  (on PostgreSQL with two replicas, always the first one: the other keeps going);
- the fake WeCom fails ``--fault-rate`` of the sending calls at random (seeded): -1, 45009,
  42001 (the token expires), timeouts, HTTP 502 and lost answers (the call took effect, the
  connection closed before the answer);
- with ``--pg-restart`` PostgreSQL is restarted once in the middle of the posting.

A post that is not answered 200 (the process is dead, the database is away) is posted again, as
WeCom retries a callback. When everything is acknowledged and the database holds nothing left to do,
the run prints its counts and checks them:

- every acknowledged event processed: inbox rows done or failed (with the reason) = acknowledged events;
- every delivery shown exactly once: the fake counts what took effect by path + destination + content;
  message/send and appchat/send ask WeCom's duplicate check, so no repeat is allowed there; a
  response_url takes one POST; other paths may repeat only a row in flight at a kill (counted);
- no call past the documented rate limits (the fake counts them);
- alerts raised exactly once: alert rows + folded repeats = the hits of the acknowledged staff
  messages, each alert's app message shown once;
- points counted exactly once: the ledger equals a recount from the acknowledged events (daily caps
  applied) and every member's total equals their ledger.

``--soak SECONDS`` instead posts the mix at ``--rate`` for that long, without faults or kills, and prints
the RSS of ``serve`` after the warm-up (``--warmup``, default 60 s) and at the end, with the growth.

    .venv/bin/python bench/chaos.py                       # SQLite: 10,000 events, 5 kills, 30 % faults
    .venv/bin/python bench/chaos.py --pg start --pg-only --pg-restart   # PostgreSQL, two replicas
    .venv/bin/python bench/chaos.py --soak 600 --rate 100               # memory: 10 minutes at 100/s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.e2e import STAFF, STAFF_HITS, BenchFake, FakeThread, Post, Serve, build_mix, fresh_pg, start_pg  # noqa: E402

# Leases short enough that a killed process's rows come back within seconds; attempts enough that a
# delivery failing 30 % of the time is not given up (0.3^12); WeCom answers within the request timeout.
CHAOS_ENV = {"SIYU_INBOX__LEASE_S": "10", "SIYU_OUTBOX__LEASE_S": "30", "SIYU_OUTBOX__MAX_ATTEMPTS": "12",
             "SIYU_OUTBOX__BACKOFF_BASE_S": "1", "SIYU_OUTBOX__BACKOFF_MAX_S": "10",
             "SIYU_WECOM__REQUEST_TIMEOUT_S": "2"}
FAKE_TIMEOUT_S = 3.0      # an injected timeout holds the call longer than the client waits
DUP_CHECKED = ("message/send", "appchat/send")  # WeCom's duplicate check: no repeat allowed
ONE_SHOT = ("aibot/response",)                   # a response_url takes one POST


# ── the database, read directly (SQLite file or PostgreSQL) ──


async def query(db: str, sql: str) -> list[tuple[Any, ...]]:
    if db.startswith("sqlite"):
        import sqlite3

        def run() -> list[tuple[Any, ...]]:
            con = sqlite3.connect(db.split("///", 1)[1], timeout=30)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()

        return await asyncio.to_thread(run)
    import asyncpg

    con = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        return [tuple(r) for r in await con.fetch(sql)]
    finally:
        await con.close()


def js(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ── serve processes that die and come back ──


class Replica:
    """One ``serve`` on a fixed port; ``kill()`` SIGKILLs it, ``start()`` brings it back."""

    def __init__(self, db: str, fake_url: str, tmp: Path, name: str, extra: dict[str, str]) -> None:
        self.db, self.fake_url, self.tmp, self.name, self.extra = db, fake_url, tmp, name, extra
        self.lives = 0
        self.serve: Serve | None = None
        self.port = 0

    def start(self) -> None:
        self.lives += 1
        self.serve = Serve(self.db, self.fake_url, self.tmp, f"{self.name}-{self.lives}", self.extra,
                           port=self.port or None)
        self.port = self.serve.port
        self.serve.wait_ready()

    def kill(self) -> None:
        assert self.serve is not None
        self.serve.proc.send_signal(signal.SIGKILL)
        self.serve.proc.wait()

    def stop(self) -> None:
        if self.serve is not None and self.serve.proc.poll() is None:
            self.serve.stop()

    def rss_kb(self) -> int:
        assert self.serve is not None
        for line in Path(f"/proc/{self.serve.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


# ── the load: every post until it is answered 200 ──


@dataclass
class Load:
    acked: set[str] = field(default_factory=set)   # reply keys (one per event) answered 200
    retries: int = 0
    unacked: int = 0


def event_of(p: Post) -> str:
    return p.reply  # every post of the mix has a unique reply key (u:<user> / r:<code>), repeats share it


async def post_steady(ports: list[int], posts: list[Post], rate: float, load: Load) -> None:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def one(i: int, p: Post) -> None:
            give_up = time.monotonic() + 300  # WeCom retries for minutes; a restart may take a while
            for attempt in itertools.count():
                if time.monotonic() > give_up:
                    break
                port = ports[(i + attempt) % len(ports)]
                try:
                    async with session.post(f"http://127.0.0.1:{port}{p.path}?{p.query}", data=p.body) as r:
                        await r.read()
                        if r.status == 200:
                            load.acked.add(event_of(p))
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                load.retries += 1
                await asyncio.sleep(min(2.0, 0.25 * (attempt + 1)))
            load.unacked += 1

        start = time.monotonic()
        tasks = []
        for i, p in enumerate(posts):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, p)))
        await asyncio.gather(*tasks)


# ── the faults ──


def pg_ctl() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return str(found[-1]) if found else "pg_ctl"


def restart_pg(pg_dir: Path) -> None:
    # the server's output to its log file: a pipe held open by the postmaster would never close
    cmd = [pg_ctl(), "-D", str(pg_dir / "data"), "-l", str(pg_dir / "server.log"), "-m", "fast", "-w", "restart"]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=pg_dir, timeout=120)


async def chaos_monkey(victim: Replica, kill_at: list[float], pg_at: float | None, pg_dir: Path | None,
                       log: list[str]) -> None:
    start = time.monotonic()
    rng = random.Random(len(kill_at))
    plan = sorted([(t, "kill") for t in kill_at] + ([(pg_at, "pg")] if pg_at is not None else []))
    for at, what in plan:
        # a moment that passed while the victim restarted becomes a few seconds into its new life
        due = max(start + at, time.monotonic() + rng.uniform(2.0, 10.0)) if log else start + at
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if what == "kill":
            victim.kill()
            log.append(f"{time.monotonic() - start:6.1f}s SIGKILL {victim.name} (life {victim.lives})")
            await asyncio.to_thread(victim.start)
            log.append(f"{time.monotonic() - start:6.1f}s {victim.name} serving again")
        else:
            assert pg_dir is not None
            await asyncio.to_thread(restart_pg, pg_dir)
            log.append(f"{time.monotonic() - start:6.1f}s PostgreSQL restarted")


async def wait_drained(db: str, within: float) -> dict[str, int]:
    """Until no inbox row is left to process and no outbox row is left to send."""
    deadline = time.monotonic() + within
    while True:
        try:
            inbox = dict(await query(db, "SELECT status, COUNT(*) FROM inbox GROUP BY status"))
            outbox = dict(await query(db, "SELECT status, COUNT(*) FROM outbox GROUP BY status"))
        except Exception:  # the database restarting
            inbox, outbox = {"?": 1}, {}
        left = sum(n for s, n in inbox.items() if s not in ("done", "failed")) + \
            sum(n for s, n in outbox.items() if s in ("pending", "sending"))
        if not left:
            return {f"inbox_{k}": v for k, v in inbox.items()} | {f"outbox_{k}": v for k, v in outbox.items()}
        if time.monotonic() > deadline:
            raise RuntimeError(f"not drained within {within:.0f} s: inbox {inbox}, outbox {outbox}")
        await asyncio.sleep(1.0)


# ── the counts ──


def delivery_counts(fake: BenchFake) -> dict[str, Any]:
    by = fake.by_content()
    repeats = Counter(path for (path, _, _), n in by.items() if n > 1 for _ in range(n - 1))
    calls = Counter(r.path for r in fake.requests)
    return {
        "calls": dict(calls), "faults_injected": dict(fake.injected),
        "delivered": sum(by.values()), "distinct_deliveries": len(by),
        "suppressed_by_duplicate_check": sum(r.effect == "duplicate" for r in fake.requests),
        "lost_answers_delivered": sum(r.fault == "lost_response" and r.effect == "delivered" for r in fake.requests),
        "repeats_by_path": dict(repeats), "over_rate_limit": dict(fake.over_limit),
    }


async def outbox_counts(db: str, shown: Counter[str]) -> dict[str, Any]:
    rows = await query(db, "SELECT key, status, attempts, payload, last_error FROM outbox")
    dead = Counter()
    dead_shown = unseen = 0
    for _key, status, _attempts, payload, error in rows:
        text = (js(payload) or {}).get("text", "")
        if status == "dead":
            if shown[text]:
                dead_shown += 1  # e.g. a response_url whose answer was lost: shown, then refused as used
            dead[(error or "")[:80]] += 1
        elif status == "sent" and not shown[text]:
            unseen += 1
    return {"outbox_rows": len(rows), "outbox_by_status": dict(Counter(r[1] for r in rows)),
            "outbox_attempts_max": max((r[2] for r in rows), default=0),
            "sent_not_at_fake": unseen, "dead_but_shown": dead_shown, "dead_reasons": dict(dead)}


async def inbox_counts(db: str, load: Load, unique: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await query(db, "SELECT dedup_key, status, error, payload FROM inbox")
    status = Counter(r[1] for r in rows)
    failed = Counter((r[2] or "")[:80] for r in rows if r[1] == "failed")
    counts = {"events": unique, "acknowledged": len(load.acked), "unacknowledged": load.unacked,
              "post_retries": load.retries, "inbox_rows": len(rows), "inbox_done": status.get("done", 0),
              "inbox_failed": status.get("failed", 0), "failed_reasons": dict(failed),
              "acknowledged_not_processed": len(load.acked) - status.get("done", 0) - status.get("failed", 0)}
    return counts, [js(r[3]) or {} for r in rows if r[1] in ("done", "failed")]


def text_of(event: dict[str, Any]) -> tuple[str, str, str, bool]:
    """(sender, chat id, text, in a group) of a stored message event."""
    sender = event.get("sender") or {}
    chat = event.get("chat") or {}
    return (str(sender.get("id", "")), str(chat.get("id", "")), str(event.get("text", "")),
            chat.get("type") == "group")


async def points_counts(db: str, events: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    """The ledger against a recount from the processed events: 1 point a message (5 a day), 5 a check-in (1)."""
    per: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        sender, _, text, group = text_of(e)
        if not group or not sender or sender in STAFF or text.startswith("/"):
            continue
        day = datetime.fromisoformat(str(e.get("time"))).astimezone(ZoneInfo(tz)).date().isoformat() \
            if e.get("time") else ""
        per[("message", f"{sender}|{day}")] += 1
        if text.lstrip("#").startswith("打卡"):
            per[("checkin", f"{sender}|{day}")] += 1
    caps = {"message": 5, "checkin": 1}
    expected = Counter()
    for (action, _), n in per.items():
        expected[action] += min(caps[action], n)
    ledger = dict(await query(db, "SELECT action, COUNT(*) FROM points_entry GROUP BY action"))
    mismatched = await query(db, "SELECT m.id FROM member m LEFT JOIN (SELECT member_id, SUM(points) AS s "
                                 "FROM points_entry GROUP BY member_id) p ON p.member_id = m.id "
                                 "WHERE m.points != COALESCE(p.s, 0)")
    return {"ledger": {a: ledger.get(a, 0) for a in ("message", "checkin")}, "recount": dict(expected),
            "totals_not_ledger": len(mismatched)}


async def alert_counts(db: str, events: list[dict[str, Any]], shown: Counter[str]) -> dict[str, Any]:
    hit_texts = Counter(text_of(e)[2] for e in events if text_of(e)[2] in STAFF_HITS)
    rows = await query(db, "SELECT msg_key, term, text, repeats FROM moderation_alert WHERE status != 'noted'")
    terms: dict[str, set[str]] = defaultdict(set)
    for _msg, term, text, _ in rows:
        terms[text].add(term)
    expected = sum(n * len(terms.get(t, ())) for t, n in hit_texts.items())
    raised = len(rows) + sum(r[3] for r in rows)
    queued = await query(db, "SELECT payload, status FROM outbox WHERE key LIKE 'moderation:alert:%'")
    texts = [str((js(p) or {}).get("text", "")) for p, _ in queued]
    return {"hit_events": sum(hit_texts.values()), "alerts": len(rows), "folded_repeats": raised - len(rows),
            "alerts_plus_repeats": raised, "hits_expected": expected,
            "alert_messages": len(texts), "alert_messages_shown": sum(min(shown[t], 1) for t in texts),
            "alert_messages_repeated": sum(max(shown[t] - 1, 0) for t in texts)}


def verdict(c: dict[str, Any]) -> list[str]:
    """The exactness checks that failed (empty: all held)."""
    bad = []
    if c["acknowledged"] != c["events"] or c["acknowledged_not_processed"] or c["inbox_rows"] != c["events"]:
        bad.append("acknowledged events not all processed")
    if c["sent_not_at_fake"] or c["outbox_by_status"].get("dead", 0) != c["dead_but_shown"]:
        bad.append("deliveries missing at the fake")
    if any(c["repeats_by_path"].get(p) for p in DUP_CHECKED + ONE_SHOT):
        bad.append("a delivery shown twice where WeCom's duplicate check or a response_url forbids it")
    if c["over_rate_limit"]:
        bad.append("a send past a documented rate limit")
    a = c["alerts"]
    if a["alerts_plus_repeats"] != a["hits_expected"] or a["alert_messages_shown"] != a["alert_messages"] \
            or a["alert_messages_repeated"]:
        bad.append("alerts not raised exactly once")
    p = c["points"]
    if p["ledger"] != {k: p["recount"].get(k, 0) for k in p["ledger"]} or p["totals_not_ledger"]:
        bad.append("points not counted exactly once")
    return bad


# ── runs ──


@dataclass
class Plan:
    label: str
    db: str
    replicas: int
    n: int
    rate: float
    kills: int
    fault_rate: float
    seed: int
    pg_dir: Path | None = None
    pg_restart: bool = False
    kinds: tuple[str, ...] | None = None
    timeout: float = 900.0


async def run_chaos(plan: Plan, fake: BenchFake, tmp: Path) -> dict[str, Any]:
    """One fault run; returns its counts with ``failed_checks`` (empty when every count is exact)."""
    rng = random.Random(plan.seed)
    posts = build_mix(plan.n, seed=plan.seed, tag=f"{plan.label[:2]}{plan.replicas}c{plan.seed}", fake=fake)
    unique = len({event_of(p) for p in posts})
    replicas = [Replica(plan.db, fake.url, tmp, f"{plan.label}-{k}", CHAOS_ENV) for k in range(plan.replicas)]
    post_s = len(posts) / plan.rate
    kill_at = sorted(rng.uniform(0.05, 0.9) * post_s for _ in range(plan.kills))
    pg_at = rng.uniform(0.3, 0.7) * post_s if plan.pg_restart else None
    fake.requests.clear()
    fake.by_user.clear()
    fake.injected.clear()
    fake.over_limit.clear()
    log: list[str] = []
    t0 = time.monotonic()
    try:
        for r in replicas:
            await asyncio.to_thread(r.start)
        fake.chaos(plan.fault_rate, seed=plan.seed, timeout_s=FAKE_TIMEOUT_S,
                   **({"kinds": plan.kinds} if plan.kinds else {}))
        load = Load()
        await asyncio.gather(post_steady([r.port for r in replicas], posts, plan.rate, load),
                             chaos_monkey(replicas[0], kill_at, pg_at, plan.pg_dir, log))
        posted_s = time.monotonic() - t0
        await wait_drained(plan.db, plan.timeout)
        drained_s = time.monotonic() - t0
    finally:
        fake.chaos(0)
        for r in replicas:
            r.stop()
    shown = Counter(text for (_, _, text), n in fake.by_content().items() for _ in range(n))
    counts, events = await inbox_counts(plan.db, load, unique)
    counts = {"run": plan.label, "replicas": plan.replicas, "posts": len(posts), "kills": len(kill_at),
              "pg_restarts": int(pg_at is not None), "fault_rate": plan.fault_rate,
              "posted_s": round(posted_s, 1), "drained_s": round(drained_s, 1), **counts}
    counts |= delivery_counts(fake)
    counts |= await outbox_counts(plan.db, shown)
    counts["alerts"] = await alert_counts(plan.db, events, shown)
    counts["points"] = await points_counts(plan.db, events, "Asia/Shanghai")
    counts["timeline"] = log
    counts["failed_checks"] = verdict(counts)
    return counts


async def soak(args: argparse.Namespace, fake: BenchFake, tmp: Path) -> dict[str, Any]:
    replica = Replica(f"sqlite:///{tmp}/soak.db", fake.url, tmp, "soak", {})
    n = int(args.rate * args.soak)
    posts = build_mix(n, seed=11, tag="soak", fake=fake)
    await asyncio.to_thread(replica.start)
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        start = time.monotonic()
        while True:
            samples.append((time.monotonic() - start, replica.rss_kb()))
            await asyncio.sleep(5)

    sampler = asyncio.create_task(sample())
    try:
        await post_steady([replica.port], posts, args.rate, Load())
        await wait_drained(f"sqlite:///{tmp}/soak.db", args.timeout)
    finally:
        sampler.cancel()
        end_rss = replica.rss_kb()
        replica.stop()
    warm = next((kb for t, kb in samples if t >= args.warmup), samples[-1][1])
    peak = max(kb for _, kb in samples)
    return {"run": "soak", "seconds": args.soak, "rate": args.rate, "events": n,
            "rss_start_mb": round(samples[0][1] / 1024, 1), "rss_after_warmup_mb": round(warm / 1024, 1),
            "rss_end_mb": round(end_rss / 1024, 1), "rss_peak_mb": round(peak / 1024, 1),
            "growth_after_warmup_pct": round((end_rss - warm) / warm * 100, 1),
            "rss_mb_every_minute": [round(kb / 1024, 1) for t, kb in samples if int(t) % 60 < 5]}


async def run(args: argparse.Namespace) -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="siyu-chaos-") as tmpdir, FakeThread() as fake:
        tmp = Path(tmpdir)
        if args.soak:
            result = await soak(args, fake, tmp)
            print(json.dumps(result, ensure_ascii=False), flush=True)
            return int(result["growth_after_warmup_pct"] >= 10)
        plans = [] if args.pg_only else [Plan("sqlite", f"sqlite:///{tmp}/chaos.db", 1, args.n, args.rate,
                                              args.kills, args.fault_rate, args.seed)]
        pg, pg_dir = args.pg, None
        if pg == "start":
            pg_dir = Path(tempfile.mkdtemp(prefix="siyu-chaos-pg-"))
            pg = start_pg(pg_dir)
        if pg:
            db = await fresh_pg(pg, "chaos")
            plans.append(Plan("postgresql", db, 2, args.n, args.rate, args.kills, args.fault_rate, args.seed,
                              pg_dir=pg_dir / "pg" if pg_dir else None, pg_restart=args.pg_restart and bool(pg_dir)))
        try:
            for plan in plans:
                counts = await run_chaos(plan, fake, tmp)
                print(json.dumps(counts, ensure_ascii=False, indent=1), flush=True)
                print(f"{plan.label}: " + ("every count exact" if not counts["failed_checks"]
                                           else "FAILED: " + "; ".join(counts["failed_checks"])), flush=True)
                failed += bool(counts["failed_checks"])
        finally:
            if pg_dir is not None:
                subprocess.run([str(REPO / "scripts" / "pg-test-server"), "stop", str(pg_dir / "pg")],  # noqa: ASYNC221
                               check=False)
                shutil.rmtree(pg_dir, ignore_errors=True)
    return int(failed > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="posts of the mix (default 10000)")
    ap.add_argument("--rate", type=float, default=100.0, help="posts per second (default 100)")
    ap.add_argument("--kills", type=int, default=5, help="SIGKILLs of serve while posting (default 5)")
    ap.add_argument("--fault-rate", type=float, default=0.3, help="share of WeCom calls failing (default 0.3)")
    ap.add_argument("--seed", type=int, default=13, help="seed of the kills and the faults")
    ap.add_argument("--pg", default="", help="PostgreSQL URL, or 'start' for scripts/pg-test-server "
                                               "(two replicas, the first one killed)")
    ap.add_argument("--pg-only", action="store_true", help="skip the SQLite run")
    ap.add_argument("--pg-restart", action="store_true", help="restart PostgreSQL once while posting (--pg start)")
    ap.add_argument("--soak", type=float, default=0, help="memory soak: post at --rate this many seconds, "
                                                          "no faults; print serve's RSS")
    ap.add_argument("--warmup", type=float, default=60.0, help="the soak's warm-up before the first RSS figure")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up waiting for the drain after this")
    sys.exit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
