"""Helpers for the SOP and Moments tests: script directories, bots on them, and what the database holds."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.senders.base import Delivery, SendResult
from bot.senders.console import RecordingSender
from bot.sop.models import MomentPost, SopRun, SopStep
from bot.storage.models import OutboxRow

REPO = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def write_scripts(directory: Path, scripts: dict[str, str], templates: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    for name, text in (templates or {}).items():
        path = directory / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def edit(path: Path | str, old: str, new: str) -> None:
    p = Path(path)
    p.write_text(p.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


def repo_scripts(directory: Path) -> Path:
    """A copy of the shipped sop_templates/ (to edit in a test)."""
    shutil.copytree(REPO / "sop_templates", directory)
    return directory


def sop_config(make_config: Callable[..., Any], directory: Path, *, moments: bool = False, **overrides: str) -> Any:
    calendar = directory / "moments.yaml"
    return make_config(SOP__DIR=str(directory), MOMENTS__CALENDAR=str(calendar),
                       MOMENTS__ENABLED="true" if moments else "false", **overrides)


async def started(make_bot: Callable[..., BotApp], cfg: Any, **kw: Any) -> BotApp:
    app = make_bot(cfg=cfg, **kw)
    await app.start()
    return app


async def runs(app: BotApp) -> list[Any]:
    async with app.db.read() as s:
        return list((await s.execute(select(SopRun.__table__).order_by(SopRun.__table__.c.id))).all())


async def steps(app: BotApp, run_id: int | None = None) -> list[Any]:
    t = SopStep.__table__
    q = select(t).order_by(t.c.due_at, t.c.id)
    if run_id is not None:
        q = q.where(t.c.run_id == run_id)
    async with app.db.read() as s:
        return list((await s.execute(q)).all())


async def outbox(app: BotApp, prefix: str = "") -> list[Any]:
    t = OutboxRow.__table__
    async with app.db.read() as s:
        rows = (await s.execute(select(t).order_by(t.c.id))).all()
    return [r for r in rows if r.key.startswith(prefix)]


async def posts(app: BotApp) -> list[Any]:
    t = MomentPost.__table__
    async with app.db.read() as s:
        return list((await s.execute(select(t).order_by(t.c.date, t.c.slot_at))).all())


def at(clock: FakeClock, *args: int) -> None:
    clock.set(local(*args))


def sop_sent(deliveries: list[Delivery], prefix: str = "sop:") -> list[Delivery]:
    return [d for d in deliveries if d.key.startswith(prefix)]


class JobSender(RecordingSender):
    """Records deliveries; a moment_task answers with a jobid, as the WeCom sender does."""

    async def send(self, delivery: Delivery) -> SendResult:
        self.deliveries.append(delivery)
        if delivery.kind == "moment_task":
            return SendResult({"jobid": f"job-{len(self.deliveries)}"})
        return SendResult({"via": "memory"})


class FakeWeComApi:
    """The WeComApi protocol: answers get_moment_task_result from a script of statuses per jobid."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [3])
        self.calls: list[tuple[str, str, dict[str, str] | None]] = []

    async def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        self.calls.append((path, method, params))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "status": status, "type": "add_moment_task"}
        if status == 3:
            answer["result"] = {"errcode": 0, "errmsg": "ok", "moment_id": f"mom-{(params or {}).get('jobid')}",
                                "invalid_sender_list": {"user_list": ["gone01"]},
                                "invalid_external_contact_list": {"tag_list": []}}
        return answer
