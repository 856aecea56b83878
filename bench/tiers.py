"""Tiers benchmark: ledger events applied per second with upgrade evaluation, against plain INSERTs.

One run, one database (a fresh SQLite file, or the PostgreSQL database given with --db):

  1. seed MEMBERS members (bulk insert, not timed as part of the ratio);
  2. generate EVENTS ledger events over 60 days (group messages, 打卡, homework, referrals, purchases,
     operator grants; the shipped tiers.yaml with its daily caps);
  3. baseline: the same ledger rows as plain single-row INSERTs into points_entry, in transactions of
     --batch rows (then deleted again);
  4. siyu: every event through ``Ladder.award`` / ``Ladder.purchase`` — member row lock, duplicate and
     daily-cap checks, the entry, running totals, re-evaluation, and for each tier change its
     TierChange row, member/operator messages, mark_tag and the tier_changed event — in transactions of
     --batch events; a member's own doing first refreshes them as the message handler does
     (``Ladder.refresh``: their row, membership and the day's counts in one statement, then ``joined``);
  5. the daily review (what time alone changes: silence, days since join), then a full recompute
     from the ledger, which must find no difference from the incremental state.

    .venv/bin/python bench/tiers.py                                   # 300,000 members, 1,000,000 events
    .venv/bin/python bench/tiers.py --members 30000 --events 100000   # a quicker look
    .venv/bin/python bench/tiers.py --db postgresql://user@host/db    # an empty database it may fill
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
DAYS = 60
# Share of each kind of event (the rest are group messages).
MIX = (("checkin", 0.12), ("homework", 0.03), ("grant", 0.02), ("referral", 0.01), ("purchase", 0.005))


def events(n_members: int, n_events: int, seed: int) -> Iterator[tuple[int, str, str, datetime]]:
    """(n, action, member id, time) in time order."""
    rng = random.Random(seed)
    step = timedelta(days=DAYS) / n_events
    for n in range(n_events):
        r = rng.random()
        action = "message"
        for name, share in MIX:
            if r < share:
                action = name
                break
            r -= share
        # A few members do most of the talking, as in real groups.
        who = int(n_members * rng.random() ** 2.2)
        yield n, action, f"wm{who:07d}", START + step * n


def chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import delete, func, select, text

    from bot.app import BotApp
    from bot.clock import FakeClock
    from bot.config import load_config
    from bot.effects import Effects
    from bot.events import Actor, Chat
    from bot.senders.console import RecordingSender
    from bot.tiers import LADDER
    from bot.tiers.models import TierChange
    from bot.tiers.store import LEDGER, MEMBER, MEMBERSHIP
    from handlers import feature

    tmp = tempfile.TemporaryDirectory(prefix="siyu-bench-tiers-")
    url = args.db or f"sqlite:///{tmp.name}/bench.db"
    env = {"SIYU_DATABASE__URL": url, "SIYU_LOG__LEVEL": "WARNING", "SIYU_TIERS__NOTIFY_USERS": '["op01"]'}
    cfg = load_config(REPO / "config.example.toml", env)
    clock = FakeClock(START)
    app = BotApp(cfg, sender=RecordingSender(), clock=clock, features=[feature("admin"), feature("tiers")],
                 run_workers=False)
    await app.start()
    ladder = app.get(LADDER)
    lowest = ladder.rules.lowest.id
    groups = [Chat(id=f"wrGroup{g:04d}", type="group", name=f"禾屿茶友会{g}群")
              for g in range(max(1, args.members // 400))]
    out: dict[str, Any] = {"database": app.db.dialect, "members": args.members, "events": args.events,
                           "batch": args.batch}
    try:
        t0 = time.perf_counter()
        for ids in chunks(iter(range(args.members)), 5000):
            rows = [{"id": f"wm{i:07d}", "name": f"成员{i}", "staff": False, "joined_at": START, "source_state": "",
                     "tier": lowest, "tier_since": START, "points": 0, "messages": 0, "checkins": 0, "homework": 0,
                     "referrals": 0, "purchases": 0, "spend_cents": 0, "last_active_at": START,
                     "last_chat_id": groups[i % len(groups)].id} for i in ids]
            ms = [{"chat_id": groups[i % len(groups)].id, "member_id": f"wm{i:07d}", "joined_at": START,
                   "join_scene": "qrcode"} for i in ids]
            async with app.db.session() as s:
                await s.execute(MEMBER.insert(), rows)
                await s.execute(MEMBERSHIP.insert(), ms)
        out["seed_s"] = round(time.perf_counter() - t0, 2)

        # ── baseline: the same ledger rows, plain INSERTs ──
        day = ladder.local_day
        t0 = time.perf_counter()
        for batch in chunks(events(args.members, args.events, args.seed), args.batch):
            async with app.db.session() as s:
                for n, action, who, at in batch:
                    await s.execute(LEDGER.insert().values(
                        member_id=who, action=action, points=1, amount_cents=0, reason="", chat_id="",
                        source_event=f"base:{n}", day=day(at), at=at))
        base_s = time.perf_counter() - t0
        async with app.db.session() as s:
            await s.execute(delete(LEDGER))

        # ── siyu: every event through the ladder ──
        t0 = time.perf_counter()
        for batch in chunks(events(args.members, args.events, args.seed), args.batch):
            clock.set(batch[-1][3])
            async with app.db.session() as s:
                fx = Effects(app, s, "bench")
                for n, action, who, at in batch:
                    chat = groups[int(who[2:]) % len(groups)]
                    if action == "purchase":
                        await ladder.purchase(s, fx, who, 9900 + n % 5 * 10000, sku="正山小种", recorded_by="op01",
                                              source=f"order:{n}", at=at)
                    elif action == "grant":
                        await ladder.award(s, fx, who, "grant", source_event=f"grant:{n}", at=at, points=10,
                                           reason="活动奖励")
                    elif action == "referral":
                        await ladder.award(s, fx, who, "referral", source_event=f"referral:{n}", at=at, chat=chat)
                    else:  # what the group-message handler does: refresh the member, their membership, award
                        seen = await ladder.refresh(s, Actor(id=who), at, chat=chat, active=True, actions=(action,))
                        await ladder.joined(s, chat, Actor(id=who), at, scene="other", inviter=None, seen=seen)
                        await ladder.award(s, fx, who, action, source_event=f"{action}:{n}", at=at, chat=chat,
                                           seen=seen)
        siyu_s = time.perf_counter() - t0

        # The daily review applies what time alone changes (silence, days since join) to everyone.
        t0 = time.perf_counter()
        async with app.db.session() as s:
            reviewed = await ladder.reevaluate_all(s, Effects(app, s, "bench-review"), clock.now())
        review_s = time.perf_counter() - t0

        async with app.db.read() as s:
            entries = (await s.execute(select(func.count()).select_from(LEDGER))).scalar_one()
            changes = (await s.execute(select(func.count()).select_from(TierChange.__table__))).scalar_one()
            per_tier = dict((await s.execute(select(MEMBER.c.tier, func.count()).group_by(MEMBER.c.tier))).all())
            outbox = (await s.execute(text("SELECT count(*) FROM outbox"))).scalar_one()

        t0 = time.perf_counter()
        async with app.db.session() as s:
            diffs = await ladder.recompute(s, None, clock.now(), apply=False)
        recompute_s = time.perf_counter() - t0

        out.update({
            "baseline_insert_per_s": round(args.events / base_s),
            "applied_per_s": round(args.events / siyu_s),
            "ratio": round(base_s / siyu_s, 3),
            "baseline_s": round(base_s, 1), "applied_s": round(siyu_s, 1),
            "ledger_entries": entries, "capped_or_duplicate": args.events - entries,
            "tier_changes": changes, "outbox_rows": outbox, "members_per_tier": per_tier,
            "daily_review_s": round(review_s, 1), "daily_review_changes": reviewed,
            "recompute_s": round(recompute_s, 1), "recompute_differences": len(diffs),
        })
        return out
    finally:
        await app.stop()
        tmp.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=300_000, help="members to seed (default 300,000)")
    ap.add_argument("--events", type=int, default=1_000_000, help="ledger events to apply (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=500, help="events per transaction, both paths (default 500)")
    ap.add_argument("--db", help="PostgreSQL URL of an empty database (default: a temporary SQLite file)")
    ap.add_argument("--seed", type=int, default=11, help="random seed of the generated events")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return 0
    print(f"database {res['database']}: {res['members']:,} members, {res['events']:,} events, "
          f"{res['batch']} per transaction (seeding took {res['seed_s']} s)")
    print(f"  plain ledger INSERTs   {res['baseline_insert_per_s']:>9,} /s   ({res['baseline_s']} s)")
    print(f"  applied with upgrades  {res['applied_per_s']:>9,} /s   ({res['applied_s']} s)   "
          f"ratio {res['ratio']:.3f} of the plain INSERTs")
    print(f"  ledger entries {res['ledger_entries']:,} (capped {res['capped_or_duplicate']:,}), "
          f"tier changes {res['tier_changes']:,}, outbox rows {res['outbox_rows']:,}")
    print(f"  members per tier {res['members_per_tier']}")
    print(f"  daily review of everyone {res['daily_review_s']} s ({res['daily_review_changes']:,} tier changes "
          "from silence / days since join)")
    print(f"  full recompute {res['recompute_s']} s, differences from the incremental state: "
          f"{res['recompute_differences']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
