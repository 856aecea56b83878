"""Fill in what WeCom callbacks leave out: group changes from ``externalcontact/groupchat/get``, a contact's
tags from ``externalcontact/get``.

``change_external_chat`` / ``add_member`` carries only member ids and the join
scene (docs/wecom-protocol.md §2). With the WeCom API at hand (``bot.sender =
"wecom"``) the inbox asks ``groupchat/get`` before dispatching such an event and
adds the group's name, each member's name, whether they are staff (type 1) or
a customer (type 2), and who invited them (``invitor``). The group data may lag
the change event: members it does not list yet keep what the callback said.
When the call fails the event is dispatched as it came (nothing is lost), with
the failure noted in the stored payload; it is not asked again.

``change_external_contact`` / ``edit_external_contact`` says only that a staff member
edited a contact (remark, description, tags). :class:`ContactEnricher` reads the
contact and adds the tags that staff member has on them (``tags``: id and name each),
which the tiers feature takes as the member's tags.
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


class ContactEnricher:
    """An inbox enricher for payloads marked ``enrich.source = contact`` (an edited external contact)."""

    def __init__(self, api: WeComApi) -> None:
        self.api = api

    async def __call__(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        mark = payload.get("enrich")
        if not isinstance(mark, dict) or mark.get("source") != "contact":
            return None
        out = {k: v for k, v in payload.items() if k != "enrich"}
        member, staff = payload.get("member") or {}, payload.get("staff") or {}
        try:
            data = await self.api.call("externalcontact/get", None, method="GET",
                                       params={"external_userid": member.get("id", "")})
        except WeComError as exc:
            log.warning("externalcontact/get for %s failed (%s); the edit goes on without tags", member.get("id"), exc)
            out["enriched"] = f"failed: errcode {exc.errcode}"
            return out
        follow = [f for f in data.get("follow_user") or []
                  if isinstance(f, dict) and f.get("userid") == staff.get("id")]
        if follow:
            out["tags"] = [{"id": str(t.get("tag_id") or ""), "name": str(t.get("tag_name") or "")}
                           for t in follow[0].get("tags") or [] if isinstance(t, dict)]
        name = (data.get("external_contact") or {}).get("name")
        if isinstance(name, str) and name:
            out["member"] = {**member, "name": name}
        out["enriched"] = "contact"
        return out
