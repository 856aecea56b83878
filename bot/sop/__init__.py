"""SOP scripts and the Moments calendar.

``script`` (the script file contract), ``timing`` (at / repeat / quiet hours /
late), ``files`` (the script directory with live reload), ``render`` (texts and
``when:`` conditions in the sandbox), ``engine`` (runs, step occurrences and the
pump that sends them), ``checkins`` (the 打卡 tally), ``preview`` (timelines),
``moments`` (the calendar contract), ``publisher`` (publishing slots and polling
task results), ``models`` (tables), ``cli`` (``python -m bot sop|moments …``).
The chat side is handlers/sop.py and handlers/moments.py.
"""

from bot.services import ServiceKey
from bot.sop.engine import SopEngine
from bot.sop.publisher import MomentsService

SOP: ServiceKey[SopEngine] = ServiceKey("sop")
MOMENTS: ServiceKey[MomentsService] = ServiceKey("moments")

__all__ = ["MOMENTS", "SOP", "MomentsService", "SopEngine"]
