"""Assembling the SOP and Moments features: services, pumps, the approval cron, templates, shutdown."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.effects import Effects
from bot.masssend import ResultsPump
from bot.memberfacts import member_facts
from bot.openquestions import open_questions
from bot.pump import Reloader
from bot.sop import MOMENTS, SOP
from bot.sop.engine import SopEngine, StepPump
from bot.sop.files import ScriptFiles
from bot.sop.mass import MassResults
from bot.sop.publisher import MomentResultsPump, MomentsPump, MomentsService, approval_reminder
from bot.sop.script import Defaults
from bot.sop.service import SopService
from bot.sop.store import MomentsStore, SopStore

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.config import Config
    from bot.templates import Templates

log = logging.getLogger("siyu.sop")

TEMPLATES = Path(__file__).with_name("templates")


def script_files(cfg: Config, templates: Templates | None) -> ScriptFiles:
    """The script directory (``sop.dir``), leaving out the Moments calendar when it sits there too."""
    directory = cfg.resolve(cfg.sop.dir)
    calendar = cfg.resolve(cfg.moments.calendar)
    exclude = (calendar.name,) if calendar.parent.resolve() == directory.resolve() else ()
    return ScriptFiles(directory, templates=templates, defaults=Defaults.of(cfg.sop), exclude=exclude)


async def find_silent(app: BotApp, service: SopService, fire_time: datetime) -> None:
    """The daily check behind ``trigger: silent`` (``sop.silent_check``)."""
    async with app.db.session() as s:
        fx = Effects(app, s, f"sop-silent:{fire_time.isoformat()}")
        raised = await service.find_silent(s, fx, app.clock.now())
    fx.kick()
    if raised:
        log.info("silent check: %d customers fell silent", raised)


def install_sop(app: BotApp) -> None:
    app.templates.add_dir(TEMPLATES)
    files = script_files(app.config, app.templates)
    for p in files.refresh(force=True).problems:
        log.error("SOP script problem: %s", p)
    if files.templates_dir.is_dir():
        app.templates.add_dir(files.templates_dir)
    engine = SopEngine(app, files, SopStore(app.db))
    pump = StepPump(app, engine)
    service = SopService(app, files, engine, pump)
    app.provide(SOP, service)
    member_facts(app).add("进行中的 SOP", service.member_facts)  # on the operators' profile (/member)
    open_questions(app).add("survey", service.surveys.asked_at)  # a survey's 0–10 question awaits a score

    async def reload(_files: bool) -> bool:
        await asyncio.to_thread(service.reload)  # a changed file's texts are tried (budgeted renders)
        return False

    mass = MassResults(app, engine.store)
    app.pumps.extend([pump, ResultsPump("sop-mass-results", mass.poll),
                      Reloader("sop-reload", app.clock, app.config.sop.reload_interval_s, reload)])
    app.scheduler.add_cron("sop-silent", lambda at: find_silent(app, service, at), crontab=app.config.sop.silent_check)

    async def release() -> None:
        n = await pump.release()
        if n:
            log.info("released %d claimed SOP steps on shutdown", n)

    app.on_shutdown.append(release)


def install_moments(app: BotApp) -> None:
    app.templates.add_dir(TEMPLATES)
    cfg = app.config.moments
    path = app.config.resolve(cfg.calendar)
    templates_dir = path.parent / "templates"  # beside the calendar, as `moments week --calendar` reads it
    service = MomentsService(app, path, templates_dir, MomentsStore(app.db))
    service.reload(force=True)
    app.provide(MOMENTS, service)
    if not cfg.enabled:
        return
    async def reload(_files: bool) -> bool:
        return await asyncio.to_thread(service.reload)  # a changed calendar's texts are tried (budgeted renders)

    reloader = Reloader("moments-reload", app.clock, app.config.sop.reload_interval_s, reload)
    app.pumps.extend([reloader, MomentsPump(service), MomentResultsPump(service)])

    async def remind_approvers(fire_time: datetime) -> None:
        await approval_reminder(app, service, fire_time)

    app.scheduler.add_cron("moments-approval-reminder", remind_approvers, crontab=cfg.approval_reminder)
