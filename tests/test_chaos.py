"""The fault suite, short: ~300 callbacks of the e2e mix while serve is SIGKILLed twice and the fake WeCom
fails 30 % of the calls; every count must be exact (bench/chaos.py runs the long version).

On the PostgreSQL run of the suite two replicas serve and the first one is the one killed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos import Plan, run_chaos
from bench.e2e import FakeThread
from bot.testing.database import on_postgres
from bot.testing.fake_wecom import FAULT_KINDS

pytestmark = pytest.mark.slow

# 45009 makes the sender wait out WeCom's 60-second minute block; the long run (bench/chaos.py) has it.
KINDS = tuple(k for k in FAULT_KINDS if k != "rate_limit")


async def test_kills_and_failing_wecom_lose_nothing_and_repeat_nothing(db_url: str, tmp_path: Path) -> None:
    replicas = 2 if on_postgres() else 1
    plan = Plan("pg" if on_postgres() else "sqlite", db_url, replicas, n=300, rate=30.0, kills=2,
                fault_rate=0.3, seed=5, kinds=KINDS, timeout=300.0)
    with FakeThread() as fake:
        c = await run_chaos(plan, fake, tmp_path)
    print(json.dumps(c, ensure_ascii=False, indent=1))  # shown when an assert fails

    assert c["kills"] == 2
    assert sum(c["faults_injected"].values()) > 0.2 * sum(c["calls"].get(p, 0) for p in ("message/send",
                                                                                          "aibot/response"))
    # every acknowledged event processed
    assert c["acknowledged"] == c["events"] == c["inbox_rows"] > 250
    assert c["inbox_done"] + c["inbox_failed"] == c["acknowledged"]
    # every delivery shown once: none missing, none repeated, none past a rate limit
    assert c["sent_not_at_fake"] == 0
    assert c["outbox_by_status"].get("dead", 0) == c["dead_but_shown"]
    assert c["outbox_by_status"].get("pending", 0) == 0
    assert c["repeats_by_path"] == {}
    assert c["delivered"] == c["distinct_deliveries"] > 100
    assert c["over_rate_limit"] == {}
    # alerts once, points once
    a = c["alerts"]
    assert a["alerts_plus_repeats"] == a["hits_expected"]
    assert a["alert_messages_shown"] == a["alert_messages"]
    assert a["alert_messages_repeated"] == 0
    p = c["points"]
    assert p["ledger"] == p["recount"]
    assert p["ledger"]["message"] > 50
    assert p["totals_not_ledger"] == 0
    assert c["failed_checks"] == []
