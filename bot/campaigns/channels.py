"""Channel codes (渠道活码): ``/channel add 名称 [员工…]`` creates a contact way whose ``state`` is a short code.

A customer who adds a staff member through it arrives with that ``State`` (add_external_contact):
:meth:`Channels.contact_added` records them under the channel, the tiers feature tags them with the
channel's name (through :data:`bot.members.CHANNEL_NAMES`, which this class answers), the report counts
them as ``channel:<名称>``, and an SOP script with ``trigger: contact_added`` and
``where: {states: [<code>]}`` greets them (its ``via: welcome`` step uses the contact's welcome code).
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from bot.campaigns.service import Part
from bot.events import ContactAdded

if TYPE_CHECKING:
    from bot.context import Context

NAME_RX = re.compile(r"[^\s@＠/／:：]{1,32}")     # a channel name is also the customer's tag
STAFF_RX = re.compile(r"[A-Za-z0-9_.@-]{1,64}")   # WeCom user ids
MAX_STAFF = 100                                   # add_contact_way: at most 100 users


class Channels(Part):

    def _staff(self, raw: str, actor: str) -> list[str] | str:
        """The staff ids typed (``@`` optional), else the operator; a str is the answer to a bad one."""
        staff = []
        for word in (raw or "").split():
            uid = word.lstrip("@＠")
            if not STAFF_RX.fullmatch(uid):
                return self.render("campaigns/bad_staff.j2", staff=word[:40], many=0)
            if uid not in staff:
                staff.append(uid)
        if len(staff) > MAX_STAFF:
            return self.render("campaigns/bad_staff.j2", staff="", many=MAX_STAFF)
        return staff or [actor]

    async def add(self, ctx: Context, actor: str, name: str, staff_text: str) -> None:
        """Create the contact way and the channel; the answer holds its QR code link."""
        from bot.wecomapi import WECOM_API, WeComError

        name = name.strip()
        if not NAME_RX.fullmatch(name):
            await ctx.reply(self.render("campaigns/bad_channel_name.j2", name=name[:40]))
            return
        if await self.store.channel_named(ctx.session, name) is not None:
            await ctx.reply(self.render("campaigns/channel_exists.j2", name=name))
            return
        staff = self._staff(staff_text, actor)
        if isinstance(staff, str):
            await ctx.reply(staff)
            return
        api = ctx.app.maybe(WECOM_API)
        if api is None:
            await ctx.reply(self.render("campaigns/no_api.j2"))
            return
        state = "qd" + secrets.token_hex(4)
        body = {"type": 1 if len(staff) == 1 else 2, "scene": 2 if self.cfg.channel_scene_qr else 1,
                "remark": name, "state": state, "user": staff}
        try:
            answer = await api.call("externalcontact/add_contact_way", body)
        except WeComError as exc:
            await ctx.reply(self.render("campaigns/channel_failed.j2", name=name, error=str(exc)[:300]))
            return
        channel_id = await self.store.add_channel(
            ctx.session, name=name, state=state, staff=staff, config_id=str(answer.get("config_id") or "")[:64],
            qr_code=str(answer.get("qr_code") or "")[:500], created_by=actor[:128], created_at=ctx.now())
        if channel_id is None:  # the same name, created in between
            await ctx.reply(self.render("campaigns/channel_exists.j2", name=name))
            return
        await ctx.reply(self.render("campaigns/channel_added.j2", name=name, state=state, staff=staff,
                                    qr_code=str(answer.get("qr_code") or "")))

    async def listing(self, session: Any) -> str:
        return self.render("campaigns/channels.j2", channels=await self.store.channels(session))

    async def channel_name(self, session: Any, state: str) -> str | None:
        row = await self.store.channel_of_state(session, state) if state else None
        return None if row is None else str(row.name)

    async def contact_added(self, session: Any, event: ContactAdded) -> None:
        """Count a customer added through a channel (once per channel)."""
        if not event.state or event.member.staff:
            return
        row = await self.store.channel_of_state(session, event.state)
        if row is not None:
            await self.store.add_contact(session, int(row.id), event.member.id, event.staff.id, event.time)
