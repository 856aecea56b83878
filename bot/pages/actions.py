"""Console actions are chat commands: one implementation, the same checks, the same audit.

A button or form on a page becomes the text of the chat command it mirrors
(``kb edit refund 答案 …``) and runs through the command stage exactly as if the
signed-in person had typed it to the bot 1:1: the same argument parsing, role
check, confirmation, service call and audit row. What the command would have
replied is captured and shown on the page instead of being sent.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.command_stage import audit, execute
from bot.context import Context
from bot.events import Actor, Chat, MessageEvent

if TYPE_CHECKING:
    from bot.access.service import Staff
    from bot.app import BotApp

log = logging.getLogger("siyu.console")


@dataclass
class Outcome:
    """What the command answered (each reply's text) and whether it failed."""

    replies: list[str] = field(default_factory=list)
    failed: bool = False

    @property
    def text(self) -> str:
        return "\n\n".join(self.replies)

    @property
    def confirm_code(self) -> str:
        """The code of a confirmation the command asked for ("/confirm 1234"), if any."""
        import re  # only for commands that ask to confirm

        m = re.search(r"/confirm (\d{4})", self.text)
        return m.group(1) if m else ""


class PageContext(Context):
    """A handler context whose replies to the author are kept for the page; every other effect is real."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.replies: list[str] = []

    async def reply(self, text: str, *, msgtype: str = "text", mention: bool = False,
                    key: str | None = None) -> int:
        self.replies.append(text)
        return 1


def console_chat(staff: Staff) -> Chat:
    return Chat(id=f"console:{staff.user_id}", type="single", name="控制台")


async def run_command(bot: BotApp, staff: Staff, body: str) -> Outcome:
    """Run ``/body`` as ``staff`` typed it to the bot 1:1; its replies come back, its effects happen."""
    event = MessageEvent(key=f"console:{uuid.uuid4().hex}", time=bot.clock.now(), channel="console",
                         chat=console_chat(staff), sender=Actor(id=staff.user_id, name=staff.user_id, staff=True),
                         text="/" + body, mentions_bot=True)
    outcome = Outcome()
    ctx: PageContext | None = None
    try:
        async with bot.db.session() as session:
            roles = await bot.roles.of(session, staff.user_id)
            ctx = PageContext(bot, event, session, "console", roles=roles)
            await execute(ctx, event, body)
        outcome.replies = ctx.replies
        for hook in ctx.commit_hooks:  # e.g. the knowledge base reloads the entry just saved
            hook()
        ctx.kick()
    except Exception:
        log.exception("console action failed: %s", body.split(maxsplit=2)[:2])
        async with bot.db.session() as session:
            await audit(session, bot, event, " ".join(body.split()[:2]), body, "error",
                        "the console action failed; nothing was changed")
        outcome.failed = True
        outcome.replies = ["❌ 操作没有成功，什么都没有改变。请稍后再试，或联系管理员。"]
    return outcome
