"""Decrypted WeCom messages → normalised payloads (the generic event JSON shape).

Pure functions: no I/O, so tests and the benchmark exercise them directly.
Dedup keys follow docs/wecom-protocol.md §5: messages by MsgId / msgid, events by
their decrypted fields (Event, ChangeType, ids, CreateTime).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import ParseError, fromstring

from bot.channels.edge import MAX_EVENT_ID, EdgeProblem, check_id, clean_payload, loads
from bot.events import EXTERNAL_PREFIXES, PayloadError, chat_key_of, events_from_payload


class ParseProblem(ValueError):
    """The body is not a well-formed message of the expected shape (→ 400)."""


@dataclass(slots=True)
class Parsed:
    dedup_key: str
    kind: str
    payload: dict[str, Any]

    @property
    def chat_key(self) -> str:
        return chat_key_of(self.payload)


def is_staff_id(user_id: str, staff_ids: frozenset[str]) -> bool:
    """Configured staff, or any WeCom id that is not an external (wm…/wo…) id."""
    return user_id in staff_ids or not user_id.startswith(EXTERNAL_PREFIXES)


def parse_xml(body: str | bytes) -> Element:
    try:
        return fromstring(body)
    except ParseError as exc:
        raise ParseProblem(f"malformed XML: {exc}") from exc
    except Exception as exc:  # defusedxml refuses entities, DTDs …
        raise ParseProblem(f"refused XML: {type(exc).__name__}") from exc


def _fields(root: Element) -> dict[str, str]:
    return {child.tag: (child.text or "").strip() if child.tag != "Content" else (child.text or "")
            for child in root}


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParseProblem(f"{name} must be an integer") from None


def _actor(uid: str, staff_ids: frozenset[str]) -> dict[str, Any]:
    return {"id": uid, "staff": is_staff_id(uid, staff_ids)}


JOIN_SCENES = {"0": "invite", "3": "qrcode"}
QUIT_SCENES = {"0": "left", "1": "removed"}
CONTACT_CHANGES = {
    "edit_external_contact": "edited",
    "del_external_contact": "removed_by_staff",
    "del_follow_user": "removed_by_customer",
    "transfer_fail": "transfer_failed",
}


def parse_app_message(plain: str, staff_ids: frozenset[str] = frozenset()) -> Parsed | None:
    """A decrypted self-built-app message; None for types the bot does not handle."""
    root = parse_xml(plain)
    f = _fields(root)
    msg_type = f.get("MsgType", "")
    create_time = _int(f.get("CreateTime", "0") or "0", "CreateTime")
    base: dict[str, Any] = {"channel": "wecom_app", "time": create_time}
    if msg_type == "text":
        sender = f.get("FromUserName", "")
        msg_id = f.get("MsgId", "")
        if not sender or not msg_id:
            raise ParseProblem("a text message needs FromUserName and MsgId")
        _int(msg_id, "MsgId")
        payload = {
            **base, "type": "message", "chat": {"id": sender, "type": "single"},
            # Only members of the corp can message a self-built app.
            "sender": {"id": sender, "staff": True}, "text": f.get("Content", ""), "mentions_bot": True,
            "msg_id": msg_id, "reply": {"agent_id": f.get("AgentID", "")},
        }
        return Parsed(f"wecom:msg:{msg_id}", "message", payload)
    if msg_type != "event":
        return None
    event = f.get("Event", "")
    change = f.get("ChangeType", "")
    ids = ":".join(f.get(k, "") for k in ("UserID", "ExternalUserID", "ChatId"))
    key = f"wecom:evt:{event}:{change}:{f.get('UpdateDetail', '')}:{ids}:{create_time}"
    if event == "enter_agent":
        user = f.get("FromUserName", "")
        payload = {**base, "type": "entered", "user": {"id": user, "staff": True},
                   "reply": {"agent_id": f.get("AgentID", "")}}
        return Parsed(f"wecom:evt:enter_agent:{user}:{create_time}", "entered", payload)
    if event == "msgaudit_notify":
        return Parsed(f"wecom:evt:msgaudit_notify:{f.get('AgentID', '')}:{create_time}", "archive_notify",
                      {**base, "type": "archive_notify"})
    if event == "change_external_contact":
        staff, external = f.get("UserID", ""), f.get("ExternalUserID", "")
        if not staff or not external:
            raise ParseProblem("change_external_contact needs UserID and ExternalUserID")
        if change in ("add_external_contact", "add_half_external_contact"):
            payload = {**base, "type": "contact_added", "member": {"id": external, "staff": False},
                       "staff": {"id": staff, "staff": True}, "state": f.get("State", ""),
                       "welcome_code": f.get("WelcomeCode", ""), "half": change == "add_half_external_contact"}
            return Parsed(key, "contact_added", payload)
        if change in CONTACT_CHANGES:
            payload = {**base, "type": "contact_changed", "change": CONTACT_CHANGES[change],
                       "member": {"id": external, "staff": False}, "staff": {"id": staff, "staff": True},
                       "detail": f.get("Source") or f.get("FailReason") or ""}
            if change == "edit_external_contact":  # the staff member's tags on the contact: externalcontact/get
                payload["enrich"] = {"source": "contact"}
            return Parsed(key, "contact_changed", payload)
        return None
    if event == "change_external_chat":
        chat_id = f.get("ChatId", "")
        if not chat_id:
            raise ParseProblem("change_external_chat needs ChatId")
        chat = {"id": chat_id, "type": "group"}
        if change == "create":
            return Parsed(key, "group_created", {**base, "type": "group_created", "chat": chat})
        if change == "dismiss":
            return Parsed(key, "group_dismissed", {**base, "type": "group_dismissed", "chat": chat})
        if change != "update":
            return None
        detail = f.get("UpdateDetail", "")
        members_el = root.find("MemChangeList")
        member_ids = [(i.text or "").strip() for i in members_el.iter("Item")] if members_el is not None else []
        member_ids = [m for m in member_ids if m]
        digest = hashlib.sha1(",".join(member_ids).encode()).hexdigest()[:10]  # noqa: S324 - a key, not security
        key = f"{key}:{digest}"
        if detail == "add_member":
            payload = {**base, "type": "member_joined", "chat": chat,
                       "members": [_actor(m, staff_ids) for m in member_ids],
                       "scene": JOIN_SCENES.get(f.get("JoinScene", ""), "other"), "inviter": None,
                       "enrich": {"source": "groupchat", "mem_ver": f.get("CurMemVer", "")}}
            return Parsed(key, "member_joined", payload)
        if detail == "del_member":
            payload = {**base, "type": "member_left", "chat": chat,
                       "members": [_actor(m, staff_ids) for m in member_ids],
                       "scene": QUIT_SCENES.get(f.get("QuitScene", ""), "other")}
            return Parsed(key, "member_left", payload)
        return Parsed(key, "group_updated", {**base, "type": "group_updated", "chat": chat, "change": detail})
    return None


def outer_encrypt(body: bytes) -> tuple[str, str]:
    """(Encrypt, ToUserName) from the outer callback XML."""
    root = parse_xml(body)
    enc = root.find("Encrypt")
    if enc is None or not (enc.text or "").strip():
        raise ParseProblem("the callback body has no <Encrypt>")
    to = root.find("ToUserName")
    return (enc.text or "").strip(), ((to.text or "").strip() if to is not None else "")


def strip_mentions(text: str, names: Iterable[str] = (), *, first_is_bot: bool = False) -> str:
    """Drop the leading "@机器人" from a group text.

    The 智能机器人 only receives group messages that mention it, so with
    ``first_is_bot`` the first leading mention is the bot's whatever its name;
    known bot names are stripped too. WeCom separates a mention from the text
    with U+2005, which ``\\s`` covers.
    """
    t = text.lstrip()
    known = [n for n in names if n]
    if first_is_bot:
        m = re.match(r"[@＠]\S+\s*", t)
        if m:
            t = t[m.end():]
    while t[:1] in ("@", "＠"):
        for name in known:
            if t[1:].startswith(name):
                t = t[1 + len(name):].lstrip()
                break
        else:
            break
    return t


def parse_aibot_message(plain: str, staff_ids: frozenset[str] = frozenset(),
                        bot_names: Iterable[str] = ()) -> Parsed | None:
    try:
        msg = clean_payload(loads(plain))
    except EdgeProblem as exc:
        raise ParseProblem(str(exc)) from None
    if not isinstance(msg, dict):
        raise ParseProblem("消息必须是 JSON 对象 (the message must be a JSON object)")
    msgid = msg.get("msgid")
    if not isinstance(msgid, str) or not msgid:
        raise ParseProblem("缺少 msgid (msgid is required)")
    chattype = msg.get("chattype", "single")
    if chattype not in ("single", "group"):
        raise ParseProblem("chattype 必须是 single 或 group (chattype must be single or group)")
    sender = msg["from"].get("userid") if isinstance(msg.get("from"), dict) else None
    if not isinstance(sender, str) or not sender:
        raise ParseProblem("缺少 from.userid (from.userid is required)")
    chat_id = msg.get("chatid") if chattype == "group" else sender
    if not isinstance(chat_id, str) or not chat_id:
        raise ParseProblem("群聊需要 chatid (chatid is required in group chats)")
    try:
        check_id(msgid, "msgid")
        check_id(sender, "from.userid")
        check_id(chat_id, "chatid")
    except EdgeProblem as exc:
        raise ParseProblem(str(exc)) from None
    reply: dict[str, Any] = {"aibotid": msg.get("aibotid", "")}
    if isinstance(msg.get("response_url"), str):
        reply["response_url"] = msg["response_url"]
    base = {"channel": "aibot", "chat": {"id": chat_id, "type": chattype},
            "sender": {"id": sender, "staff": is_staff_id(sender, staff_ids)}, "reply": reply}
    msgtype = msg.get("msgtype")
    text: str | None = None
    if msgtype == "text":
        body = msg.get("text")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            raise ParseProblem("text 必须是含 content 文字的对象 (text.content is required)")
        text = content
    elif msgtype == "mixed":
        mixed = msg.get("mixed")
        items = mixed.get("msg_item") if isinstance(mixed, dict) else None
        if not isinstance(items, list):
            raise ParseProblem("mixed 必须是含 msg_item 列表的对象 (mixed.msg_item must be a list)")
        parts = []
        for i in items:
            if not isinstance(i, dict) or i.get("msgtype") != "text":
                continue
            content = i.get("text").get("content") if isinstance(i.get("text"), dict) else None
            if not isinstance(content, str):
                raise ParseProblem("mixed.msg_item 的 text 必须是含 content 文字的对象 (text.content is required)")
            parts.append(content)
        text = "".join(parts)
    elif msgtype == "event":
        ev = msg.get("event") or {}
        if not isinstance(ev, dict):
            raise ParseProblem("event 必须是对象 (event must be an object)")
        if ev.get("eventtype") == "enter_chat":
            payload = {"channel": "aibot", "type": "entered",
                       "user": {"id": sender, "staff": is_staff_id(sender, staff_ids)},
                       "chat": base["chat"], "reply": reply}
            return Parsed(f"aibot:evt:{msgid}", "entered", payload)
        return None
    if text is None:
        return None
    text = strip_mentions(text, bot_names, first_is_bot=chattype == "group")
    payload = {**base, "type": "message", "text": text, "mentions_bot": True,
               "msg_id": msgid}
    return Parsed(f"aibot:msg:{msgid}", "message", payload)


def parse_webhook(body: bytes | str, received_at: datetime, staff_ids: frozenset[str] = frozenset()) -> Parsed:
    """A generic ``POST /webhook`` body (already authenticated) → its event; ParseProblem (→ 400) for a body
    that is not acceptable JSON, not an object, has no usable ``id`` or does not describe a valid event."""
    try:
        payload = clean_payload(loads(body))
    except EdgeProblem as exc:
        raise ParseProblem(f"body is not acceptable JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ParseProblem("事件必须是 JSON 对象 (the event must be a JSON object)")
    try:
        event_id = check_id(payload.get("id"), "id", MAX_EVENT_ID)
    except EdgeProblem as exc:
        raise ParseProblem(f"id: a string of 1-{MAX_EVENT_ID} characters is required ({exc})") from None
    payload.setdefault("channel", "webhook")
    key = f"webhook:{event_id}"
    try:
        events_from_payload(payload, key, received_at, staff_ids)
    except PayloadError as exc:
        raise ParseProblem(str(exc)) from None
    return Parsed(key, str(payload["type"]), payload)
