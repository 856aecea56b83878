"""The message archive (会话内容存档): decrypted records in, alerts out.

One JSON object per line, as ``DecryptData`` gives it (docs/wecom-protocol.md §6)::

    {"seq": 1, "msgid": "…", "action": "send", "from": "zhangsan", "tolist": ["wmXyz"], "roomid": "",
     "msgtime": 1547087894783, "msgtype": "text", "text": {"content": "加我微信"}}

Every line is checked first. A batch with a bad line is refused whole — each bad
line named with its number and problem — and nothing is stored, so the seq
cursor never jumps over a hole (``import-archive --skip-bad`` imports the good
lines anyway). Records already imported (same msgid) are skipped, so a file
imported twice raises no alert twice; a recall (``revoke.pre_msgid``) is linked
to the original message and its alerts, in whichever order they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.channels.edge import EdgeProblem, clean_payload, loads
from bot.channels.parse import is_staff_id
from bot.compliance.service import Moderation, Observed
from bot.compliance.store import Store
from bot.effects import Effects
from bot.events import Actor, Chat

if TYPE_CHECKING:
    from bot.app import BotApp

CHUNK = 200
PLACEHOLDER = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "file": "[文件]", "emotion": "[表情]",
               "link": "[链接]", "weapp": "[小程序]", "card": "[名片]", "location": "[位置]", "redpacket": "[红包]",
               "external_redpacket": "[红包]", "transfer": "[转账]", "chatrecord": "[聊天记录]",
               "revoke": "[撤回]", "agree": "[同意存档]", "disagree": "[拒绝存档]"}


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    line: int
    seq: int
    msgid: str
    action: str
    sender: str
    tolist: tuple[str, ...]
    roomid: str
    at: datetime
    msgtype: str
    text: str
    pre_msgid: str | None = None


@dataclass(slots=True)
class ImportReport:
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    alerts: int = 0
    repeats: int = 0
    recalls: int = 0
    cursor: int | None = None
    problems: list[LineProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "imported": self.imported, "duplicates": self.duplicates,
                "skipped": self.skipped, "alerts": self.alerts, "repeats": self.repeats, "recalls": self.recalls,
                "cursor": self.cursor, "problems": [p.to_json() for p in self.problems]}


def _record(obj: Any, line: int) -> ArchiveRecord:
    if not isinstance(obj, dict):
        raise ValueError("a record must be a JSON object")
    seq = obj.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise ValueError("seq: a non-negative 64-bit integer is required")
    msgid = obj.get("msgid")
    if not isinstance(msgid, str) or not msgid or len(msgid) > 200:
        raise ValueError("msgid: a string of 1-200 characters is required")
    action = obj.get("action", "send")
    if action not in ("send", "recall", "switch"):
        raise ValueError(f"action must be send, recall or switch, got {action!r}")
    sender = obj.get("from", "")
    if not isinstance(sender, str) or (action != "switch" and not sender):
        raise ValueError("from: the sender's user id is required")
    tolist = obj.get("tolist", [])
    if not isinstance(tolist, list) or not all(isinstance(t, str) for t in tolist):
        raise ValueError("tolist must be a list of user ids")
    roomid = obj.get("roomid", "") or ""
    if not isinstance(roomid, str):
        raise ValueError("roomid must be a string")
    msgtime = obj.get("msgtime", obj.get("time"))
    if isinstance(msgtime, bool) or not isinstance(msgtime, int | float) or msgtime <= 0:
        raise ValueError("msgtime: the send time in UTC milliseconds is required")
    try:
        at = datetime.fromtimestamp(msgtime / 1000 if msgtime > 10**11 else msgtime, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("msgtime is out of range") from None
    msgtype = obj.get("msgtype", "text" if action == "send" else "")
    if not isinstance(msgtype, str):
        raise ValueError("msgtype must be a string")
    text = ""
    pre = None
    if msgtype == "text":
        body = obj.get("text")
        if not isinstance(body, dict) or not isinstance(body.get("content"), str):
            raise ValueError('a text record needs "text": {"content": "…"}')
        text = body["content"]
    elif msgtype == "revoke" or action == "recall":
        body = obj.get("revoke")
        if not isinstance(body, dict) or not isinstance(body.get("pre_msgid"), str) or not body["pre_msgid"]:
            raise ValueError('a recall needs "revoke": {"pre_msgid": "…"}')
        pre = body["pre_msgid"]
        msgtype = "revoke"
    else:
        text = placeholder(msgtype, obj.get(msgtype))
    return ArchiveRecord(line=line, seq=seq, msgid=msgid, action=action, sender=sender, tolist=tuple(tolist),
                         roomid=roomid, at=at, msgtype=msgtype, text=text, pre_msgid=pre)


def placeholder(msgtype: str, body: Any) -> str:
    """How a message that is not text is logged: [红包] and what the record tells of it (wish and amount, the
    card's user, the mini-program's name, the file's name)."""
    label = PLACEHOLDER.get(msgtype, f"[{msgtype}]")
    if not isinstance(body, dict):
        return label
    details = [str(body[k])[:60] for k in ("wish", "title", "displayname", "corpname", "userid", "filename")
               if isinstance(body.get(k), str) and body[k].strip()]
    amount = body.get("totalamount", body.get("amount"))
    if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
        details.append(f"¥{amount / 100:.2f}")  # fen
    return " ".join([label, *details])


def parse_lines(lines: Iterable[str | bytes]) -> tuple[list[ArchiveRecord], list[LineProblem]]:
    """Every record of a JSONL feed, and a problem for each bad line (blank lines are ignored)."""
    records: list[ArchiveRecord] = []
    problems: list[LineProblem] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            problems.append(LineProblem(n, "not UTF-8"))
            continue
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        try:
            obj = clean_payload(loads(line))  # nesting, NaN, huge numbers, NUL and lone surrogates refused
        except EdgeProblem as exc:
            problems.append(LineProblem(n, f"not JSON: {exc}"))
            continue
        try:
            rec = _record(obj, n)
        except ValueError as exc:
            problems.append(LineProblem(n, str(exc)))
            continue
        if rec.msgid in seen:
            continue  # the same record twice in one batch counts once
        seen[rec.msgid] = n
        records.append(rec)
    return records, problems


def observed(rec: ArchiveRecord, staff_ids: frozenset[str]) -> Observed:
    staff = is_staff_id(rec.sender, staff_ids) if rec.sender else False
    if rec.roomid:
        chat = Chat(id=rec.roomid, type="group", name="")
    else:
        peer = rec.tolist[0] if rec.tolist else ""
        pair = sorted(p for p in (rec.sender, peer) if p)
        other = peer if staff else rec.sender
        chat = Chat(id="single:" + "|".join(pair), type="single", name=other)
    # A 1:1 conversation is watched when it is a staff member writing to a customer (an external id).
    internal = not rec.roomid and staff and not any(t.startswith(("wm", "wo")) for t in rec.tolist)
    return Observed(key=f"archive:{rec.msgid}", chat=chat, sender=Actor(id=rec.sender or "system", staff=staff),
                    staff=staff, text=rec.text, at=rec.at, msg_id=rec.msgid, source="archive",
                    msgtype=rec.msgtype, seq=rec.seq, revoke_of=rec.pre_msgid, internal=internal)


async def cursor(app: BotApp) -> int | None:
    """The highest ``seq`` imported so far (pull from there next time)."""
    async with app.db.read() as s:
        return await Store(app.db).cursor(s)


async def import_records(app: BotApp, service: Moderation, records: list[ArchiveRecord]) -> ImportReport:
    """Observe each record (chunks of 200, one transaction each); the cursor moves with each chunk.
    The texts of a chunk are scanned together (``Matcher.scan_many``: the same hits, one pass)."""
    report = ImportReport(records=len(records))
    staff_ids = frozenset(app.config.bot.staff_ids)
    ordered = sorted(records, key=lambda r: (r.seq, r.line))
    for i in range(0, len(ordered), CHUNK):
        chunk = ordered[i:i + CHUNK]
        kick = False
        matcher = service.matcher
        # the scan is CPU work: in a thread, so the event loop keeps answering while a chunk is scanned
        scanned = await asyncio.to_thread(matcher.scan_many,
                                          [rec.text if rec.msgtype == "text" else "" for rec in chunk])
        async with app.db.session() as s:
            for rec, hits in zip(chunk, scanned, strict=True):
                if rec.action == "switch":
                    report.skipped += 1
                    continue
                msg = observed(rec, staff_ids)
                fx = Effects(app, s, source=msg.key)
                obs = await service.observe(fx, msg, (matcher, hits))
                if not obs.new_message:
                    report.duplicates += 1
                    continue
                report.imported += 1
                report.alerts += len(obs.alerts)
                report.repeats += obs.repeats
                report.recalls += int(rec.pre_msgid is not None)
                kick = kick or obs.queued > 0
            report.cursor = await service.store.advance_cursor(s, max(r.seq for r in chunk), app.clock.now())
        if kick:
            app.outbox_pump.kick()
    if report.cursor is None:
        report.cursor = await cursor(app)
    return report
