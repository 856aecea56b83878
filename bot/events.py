"""Typed events.

Every channel turns what it receives into one *normalised payload* — the generic
``POST /webhook`` JSON shape — which is what the inbox stores. The worker turns a
payload back into typed events with :func:`events_from_payload`, so a WeCom
callback and the equivalent generic event give the same typed event. Names of
members and groups are cleaned there (:func:`bot.textsafe.clean_name`), so no
reply, template or table ever sees a control, ANSI or bidi character in a name.

Features may declare their own event types (``tier_changed`` …) with
:func:`event_type` and emit them through the inbox for durable delivery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from bot.storage.keys import bounded_key
from bot.textsafe import clean_name

ChatType = Literal["group", "single"]
JoinScene = Literal["invite", "qrcode", "other"]

EXTERNAL_PREFIXES = ("wm", "wo")
NAME_LIMIT = 128  # member and group names: control, ANSI and bidi characters removed (bot.textsafe.clean_name)


class PayloadError(ValueError):
    """A normalised payload that does not describe a valid event."""


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str = ""
    staff: bool = False

    @property
    def display(self) -> str:
        return self.name or self.id

    @property
    def is_external(self) -> bool:
        return self.id.startswith(EXTERNAL_PREFIXES)


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    type: ChatType = "group"
    name: str = ""

    @property
    def is_group(self) -> bool:
        return self.type == "group"

    @property
    def display(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. ``key`` is unique per event and seeds idempotency keys."""

    type: ClassVar[str] = "event"
    key: str
    time: datetime
    channel: str = "internal"

    @property
    def chat_key(self) -> str:
        """Events with the same chat key are handled in order."""
        return ""

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            if f.name in ("key",):
                continue
            out[f.name] = _dump(getattr(self, f.name))
        return out


@dataclass(frozen=True, kw_only=True)
class ChatEvent(Event):
    """An event in a chat; a chat's events are handled in order."""

    chat: Chat

    @property
    def chat_key(self) -> str:
        return f"chat:{self.chat.id}"


@dataclass(frozen=True, kw_only=True)
class MemberEvent(Event):
    """An event about one member outside any chat; a member's events are handled in order."""

    member: Actor

    @property
    def chat_key(self) -> str:
        return f"contact:{self.member.id}"


@dataclass(frozen=True, kw_only=True)
class MessageEvent(ChatEvent):
    type: ClassVar[str] = "message"
    sender: Actor
    text: str
    mentions_bot: bool = False
    msg_id: str = ""
    reply: dict[str, Any] = field(default_factory=dict)  # how to answer: response_url, agent_id …

    @property
    def in_group(self) -> bool:
        return self.chat.is_group


@dataclass(frozen=True, kw_only=True)
class MemberJoined(ChatEvent):
    type: ClassVar[str] = "member_joined"
    member: Actor
    inviter: Actor | None = None
    scene: JoinScene = "other"


@dataclass(frozen=True, kw_only=True)
class MemberLeft(ChatEvent):
    type: ClassVar[str] = "member_left"
    member: Actor
    scene: Literal["left", "removed", "other"] = "other"


@dataclass(frozen=True, kw_only=True)
class ContactAdded(MemberEvent):
    """A customer added a staff member (``half``: added but not yet accepted)."""

    type: ClassVar[str] = "contact_added"
    staff: Actor
    state: str = ""
    welcome_code: str = ""
    half: bool = False


@dataclass(frozen=True, kw_only=True)
class ContactChanged(MemberEvent):
    """The other external-contact changes: edit, deletions, failed transfer."""

    type: ClassVar[str] = "contact_changed"
    change: Literal["edited", "removed_by_staff", "removed_by_customer", "transfer_failed"]
    staff: Actor
    detail: str = ""  # Source (DELETE_BY_TRANSFER) or FailReason
    # edited: the (tag id, tag name) pairs the staff member has on the contact now, when known
    # (read with externalcontact/get by bot.channels.enrich.ContactEnricher); None: not known
    tags: tuple[tuple[str, str], ...] | None = None

    @property
    def lost(self) -> bool:
        """The customer is gone from this staff member: deleted either way, except handed to another staff member
        (``del_external_contact`` with Source DELETE_BY_TRANSFER, 在职/离职继承)."""
        return self.change in ("removed_by_customer", "removed_by_staff") and self.detail != "DELETE_BY_TRANSFER"


@dataclass(frozen=True, kw_only=True)
class GroupCreated(ChatEvent):
    type: ClassVar[str] = "group_created"
    owner: Actor | None = None


@dataclass(frozen=True, kw_only=True)
class GroupUpdated(ChatEvent):
    """A group's owner, name or notice changed (member changes are MemberJoined/MemberLeft)."""

    type: ClassVar[str] = "group_updated"
    change: str


@dataclass(frozen=True, kw_only=True)
class GroupDismissed(ChatEvent):
    type: ClassVar[str] = "group_dismissed"


@dataclass(frozen=True, kw_only=True)
class EnteredAgent(Event):
    """A staff member opened the app (enter_agent) or the bot chat (aibot enter_chat)."""

    type: ClassVar[str] = "entered"
    user: Actor
    chat: Chat | None = None
    reply: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ArchiveNotify(Event):
    """WeCom has new archivable messages (msgaudit_notify)."""

    type: ClassVar[str] = "archive_notify"


@dataclass(frozen=True, kw_only=True)
class TierChanged(MemberEvent):
    """A member moved up or down the tier ladder (fired by the tiers feature, heard by SOP)."""

    type: ClassVar[str] = "tier_changed"
    from_tier: str
    to_tier: str
    reason: str = ""
    chat: Chat | None = None  # the group the member was last active in, if known


@dataclass(frozen=True, kw_only=True)
class TagAdded(MemberEvent):
    """A tag was put on a member (by an operator, a rule or WeCom)."""

    type: ClassVar[str] = "tag_added"
    tag: str
    chat: Chat | None = None


@dataclass(frozen=True, kw_only=True)
class MemberSilent(MemberEvent):
    """A customer has been quiet for ``days`` days since ``since`` (raised once per silence by the SOP feature's
    daily check, keyed by member, days and ``since``; heard by the ``silent`` trigger)."""

    type: ClassVar[str] = "member_silent"
    days: int
    since: datetime
    chat: Chat | None = None  # the group the member was last active in, if known


EVENT_TYPES: dict[str, type[Event]] = {}

E = TypeVar("E", bound=type[Event])


def event_type(cls: E) -> E:
    """Register an event class under its ``type`` so payloads of that type decode to it."""
    if cls.type in EVENT_TYPES and EVENT_TYPES[cls.type] is not cls:
        raise ValueError(f"event type {cls.type!r} registered twice")
    EVENT_TYPES[cls.type] = cls
    return cls


for _cls in (MessageEvent, MemberJoined, MemberLeft, ContactAdded, ContactChanged, GroupCreated,
             GroupUpdated, GroupDismissed, EnteredAgent, ArchiveNotify, TierChanged, TagAdded, MemberSilent):
    event_type(_cls)


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


def _actor(data: Any, where: str, staff_ids: frozenset[str] = frozenset()) -> Actor:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise PayloadError(f"{where}: an object with a non-empty string 'id' is required")
    name = data.get("name") or ""
    if not isinstance(name, str):
        raise PayloadError(f"{where}.name must be a string")
    staff = data.get("staff")
    if staff is None:
        staff = data["id"] in staff_ids
    elif not isinstance(staff, bool):
        raise PayloadError(f"{where}.staff must be true or false")
    return Actor(id=data["id"], name=clean_name(name, NAME_LIMIT), staff=staff)


def _chat(data: Any) -> Chat:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise PayloadError("chat: an object with a non-empty string 'id' is required")
    ctype = data.get("type", "group")
    if ctype not in ("group", "single"):
        raise PayloadError("chat.type must be 'group' or 'single'")
    name = data.get("name") or ""
    if not isinstance(name, str):
        raise PayloadError("chat.name must be a string")
    return Chat(id=data["id"], type=ctype, name=clean_name(name, NAME_LIMIT))


def _time(value: Any, fallback: datetime) -> datetime:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("time must be a UNIX timestamp in seconds")
    if value > 10**11:  # milliseconds, as in the message archive
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError("time is out of range") from exc


def _str(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string")
    return value


def _tags(value: Any) -> tuple[tuple[str, str], ...] | None:
    """``tags``: a list of {"id", "name"} objects (a contact's WeCom tags), or absent."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(t, dict) and isinstance(t.get("id", ""), str) and isinstance(t.get("name", ""), str)
            for t in value):
        raise PayloadError("tags must be a list of {id, name} objects")
    return tuple((t.get("id", ""), clean_name(t.get("name", ""), 64)) for t in value)


def events_from_payload(
    payload: dict[str, Any], key: str, received_at: datetime, staff_ids: frozenset[str] = frozenset()
) -> list[Event]:
    """Typed events of one normalised payload (several for a multi-member group change)."""
    if not isinstance(payload, dict):
        raise PayloadError("the event must be a JSON object")
    etype = payload.get("type")
    time = _time(payload.get("time"), received_at)
    channel = _str(payload, "channel", "webhook") or "webhook"
    base = {"time": time, "channel": channel}
    if etype == "message":
        text = payload.get("text")
        if not isinstance(text, str):
            raise PayloadError("text: a string is required for a message")
        mentions = payload.get("mentions_bot", False)
        if not isinstance(mentions, bool):
            raise PayloadError("mentions_bot must be true or false")
        reply = payload.get("reply") or {}
        if not isinstance(reply, dict):
            raise PayloadError("reply must be an object")
        return [MessageEvent(key=key, chat=_chat(payload.get("chat")),
                             sender=_actor(payload.get("sender"), "sender", staff_ids),
                             text=text, mentions_bot=mentions, msg_id=_str(payload, "msg_id"),
                             reply=reply, **base)]
    if etype in ("member_joined", "member_left"):
        chat = _chat(payload.get("chat"))
        members = payload.get("members")
        if members is None:
            members = [payload.get("member")]
        if not isinstance(members, list) or not members:
            raise PayloadError("member: an object (or members: a non-empty list) is required")
        actors = [_actor(m, "member", staff_ids) for m in members]
        out: list[Event] = []
        for actor, member_data in zip(actors, members, strict=True):
            k = key if len(actors) == 1 else f"{key}#{actor.id}"
            if etype == "member_joined":
                # each member may name its own inviter (WeCom's groupchat/get does); else the event's
                inviter_data = member_data.get("inviter", payload.get("inviter"))
                inviter = _actor(inviter_data, "inviter", staff_ids) if inviter_data else None
                scene = payload.get("scene", "other")
                if scene not in ("invite", "qrcode", "other"):
                    raise PayloadError("scene must be 'invite', 'qrcode' or 'other'")
                out.append(MemberJoined(key=k, chat=chat, member=actor, inviter=inviter, scene=scene, **base))
            else:
                scene = payload.get("scene", "other")
                if scene not in ("left", "removed", "other"):
                    raise PayloadError("scene must be 'left', 'removed' or 'other'")
                out.append(MemberLeft(key=k, chat=chat, member=actor, scene=scene, **base))
        return out
    if etype == "contact_added":
        half = payload.get("half", False)
        if not isinstance(half, bool):
            raise PayloadError("half must be true or false")
        return [ContactAdded(key=key, member=_actor(payload.get("member"), "member", staff_ids),
                             staff=_actor({"staff": True, **(payload.get("staff") or {})}, "staff"),
                             state=_str(payload, "state"), welcome_code=_str(payload, "welcome_code"),
                             half=half, **base)]
    if etype == "contact_changed":
        change = payload.get("change")
        if change not in ("edited", "removed_by_staff", "removed_by_customer", "transfer_failed"):
            raise PayloadError("change must be edited, removed_by_staff, removed_by_customer or transfer_failed")
        return [ContactChanged(key=key, change=change, member=_actor(payload.get("member"), "member", staff_ids),
                               staff=_actor({"staff": True, **(payload.get("staff") or {})}, "staff"),
                               detail=_str(payload, "detail"), tags=_tags(payload.get("tags")), **base)]
    if etype == "group_created":
        owner = payload.get("owner")
        return [GroupCreated(key=key, chat=_chat(payload.get("chat")),
                             owner=_actor(owner, "owner", staff_ids) if owner else None, **base)]
    if etype == "group_updated":
        return [GroupUpdated(key=key, chat=_chat(payload.get("chat")), change=_str(payload, "change"), **base)]
    if etype == "group_dismissed":
        return [GroupDismissed(key=key, chat=_chat(payload.get("chat")), **base)]
    if etype == "entered":
        chat = payload.get("chat")
        reply = payload.get("reply") or {}
        return [EnteredAgent(key=key, user=_actor(payload.get("user"), "user", staff_ids),
                             chat=_chat(chat) if chat else None, reply=reply, **base)]
    if etype == "archive_notify":
        return [ArchiveNotify(key=key, **base)]
    if etype == "tier_changed":
        chat = payload.get("chat")
        return [TierChanged(key=key, member=_actor(payload.get("member"), "member", staff_ids),
                            from_tier=_str(payload, "from_tier"), to_tier=_str(payload, "to_tier"),
                            reason=_str(payload, "reason"), chat=_chat(chat) if chat else None, **base)]
    if etype == "tag_added":
        chat = payload.get("chat")
        return [TagAdded(key=key, member=_actor(payload.get("member"), "member", staff_ids), tag=_str(payload, "tag"),
                         chat=_chat(chat) if chat else None, **base)]
    if etype == "member_silent":
        chat, days = payload.get("chat"), payload.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise PayloadError("days must be a positive integer")
        return [MemberSilent(key=key, member=_actor(payload.get("member"), "member", staff_ids), days=days,
                             since=_time(payload.get("since"), time), chat=_chat(chat) if chat else None, **base)]
    cls = EVENT_TYPES.get(etype) if isinstance(etype, str) else None
    if cls is None:
        raise PayloadError(f"unknown event type {etype!r}")
    decode = getattr(cls, "from_payload", None)
    if decode is None:
        raise PayloadError(f"event type {etype!r} cannot be decoded")
    return [decode(payload, key=key, **base)]


def chat_key_of(payload: dict[str, Any]) -> str:
    """The ordering key of a normalised payload, before decoding."""
    chat = payload.get("chat")
    if isinstance(chat, dict) and isinstance(chat.get("id"), str):
        return bounded_key(f"chat:{chat['id']}", 160)
    member = payload.get("member")
    if isinstance(member, dict) and isinstance(member.get("id"), str):
        return bounded_key(f"contact:{member['id']}", 160)
    return ""
