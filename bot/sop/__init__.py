"""SOP scripts and the Moments calendar.

``script`` (the script file contract), ``timing`` (at / repeat / quiet hours /
late), ``files`` (the script directory with live reload), ``render`` (texts and
``when:`` conditions in the sandbox), ``engine`` (runs, step occurrences and the
pump that sends them — ``StepPump.send_step`` is where a step is sent),
``mass`` (the day's ``mass_send`` steps of a staff member merged into one 群发 task, and
their results), ``checkins`` (the 打卡 tally), ``preview`` (timelines), ``service`` (what the
/sop commands do), ``moments`` (the calendar contract), ``publisher``
(publishing slots and polling task results), ``store`` (every SQL statement),
``models`` (tables), ``config`` (the ``[sop]`` and ``[moments]`` sections),
``feature`` (assembly), ``cli`` (``python -m bot sop|moments …``).
The chat side is handlers/sop.py and handlers/moments.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.sop.publisher import MomentsService
    from bot.sop.service import SopService

SOP: ServiceKey[SopService] = ServiceKey("sop")
MOMENTS: ServiceKey[MomentsService] = ServiceKey("moments")

__all__ = ["MOMENTS", "SOP"]
