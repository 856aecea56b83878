"""The tiers feature, assembled: the ladder and the member directory, the rules file, the daily review."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.effects import Effects
from bot.members import MEMBERS
from bot.pump import Reloader
from bot.tiers import LADDER
from bot.tiers.directory import TiersDirectory
from bot.tiers.facts import live_facts
from bot.tiers.ladder import Ladder
from bot.tiers.rules import Rules
from bot.tiers.rulesfile import parse_rules
from bot.watched import WatchedFile

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger("siyu.tiers")


def rules_file(path: Path) -> tuple[WatchedFile[Rules], Rules]:
    """tiers.yaml, watched, and its rules; ValueError naming what makes the file unusable."""
    watched: WatchedFile[Rules] = WatchedFile(path, parse_rules, missing="无法读取：No such file or directory")
    report = watched.refresh()
    if watched.good is None:
        raise ValueError("tiers.rules: the rules file cannot be used:\n"
                         + "\n".join(str(p) for p in report.problems))
    return watched, watched.good


def reload_rules(ladder: Ladder, watched: WatchedFile[Rules]) -> bool:
    """Picks up edits of tiers.yaml; a broken edit is refused and the old rules stay live."""
    report = watched.refresh()
    if report.new_problems:
        log.error("tiers rules not reloaded, the previous rules stay live:\n%s",
                  "\n".join(str(p) for p in report.new_problems))
    rules = watched.good
    if not report.changed or rules is None or rules.version == ladder.rules.version:
        return False
    ladder.rules = rules
    log.info("tiers rules reloaded (version %s); /tier recompute applies them to everyone now", rules.version)
    return True


async def daily_review(app: BotApp, fire_time: datetime) -> None:
    """What time alone changes (days since join, silence), applied to everyone once a day."""
    ladder = app.get(LADDER)
    async with app.db.session() as s:
        fx = Effects(app, s, f"tiers-daily:{fire_time.isoformat()}")
        changed = await ladder.reevaluate_all(s, fx, app.clock.now())
    fx.kick()
    log.info("daily tier review: %d members changed tier", changed)


def install(app: BotApp) -> None:
    cfg = app.config.tiers
    watched, rules = rules_file(app.config.resolve(cfg.rules))
    ladder = Ladder(app, rules)
    app.provide(LADDER, ladder)
    app.provide(MEMBERS, TiersDirectory(ladder.store, lambda: ladder.rules))
    app.templates.provide_ladder(live_facts(lambda: ladder.rules))
    app.pumps.append(Reloader("tiers-rules", app.clock, cfg.reload_interval_s,
                              lambda _files: reload_rules(ladder, watched)))
    app.scheduler.add_cron("tiers-daily-review", lambda at: daily_review(app, at), crontab=cfg.daily_review)
    app.templates.add_dir(Path(__file__).with_name("templates"))
