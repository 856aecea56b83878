"""The tiers feature, assembled: the ladder, the customers service and the member directory, the rules file,
the daily review, the batched churn notice and the weekly silence digest."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.effects import Effects
from bot.members import MEMBERS
from bot.pump import Reloader
from bot.tiers import CUSTOMERS, LADDER
from bot.tiers.customers import Customers
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


Work = Callable[[Any, Effects, datetime], Awaitable[int]]


async def run_job(app: BotApp, name: str, fire_time: datetime, work: Work, done: str) -> None:
    """One cron firing: ``work(session, effects, now)`` in one transaction, its deliveries sent after the commit,
    and ``done`` (with the count ``work`` returns) logged."""
    async with app.db.session() as s:
        fx = Effects(app, s, f"{name}:{fire_time.isoformat()}")
        count = await work(s, fx, app.clock.now())
    fx.kick()
    log.info(done, count)


def install(app: BotApp) -> None:
    cfg = app.config.tiers
    watched, rules = rules_file(app.config.resolve(cfg.rules))
    ladder = Ladder(app, rules)
    app.provide(LADDER, ladder)
    customers = Customers(ladder)
    app.provide(CUSTOMERS, customers)
    app.provide(MEMBERS, TiersDirectory(ladder.store, lambda: ladder.rules, customers))
    app.templates.provide_ladder(live_facts(lambda: ladder.rules))
    app.pumps.append(Reloader("tiers-rules", app.clock, cfg.reload_interval_s,
                              lambda _files: reload_rules(ladder, watched)))
    # what time alone changes (days since join, silence), applied to everyone once a day
    app.scheduler.add_cron("tiers-daily-review", lambda at: run_job(
        app, "tiers-daily", at, ladder.reevaluate_all, "daily tier review: %d members changed tier"),
        crontab=cfg.daily_review)
    # lost customers: one app message per owner for everything since the last notice
    app.scheduler.add_cron("tiers-churn-notice", lambda at: run_job(
        app, "tiers-churn", at, customers.notify_churn, "churn notice: %d people told"), crontab=cfg.churn_notify_cron)
    if cfg.silence_digest:  # quiet customers, one app message per owner (off unless configured)
        app.scheduler.add_cron("tiers-silence-digest", lambda at: run_job(
            app, "tiers-silence", at, customers.silence_digest, "silence digest: %d people told"),
            crontab=cfg.silence_digest)
    app.templates.add_dir(Path(__file__).with_name("templates"))
