"""Fill in what a WeCom group-change callback leaves out, from ``externalcontact/groupchat/get``.

``change_external_chat`` / ``add_member`` carries only member ids and the join
scene (docs/wecom-protocol.md §2). With the WeCom API at hand (``bot.sender =
"wecom"``) the inbox asks ``groupchat/get`` before dispatching such an event and
adds the group's name, each member's name, whether they are staff (type 1) or
a customer (type 2), and who invited them (``invitor``). The group data may lag
the change event: members it does not list yet keep what the callback said.
When the call fails the event is dispatched as it came (nothing is lost), with
the failure noted in the stored payload; it is not asked again.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.channels.parse import is_staff_id
from bot.wecomapi import WeComApi, WeComError

log = logging.getLogger("siyu.enrich")


class GroupChatEnricher:
    """An inbox enricher (``InboxPump.enrichers``) for payloads marked ``enrich.source = groupchat``."""

    def __init__(self, api: WeComApi) -> None:
        self.api = api

    async def __call__(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        mark = payload.get("enrich")
        if not isinstance(mark, dict) or mark.get("source") != "groupchat":
            return None
        chat = dict(payload.get("chat") or {})
        out = {k: v for k, v in payload.items() if k != "enrich"}
        try:
            data = await self.api.call("externalcontact/groupchat/get", {"chat_id": chat.get("id", ""),
                                                                         "need_name": 1})
        except WeComError as exc:
            log.warning("groupchat/get for %s failed (%s); the event goes on without names and inviters",
                        chat.get("id"), exc)
            out["enriched"] = f"failed: errcode {exc.errcode}"
            return out
        group = data.get("group_chat") or {}
        listed = {m.get("userid"): m for m in group.get("member_list") or [] if isinstance(m, dict)}
        if group.get("name"):
            out["chat"] = {**chat, "name": str(group["name"])}
        members = []
        for member in payload.get("members") or []:
            info = listed.get(member.get("id")) if isinstance(member, dict) else None
            if info is None:
                members.append(member)
                continue
            m = dict(member)
            name = info.get("group_nickname") or info.get("name")
            if isinstance(name, str) and name:
                m["name"] = name
            if info.get("type") in (1, 2):
                m["staff"] = info["type"] == 1
            inviter = (info.get("invitor") or {}).get("userid") if isinstance(info.get("invitor"), dict) else None
            if isinstance(inviter, str) and inviter:
                m["inviter"] = {"id": inviter, "staff": is_staff_id(inviter, _staff_of(group))}
            members.append(m)
        out["members"] = members
        out["enriched"] = "groupchat"
        return out


def _staff_of(group: dict[str, Any]) -> frozenset[str]:
    """Staff ids among the group's members (type 1), plus its owner."""
    staff = {m.get("userid") for m in group.get("member_list") or [] if isinstance(m, dict) and m.get("type") == 1}
    if group.get("owner"):
        staff.add(group["owner"])
    return frozenset(s for s in staff if isinstance(s, str))
