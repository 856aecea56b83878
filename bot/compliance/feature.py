"""The compliance feature, assembled: the service, the lexicon reloader, the escalation timer, the digest and
prune crons, the archive-import route, the templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.compliance import MODERATION
from bot.compliance.alerts import ESCALATE_TASK
from bot.compliance.archive_route import archive_import
from bot.compliance.service import Moderation
from bot.memberfacts import member_facts
from bot.pump import Reloader
from bot.textcheck import TEXT_CHECK

if TYPE_CHECKING:
    from bot.app import BotApp


def install(app: BotApp) -> None:
    service = Moderation(app)
    app.provide(MODERATION, service)
    app.provide(TEXT_CHECK, service.text_check())
    member_facts(app).add("合规告警", service.member_facts)  # on the operators' profile (/member)
    app.templates.add_dir(Path(__file__).with_name("templates"))

    async def reload(files: bool) -> bool:
        return bool(await service.reload(files=files))

    # The lexicon files every reload_interval_s; the /word rows at once when a command changed them.
    reloader = Reloader("moderation-lexicon", app.clock, service.cfg.reload_interval_s, reload)
    service.words_changed = reloader.request
    app.pumps.append(reloader)

    async def load_on_start() -> None:
        await service.reload(force=True)
        reloader.looked()

    app.on_startup.append(load_on_start)
    app.timers.register(ESCALATE_TASK, service.routing.escalate)

    hh, mm = (int(x) for x in service.cfg.digest_time.split(":"))
    app.scheduler.add_cron("moderation-digest", service.digest.send, hour=hh, minute=mm)
    app.scheduler.add_cron("moderation-prune", service.prune, hour=4, minute=53)
    app.http_routes.append(("POST", "/archive/import", archive_import(app, service)))

