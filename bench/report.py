"""Report benchmark: ``siyu report`` for 30 days over a large database, against plain ``SELECT count(*)`` scans.

One run, one database (a fresh SQLite file, or the empty PostgreSQL database given with --pg):

  1. seed MEMBERS customers (joined over the year before), one group membership each (a tenth by
     invitation), a tier history (upward and some downward changes), EVENTS events over the 180 days up to
     today — group messages (each a ledger row and a count in member_activity, as the message handler
     writes them), check-ins, homework, referrals, purchases — and the knowledge base's daily outcomes;
  2. baseline: ``SELECT count(*)`` of every table the report reads (member, group_membership,
     points_entry, member_activity, purchase, tier_change, kb_outcome_day), warm;
  3. the report: ``Insights.report`` for the 30 days up to today and the 30 before (what ``siyu report``
     and ``/stats 30天`` run; the two periods are read at the same time, each on its own connection), warm,
     best of --repeat; then the same for one group (``--group``), and each period's figures alone (the CPU
     time of each connection's share); then once more, the scan and the report, each with a 5 ms ticker on
     the event loop: the longest it was late is how long the report held the loop that serves callbacks.

With --sqlite PATH or --pg URL, a database an earlier run filled is reused as it is (seed once, measure
many times); --profile prints the wall and CPU time spent in each statement (statements of the two
periods overlap, so their times add up to more than the report's).

    .venv/bin/python bench/report.py                                  # 300,000 members, 1,000,000 events
    .venv/bin/python bench/report.py --members 30000 --events 100000  # a quicker look
    .venv/bin/python bench/report.py --pg postgresql://user@host/db   # a database it may fill (or filled before)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
EVENT_DAYS = 180
JOIN_DAYS = 365
MIX = (("checkin", 0.12), ("homework", 0.03), ("referral", 0.01), ("purchase", 0.005))  # the rest: messages
TABLES = ("member", "group_membership", "points_entry", "member_activity", "purchase", "tier_change",
          "kb_outcome_day")


def chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed(app: Any, args: argparse.Namespace) -> dict[str, int]:
    from bot.knowledge.store import OUTCOMES
    from bot.tiers.store import ACTIVITY, CHANGES, GROUP, LEDGER, MEMBER, MEMBERSHIP, PURCHASES

    rng = random.Random(args.seed)
    tz = app.config.bot.tz
    tiers = [t.id for t in app.get_ladder_rules().tiers]
    n_groups = max(1, args.members // 400)
    groups = [f"wrGroup{g:04d}" for g in range(n_groups)]
    joined = [NOW - timedelta(days=JOIN_DAYS) * rng.random() for _ in range(args.members)]

    def day(at: datetime) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d")

    async def insert(table: Any, rows: list[dict[str, Any]]) -> None:
        for part in chunks(iter(rows), 5000):
            async with app.db.session() as s:
                await s.execute(table.insert(), part)

    await insert(GROUP, [{"chat_id": g, "name": f"禾屿茶友会{i}群", "member_count": 0, "created_at": NOW
                          - timedelta(days=JOIN_DAYS)} for i, g in enumerate(groups)])
    members, memberships, changes = [], [], []
    for i in range(args.members):
        mid, at = f"wm{i:07d}", joined[i]
        invited = rng.random() < 0.1
        inviter = f"wm{rng.randrange(args.members):07d}" if invited else None
        # a tier history: up the ladder a few steps, sometimes back down once
        tier, steps, t = 0, rng.choices((0, 1, 2, 3, 4), (50, 25, 12, 10, 3))[0], at
        for _ in range(steps):
            t = t + timedelta(days=rng.random() * 40)
            if t >= NOW:
                break
            changes.append({"member_id": mid, "from_tier": tiers[tier], "to_tier": tiers[tier + 1], "direction": "up",
                            "rule": "points", "at": t})
            tier += 1
        if tier and rng.random() < 0.1 and (t := t + timedelta(days=30)) < NOW:
            changes.append({"member_id": mid, "from_tier": tiers[tier], "to_tier": tiers[0], "direction": "down",
                            "rule": "inactive", "at": t})
            tier = 0
        members.append({"id": mid, "name": f"成员{i}", "staff": False, "joined_at": at,
                        "source_state": "douyin" if rng.random() < 0.05 else "", "inviter_id": inviter,
                        "tier": tiers[tier], "tier_since": at, "points": 0, "messages": 0, "checkins": 0,
                        "homework": 0, "referrals": 0, "purchases": 0, "spend_cents": 0, "last_active_at": None})
        memberships.append({"chat_id": groups[i % n_groups], "member_id": mid, "joined_at": at,
                            "join_scene": "invite" if invited else "qrcode", "inviter_id": inviter})
    await insert(MEMBER, members)
    await insert(MEMBERSHIP, memberships)
    await insert(CHANGES, changes)

    activity: Counter[tuple[str, str, str]] = Counter()
    purchases = 0
    ledger: list[dict[str, Any]] = []
    buys: list[dict[str, Any]] = []
    step = timedelta(days=EVENT_DAYS) / args.events
    start = NOW - timedelta(days=EVENT_DAYS)
    for n in range(args.events):
        r, action = rng.random(), "message"
        for name, share in MIX:
            if r < share:
                action = name
                break
            r -= share
        who = int(args.members * rng.random() ** 2.2)  # a few members do most of the talking
        at = max(start + step * n, joined[who])
        mid, chat, d = f"wm{who:07d}", groups[who % n_groups], day(at)
        cents = 9900 + n % 5 * 10000 if action == "purchase" else 0
        ledger.append({"member_id": mid, "action": action, "points": 1, "amount_cents": cents, "reason": "",
                       "source_event": f"{action}:{n}", "chat_id": chat, "day": d, "at": at})
        if action == "message":
            activity[(d, chat, mid)] += 1
        if action == "purchase":
            purchases += 1
            buys.append({"member_id": mid, "amount_cents": cents, "sku": "正山小种", "recorded_by": "op01",
                         "source": f"order:{n}", "at": at})
        if len(ledger) >= 20000:
            await insert(LEDGER, ledger)
            ledger = []
    await insert(LEDGER, ledger)
    await insert(PURCHASES, buys)
    await insert(ACTIVITY, [{"day": d, "chat_id": c, "member_id": m, "messages": k}
                            for (d, c, m), k in activity.items()])
    outcomes = [{"day": day(start + timedelta(days=i)), "chat_id": g, "outcome": o, "count": rng.randrange(1, 9)}
                for i in range(EVENT_DAYS) for g in groups[:50] for o in ("answered", "suggested", "missed")]
    await insert(OUTCOMES, outcomes)
    return {"groups": n_groups, "tier_changes": len(changes), "purchases": purchases,
            "member_activity_rows": len(activity)}


async def seeded(app: Any) -> dict[str, int]:
    """What an earlier run seeded (the database given is reused as it is)."""
    from sqlalchemy import text

    async with app.db.read() as s:
        def count(sql: str) -> Any:
            return s.execute(text(sql))
        return {"groups": (await count("SELECT count(*) FROM member_group")).scalar_one(),
                "tier_changes": (await count("SELECT count(*) FROM tier_change")).scalar_one(),
                "purchases": (await count("SELECT count(*) FROM purchase")).scalar_one(),
                "member_activity_rows": (await count("SELECT count(*) FROM member_activity")).scalar_one()}


async def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """(best wall seconds, best CPU seconds of this process — its database threads included, result)."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = await fn()
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return best, cpu, out


async def ticking(fn: Any) -> tuple[Any, float]:
    """(fn's result, the longest the event loop went past a 5 ms sleep's deadline meanwhile, in ms): how
    long fn held the loop that serves callbacks and pages."""
    worst, done = 0.0, False

    async def tick() -> None:
        nonlocal worst
        while not done:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t0 - 0.005)

    ticker = asyncio.create_task(tick())
    try:
        return await fn(), worst * 1000
    finally:
        done = True
        await ticker


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import text

    from bot.app import BotApp
    from bot.clock import FakeClock
    from bot.config import load_config
    from bot.insights import INSIGHTS
    from bot.insights.period import local_today, period_of_days
    from bot.senders.console import RecordingSender
    from bot.tiers import LADDER
    from handlers import feature

    tmp = tempfile.TemporaryDirectory(prefix="siyu-bench-report-")
    url = args.pg or f"sqlite:///{args.sqlite or tmp.name + '/bench.db'}"
    cfg = load_config(REPO / "config.example.toml", {"SIYU_DATABASE__URL": url, "SIYU_LOG__LEVEL": "WARNING"})
    app = BotApp(cfg, sender=RecordingSender(), clock=FakeClock(NOW), run_workers=False,
                 features=[feature("admin"), feature("tiers"), feature("insights")])
    await app.start()
    app.get_ladder_rules = lambda: app.get(LADDER).rules  # type: ignore[attr-defined]
    out: dict[str, Any] = {"database": app.db.dialect, "members": args.members, "events": args.events}
    try:
        t0 = time.perf_counter()
        async with app.db.read() as s:
            reuse = (await s.execute(text("SELECT count(*) FROM member"))).scalar_one() > 0
        out.update(await seeded(app) if reuse else await seed(app, args))
        out["seed_s"] = round(time.perf_counter() - t0, 1)
        if app.db.is_sqlite:
            async with app.db.session() as s:
                await s.execute(text("ANALYZE"))
        else:
            async with app.db.connection() as c:
                await c.execute(text("ANALYZE"))

        async def scan() -> dict[str, int]:
            async with app.db.read() as s:
                return {t: (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}

        insights = app.get(INSIGHTS)
        period = period_of_days(local_today(NOW, cfg.bot.tz), 30, cfg.bot.tz)

        async def report(group: str | None = None) -> dict[str, Any]:
            return await insights.report(period, group)

        scan_s, scan_cpu, counts = await timed(scan, args.repeat)
        if args.profile:
            profile(insights.store)
        report_s, report_cpu, r = await timed(report, args.repeat)
        if args.profile:
            profile(insights.store, off=True)
        group_s, group_cpu, _ = await timed(lambda: report("wrGroup0001"), args.repeat)

        async def alone(p: Any) -> dict[str, Any]:  # one period by itself: what each of the two connections does
            async with app.db.read() as s:
                return await insights.figures(s, p, None)

        period_cpu = [(await timed(lambda p=p: alone(p), args.repeat))[1] for p in (period, period.previous())]
        _, scan_stall = await ticking(scan)
        _, report_stall = await ticking(report)
        out.update({
            "rows": counts, "scan_s": round(scan_s, 3), "report_s": round(report_s, 3),
            "report_group_s": round(group_s, 3), "ratio": round(report_s / scan_s, 2),
            "scan_cpu_s": round(scan_cpu, 3), "report_cpu_s": round(report_cpu, 3),
            "report_group_cpu_s": round(group_cpu, 3), "cpu_ratio": round(report_cpu / max(scan_cpu, 1e-6), 2),
            "period_cpu_s": [round(c, 3) for c in period_cpu],
            "loop_stall_ms": {"scan": round(scan_stall, 1), "report": round(report_stall, 1)},
            "sample": {"users.new": r["users"]["new"], "users.total": r["users"]["total"],
                       "behaviour.active": r["behaviour"]["active"], "behaviour.messages": r["behaviour"]["messages"],
                       "behaviour.silent": r["behaviour"]["silent"], "deals.purchases": r["deals"]["purchases"],
                       "funnel": [s["members"] for s in r["conversion"]["funnel"]]},
        })
        return out
    finally:
        await app.stop()
        tmp.cleanup()


SPENT: Counter[str] = Counter()
SPENT_CPU: Counter[str] = Counter()
WRAPPED: set[str] = set()


def profile(store: Any, off: bool = False) -> None:
    """Time every statement method of the store (--profile): wall and CPU seconds of the process, summed
    over the timed runs of the whole-bot report; ``off``: stop timing."""
    if off:
        for name in [n for n in vars(store) if n in SPENT or n in WRAPPED]:
            delattr(store, name)
        return
    for name in dir(store):
        fn = getattr(store, name)
        if name.startswith("_") or not asyncio.iscoroutinefunction(fn):
            continue

        def wrap(fn: Any = fn, name: str = name) -> Any:
            async def timed_call(*a: Any, **kw: Any) -> Any:
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    return await fn(*a, **kw)
                finally:
                    SPENT[name] += time.perf_counter() - t0
                    SPENT_CPU[name] += time.process_time() - c0
            return timed_call

        setattr(store, name, wrap())
        WRAPPED.add(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=300_000, help="customers to seed (default 300,000)")
    ap.add_argument("--events", type=int, default=1_000_000, help="ledger and message events (default 1,000,000)")
    ap.add_argument("--pg", help="PostgreSQL URL of a database to fill, or one an earlier run filled (reused as it "
                    "is); default: a temporary SQLite file")
    ap.add_argument("--sqlite", metavar="PATH", help="keep the SQLite database in PATH (reused when an earlier run "
                    "filled it)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each, the best counts (default 3)")
    ap.add_argument("--seed", type=int, default=16, help="random seed of the generated data")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--profile", action="store_true", help="also print the time spent in each statement")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    if args.profile:
        print(f"  {'statement (summed over the runs)':<34} {'wall':>8} {'CPU':>8}", file=sys.stderr)
        for name, spent in SPENT.most_common():
            print(f"  {name:<34} {spent:7.3f}s {SPENT_CPU[name]:7.3f}s", file=sys.stderr)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    print(f"database {res['database']}: {res['members']:,} members, {res['events']:,} events "
          f"({res['member_activity_rows']:,} member_activity rows, {res['tier_changes']:,} tier changes, "
          f"{res['purchases']:,} purchases; seeding took {res['seed_s']} s)")
    print(f"  {'':34} {'wall':>8} {'CPU':>8}")
    print(f"  SELECT count(*) of the {len(TABLES)} tables   {res['scan_s']:>7.3f}s {res['scan_cpu_s']:>7.3f}s")
    print(f"  report, 30 days + the 30 before  {res['report_s']:>7.3f}s {res['report_cpu_s']:>7.3f}s   "
          f"ratio {res['ratio']} (CPU {res['cpu_ratio']}) of the scan")
    print(f"  the same for one group           {res['report_group_s']:>7.3f}s {res['report_group_cpu_s']:>7.3f}s")
    print(f"  each period alone (CPU; the report reads the two at once, on two connections): "
          f"{res['period_cpu_s'][0]:.3f}s, {res['period_cpu_s'][1]:.3f}s")
    print(f"  the event loop's longest stall while the report computes: {res['loop_stall_ms']['report']} ms "
          f"(while the count(*) scan runs: {res['loop_stall_ms']['scan']} ms)")
    print(f"  {res['sample']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
