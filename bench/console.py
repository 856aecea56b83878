"""Console benchmark: every page of /console on a large database, against a static file of the same server.

One run, one SQLite database (a fresh temporary file, or --sqlite PATH kept and reused):

  1. seed what bench/report.py seeds (MEMBERS customers, EVENTS ledger and message events — its ``seed``,
     imported), plus what the other pages read: compliance alerts, knowledge-base misses, live and closed
     handoffs, SOP runs and outbox rows (sent and a few dead); and for the member search Chinese names
     (one member in ten), nicknames (小王 …, one in a hundred), tags and notes;
  2. start the bot's web server in this process (every feature, no workers; start-up objects frozen out of
     the garbage collector as ``serve`` does) and sign in with a one-time link as an admin, as a browser would;
  3. request each page --requests times one after another, and a static file (console.css) as often, and
     print per page the first request's time, then p50, p99 and p99 ÷ the static file's p99 of the others.
     The first request of the overview's report part computes ``Insights.report`` for 30 days and the 30
     before; the others are within ``console.report_cache_s``. The misses page keeps its grouping while the
     misses are the same, so its first request is the one that groups them.

    .venv/bin/python bench/console.py                                   # 300,000 members, 1,000,000 events
    .venv/bin/python bench/console.py --members 30000 --events 100000   # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import NOW, chunks  # noqa: E402  (the report benchmark's data and clock)
from bench.report import seed as seed_report  # noqa: E402

TARGET_MS = 150.0


async def insert(app: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for part in chunks(iter(rows), 5000):
        async with app.db.session() as s:
            await s.execute(table.insert(), part)


async def seed_pages(app: Any, args: argparse.Namespace) -> dict[str, int]:
    """What the pages besides the report read, in proportion to the members."""
    from bot.compliance.store import ALERTS
    from bot.handoff.store import HANDOFFS
    from bot.knowledge.store import MISSES
    from bot.sop.store import RUNS
    from bot.storage.models import OutboxRow

    rng = random.Random(args.seed + 1)
    n_groups = max(1, args.members // 400)
    member = lambda: f"wm{int(args.members * rng.random() ** 2.2):07d}"  # noqa: E731
    alerts = []
    for i in range(max(100, args.members // 15)):  # 20,000 at full size, over 90 days
        at = NOW - timedelta(days=90) * rng.random()
        text = f"您好，加我微信吧，私下给您优惠 {i}"
        alerts.append({"dedup_key": f"bench:{i}", "msg_key": f"msg:{i}", "chat_id": f"wrGroup{i % n_groups:04d}",
                       "chat_name": f"禾屿茶友会{i % n_groups}群", "sender_id": f"staff{i % 40:02d}",
                       "sender_name": f"员工{i % 40}", "message_at": at, "created_at": at, "text": text,
                       "term": "加我微信", "category": "私下联系", "level": "review", "matched": "加我微信",
                       "span_start": 3, "span_end": 7, "stage": "exact", "context": [], "notified": [],
                       "status": rng.choice(("open", "open", "acked", "resolved")), "note": ""})
    await insert(app, ALERTS, alerts)
    questions = ("能开发票吗", "周末发货吗", "茶叶怎么保存", "有没有试用装", "可以寄到国外吗", "包装破了怎么办")
    misses = [{"text": f"{rng.choice(questions)}{i % 300}", "norm": f"q{i % 300}", "chat_id": "", "chat_type": "single",
               "member_id": member(), "member_name": "", "outcome": "none", "best_entry": "", "best_score": 0.2,
               "at": NOW - timedelta(days=30) * rng.random()} for i in range(max(100, args.members // 60))]
    await insert(app, MISSES, misses)
    handoffs = []
    for i in range(max(50, args.members // 30)):  # 10,000 at full size, the last 200 still live
        live = i >= max(50, args.members // 30) - 200
        at = NOW - (timedelta(hours=6) if live else timedelta(days=60)) * rng.random()
        mid = f"wm{i:07d}"
        handoffs.append({"open_key": mid if live else None, "member_id": mid, "member_name": f"成员{i}",
                         "chat_id": mid, "chat_type": "single", "reason": "request", "trigger": "转人工",
                         "text": "我要转人工", "status": "open" if live else "closed", "notified": [], "messages": [],
                         "follow_ups": 0, "opened_at": at, "hold_until": NOW + timedelta(days=1) if live else at,
                         "close_reason": "" if live else "closed"})
    await insert(app, HANDOFFS, handoffs)
    runs = [{"script_id": "newcomer", "version": "v1", "per": "group",
             "status": "running" if i < n_groups else "done", "chat_id": f"wrGroup{i % n_groups:04d}",
             "active_key": f"newcomer:wrGroup{i:04d}" if i < n_groups else None, "trigger": {},
             "anchor_at": NOW - timedelta(days=3), "created_at": NOW - timedelta(days=3)}
            for i in range(n_groups * 10)]
    await insert(app, RUNS, runs)
    outbox = [{"key": f"bench:{i}", "kind": "reply", "chat_id": f"wrGroup{i % n_groups:04d}", "destination": {},
               "payload": {"text": "好的"}, "status": "dead" if i % 2000 == 0 else "sent", "attempts": 1,
               "created_at": NOW - timedelta(days=7) * rng.random(), "next_attempt_at": NOW,
               "last_error": "errcode 81013: all recipients invalid" if i % 2000 == 0 else None}
              for i in range(max(1000, args.members // 3))]
    await insert(app, OutboxRow.__table__, outbox)
    return {"alerts": len(alerts), "misses": len(misses), "handoffs": len(handoffs), "sop_runs": len(runs),
            "outbox_rows": len(outbox)}


SURNAMES = "王李张刘陈杨黄赵周吴"
GIVEN = ("小明", "华", "伟", "芳", "娜", "静", "丽", "强", "磊", "小军", "秀英", "建国")
NOTES_TEXT = ("喜欢岩茶，月底生日", "想要礼盒装，送长辈", "问过团购价", "直播课第三期学员")
TAGS = ("岩茶爱好者", "直播课学员", "老客户", "团购", "VIP客户", "红茶")


async def seed_customers(app: Any, args: argparse.Namespace) -> dict[str, int]:
    """What the member search finds besides 成员N: one member in ten renamed to a Chinese name (王小明, 李华 …),
    one in a hundred to a nickname (小王, 小李 …), tags on one in twenty, a note on one in a hundred."""
    from sqlalchemy import bindparam, update

    from bot.tiers.store import MEMBER, NOTES
    from bot.tiers.store import TAGS as MEMBER_TAGS

    rng = random.Random(args.seed + 2)
    renamed = [{"mid": f"wm{i:07d}", "new_name": rng.choice(SURNAMES) + rng.choice(GIVEN)}
               for i in range(7, args.members, 10)]
    renamed += [{"mid": f"wm{i:07d}", "new_name": "小" + rng.choice(SURNAMES) + rng.choice(("", "", "同学", "老师"))}
                for i in range(3, args.members, 100)]
    for part in chunks(iter(renamed), 5000):
        async with app.db.session() as s:
            await s.execute(update(MEMBER).where(MEMBER.c.id == bindparam("mid"))
                            .values(name=bindparam("new_name")).execution_options(synchronize_session=False), part)
    tags = [{"member_id": f"wm{i:07d}", "tag": rng.choice(TAGS), "source": "operator", "added_at": NOW}
            for i in range(1, args.members, 20)]
    await insert(app, MEMBER_TAGS, tags)
    notes = [{"member_id": f"wm{i:07d}", "author_id": "op01", "author_name": "运营",
              "text": rng.choice(NOTES_TEXT), "at": NOW}
             for i in range(5, args.members, 100)]
    await insert(app, NOTES, notes)
    return {"renamed": len(renamed), "tags": len(tags), "notes": len(notes)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    from aiohttp import web
    from sqlalchemy import text

    from bot.access import ACCESS
    from bot.app import BotApp
    from bot.cli import freeze_startup_objects
    from bot.clock import FakeClock
    from bot.config import load_config
    from bot.senders.console import RecordingSender
    from bot.tiers import LADDER
    from bot.web import create_web_app

    tmp = tempfile.TemporaryDirectory(prefix="siyu-bench-console-")
    path = args.sqlite or tmp.name + "/bench.db"
    reuse = bool(args.sqlite) and Path(path).exists()  # noqa: ASYNC240 - once, before anything runs
    cfg = load_config(REPO / "config.example.toml", {"SIYU_DATABASE__URL": f"sqlite:///{path}",
                                                     "SIYU_LOG__LEVEL": "WARNING", "SIYU_BOT__ADMINS": '["admin01"]'})
    app = BotApp(cfg, sender=RecordingSender(), clock=FakeClock(NOW), run_workers=False)
    await app.start()
    app.get_ladder_rules = lambda: app.get(LADDER).rules  # type: ignore[attr-defined]  # what seed() reads
    out: dict[str, Any] = {"members": args.members, "events": args.events, "requests": args.requests}
    runner = None
    try:
        t0 = time.perf_counter()
        if not reuse:
            out["seeded"] = await seed_report(app, args)
        async with app.db.session() as s:
            done = (await s.execute(text("SELECT count(*) FROM moderation_alert"))).scalar_one()
        if not done:
            out["seeded_pages"] = await seed_pages(app, args)
        async with app.db.session() as s:
            tagged = (await s.execute(text("SELECT count(*) FROM member_tag"))).scalar_one()
        if not tagged:
            out["seeded_customers"] = await seed_customers(app, args)
        async with app.db.session() as s:
            await s.execute(text("ANALYZE"))
        out["seed_s"] = round(time.perf_counter() - t0, 1)
        freeze_startup_objects()  # as `serve` does once started: what start-up loaded leaves the GC's walks
        runner = web.AppRunner(create_web_app(app, manage_lifecycle=False), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await sign_in(app, ACCESS, http, base)
            async with app.db.read() as s:
                alert_id = (await s.execute(text("SELECT max(id) FROM moderation_alert"))).scalar_one()
            pages = [("overview", "/console/?span=30"), ("alerts", "/console/alerts"),
                     ("alert detail", f"/console/alerts/{alert_id}"), ("knowledge", "/console/knowledge"),
                     ("misses", "/console/knowledge/misses"), ("sop", "/console/sop"), ("moments", "/console/moments"),
                     ("members", "/console/members?q=成员12"), ("members, 1 character", "/console/members?q=王"),
                     ("members, 2 characters", "/console/members?q=小王"),
                     ("members, a tag", "/console/members?q=岩茶"),
                     ("members, an id's start", "/console/members?q=wm00012"),
                     ("member profile", "/console/members/wm0000001"),
                     ("handoffs", "/console/handoffs")]
            pages.append(("overview report", "/console/overview/report?span=30"))
            pages = [(name, url) for name, url in pages if not args.only or any(w in name for w in args.only)]
            static = await timings(http, base + "/console/static/console.css", args.requests)
            rows = {name: await timings(http, base + url, args.requests) for name, url in pages}
        s99 = pct(static[1:], 0.99)
        out["static"] = {"p50_ms": round(pct(static[1:], 0.5), 2), "p99_ms": round(s99, 2)}
        out["pages"] = {name: {"first_ms": round(v[0], 1), "p50_ms": round(pct(v[1:], 0.5), 1),
                               "p99_ms": round(pct(v[1:], 0.99), 1), "ratio": round(pct(v[1:], 0.99) / s99, 1),
                               "mean_ms": round(statistics.fmean(v[1:]), 1)} for name, v in rows.items()}
        return out
    finally:
        if runner is not None:
            await runner.cleanup()
        await app.stop()
        tmp.cleanup()


async def get(http: Any, url: str) -> None:
    async with http.get(url, allow_redirects=False) as r:
        await r.read()
        if r.status != 200:
            raise SystemExit(f"{url}: HTTP {r.status}")


async def timings(http: Any, url: str, n: int) -> list[float]:
    """The first request's time (templates compiled, nothing kept yet), then ``n`` more."""
    t0 = time.perf_counter()
    await get(http, url)
    out = [(time.perf_counter() - t0) * 1000]
    for _ in range(n):
        t0 = time.perf_counter()
        await get(http, url)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def sign_in(app: Any, access_key: Any, http: Any, base: str) -> None:
    import re

    async with app.db.session() as s:
        token = await app.get(access_key).invite(s, "admin01", by="bench")
    async with http.get(f"{base}/console/login/link/{token}") as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    async with http.post(f"{base}/console/login/link/{token}", data={"csrf": csrf}, allow_redirects=False) as r:
        if r.status != 302 or r.headers["Location"] != "/console/":
            raise SystemExit(f"sign-in failed: HTTP {r.status}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=300_000, help="customers to seed (default 300,000)")
    ap.add_argument("--events", type=int, default=1_000_000, help="ledger and message events (default 1,000,000)")
    ap.add_argument("--requests", type=int, default=100, help="requests per page (default 100)")
    ap.add_argument("--sqlite", metavar="PATH", help="keep the SQLite database in PATH (reused when it exists: "
                    "a database bench/report.py --sqlite left gets the pages' rows added once)")
    ap.add_argument("--seed", type=int, default=16, help="random seed of the generated data")
    ap.add_argument("--only", nargs="+", metavar="WORD", help="only the pages whose name holds one of these words")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    print(f"sqlite: {res['members']:,} members, {res['events']:,} events; {res['requests']} requests per page; "
          f"seeding {res['seed_s']} s")
    print(f"  {'page':<24} {'first':>10} {'p50':>9} {'p99':>9}  p99 ÷ static p99")
    print(f"  {'static file':<24} {'':>10} {res['static']['p50_ms']:>7.2f}ms {res['static']['p99_ms']:>7.2f}ms")
    for name, v in res["pages"].items():
        flag = "" if v["p99_ms"] < TARGET_MS else f"  over {TARGET_MS:.0f} ms"
        print(f"  {name:<24} {v['first_ms']:>8.1f}ms {v['p50_ms']:>7.1f}ms {v['p99_ms']:>7.1f}ms  "
              f"{v['ratio']:>6.1f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
