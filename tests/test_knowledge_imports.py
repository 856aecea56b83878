"""Importing the knowledge base's text and matcher modules loads only what they need, not the whole feature."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import bot.knowledge.text
import bot.knowledge.matcher
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] in ("bot", "handlers", "moderation"))))
"""


def test_text_and_matcher_load_a_handful_of_project_modules() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    loaded = out.split()
    # bot, bot.hours, bot.services, bot.textnorm, bot.yamldoc and bot.knowledge(.chatter, .entry, .fuzzy,
    # .matcher, .text): 11 today (33 before the feature moved into its home); the feature's service, store,
    # models, storage, config or the app must not come along.
    assert len(loaded) <= 12, loaded
    assert not [m for m in loaded if m.startswith(("handlers", "moderation", "bot.app", "bot.storage", "bot.config",
                                                   "bot.knowledge.service", "bot.knowledge.store"))], loaded
