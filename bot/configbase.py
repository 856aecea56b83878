"""What every config section is made of: the base model and the checks several sections share.

bot.config assembles the one ``Config`` from the core's sections and the
features' (``bot/<feature>/config.py``); a feature's section imports only this.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def check_duration(v: str) -> str:
    """"30m", "2h", "1d"."""
    if not re.fullmatch(r"\d+\s*[mhd]", v.strip()):
        raise ValueError("must be a duration such as \"30m\", \"2h\" or \"1d\"")
    return v.strip()


def check_crontab(v: str, example: str = "30 3 * * *") -> str:
    if len(v.split()) != 5:
        raise ValueError(f"must be a five-field crontab such as \"{example}\"")
    return v
