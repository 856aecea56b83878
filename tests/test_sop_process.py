"""A real serve process killed with SIGKILL in the middle of running SOP steps: every step is sent, none twice."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import normalise_db_url
from bot.sop.models import SopRun, SopStep
from bot.storage.db import Database
from bot.storage.models import OutboxRow
from tests.test_process import Server

pytestmark = pytest.mark.slow

SCRIPT = """\
id: crash-check
name: 进群两句话
trigger: member_joined
where: {groups: ["*"]}
per: member
quiet_hours: "off"
steps:
  - {id: hello, at: "+0m", via: reply, text: "欢迎 {{ member.name }}"}
  - {id: rules, at: "+0m", via: reply, text: "{{ member.name }}，群规请看公告"}
"""
MEMBERS = 150
CONCURRENCY = 4
BATCH = 10  # outbox.batch_size: a batch's outcomes are recorded together, after its sends


def joined(n: int) -> dict[str, object]:
    return {"id": f"join-{n}", "type": "member_joined", "time": int(time.time()),
            "chat": {"id": f"wrGroup{n}", "type": "group", "name": f"茶友{n}群"},
            "member": {"id": f"wmMember{n}", "name": f"成员{n}"}, "inviter": None, "scene": "qrcode"}


def sop_keys(server: Server) -> list[str]:
    return [str(d["key"]) for d in server.deliveries() if str(d["key"]).startswith("sop:")]


async def test_sigkill_mid_run_sends_every_step_and_no_step_twice(db_url: str, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "crash-check.yaml").write_text(SCRIPT, encoding="utf-8")
    env = {"SIYU_SOP__DIR": str(scripts), "SIYU_SOP__LEASE_S": "2", "SIYU_OUTBOX__LEASE_S": "2",
           "SIYU_INBOX__LEASE_S": "2", "SIYU_MOMENTS__ENABLED": "false", "SIYU_BOT__PLUGINS": "[]",
           "SIYU_OUTBOX__CONCURRENCY": str(CONCURRENCY), "SIYU_OUTBOX__BATCH_SIZE": str(BATCH)}
    first = Server(db_url, tmp_path, **env)
    second: Server | None = None
    try:
        posted = 0
        while posted < MEMBERS and len(sop_keys(first)) < 40:  # kill while joins still arrive and steps run
            assert first.post(joined(posted)) == {"accepted": True, "duplicate": False}
            posted += 1
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        before = sop_keys(first)
        assert posted < MEMBERS and len(before) < 2 * posted, "nothing was in flight when the process died"

        second = Server(db_url, tmp_path, **env)
        for n in range(posted, MEMBERS):  # the rest arrive at the replica that is up, as WeCom retries them
            assert second.post(joined(n)) == {"accepted": True, "duplicate": False}
        second.wait_for(lambda: len(set(before) | set(sop_keys(second))) >= 2 * MEMBERS, within=90)
        await asyncio.sleep(3)  # past every lease: nothing more may arrive
        after = sop_keys(second)
    finally:
        for s in (first, second):
            if s is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()

    # One run per member (their ids are the database's: a PostgreSQL sequence skips the ids of the
    # transactions the killed process had open), each of its steps sent, nothing else.
    db = Database(normalise_db_url(db_url, tmp_path))
    try:
        async with db.read() as s:
            runs = (await s.execute(select(SopRun.id, SopRun.member_id))).all()
            states = dict((await s.execute(select(SopStep.state, func.count()).group_by(SopStep.state))).all())
            rows = (await s.execute(select(OutboxRow.key, OutboxRow.status)
                                    .where(OutboxRow.key.like("sop:%")))).all()
    finally:
        await db.dispose()
    assert sorted(m for _, m in runs) == sorted(f"wmMember{n}" for n in range(MEMBERS))
    expected = {f"sop:{run}:{step}:0" for run, _ in runs for step in ("hello", "rules")}
    assert set(before) | set(after) == expected
    assert states == {"done": 2 * MEMBERS}
    assert sorted(k for k, _ in rows) == sorted(expected) and {st for _, st in rows} == {"sent"}
    # A delivery printed twice can only be one of the batch the killed process had in hand when it died
    # (printed, its outcome not yet recorded): at most one outbox batch, and never within one process.
    # The console sender prints again; the WeCom sender's message/send and appchat/send carry WeCom's
    # duplicate check, which shows such a repeat once (tests/test_hardening_outbox.py).
    printed = collections.Counter(before + after)
    twice = [k for k, c in printed.items() if c > 1]
    assert len(before) == len(set(before)) and len(after) == len(set(after))
    assert len(twice) <= BATCH and all(k in before for k in twice)
