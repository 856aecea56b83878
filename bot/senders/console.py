"""The default sender: prints every delivery, readably or as one JSON object per line."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from bot.senders.base import Delivery, SendResult

KIND_LABELS = {
    "reply": "回复", "group_robot": "群机器人", "app_message": "应用消息", "appchat": "群聊消息",
    "mass_send": "群发任务", "moment_task": "朋友圈任务", "welcome": "欢迎语", "remind_staff": "提醒员工",
    "mark_tag": "打标签",
}


class ConsoleSender:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def record(self, d: Delivery) -> dict[str, Any]:
        rec: dict[str, Any] = {"kind": d.kind, "chat": d.chat_id, "to": d.to, "text": d.text, "key": d.key}
        if d.msgtype != "text":
            rec["msgtype"] = d.msgtype
        for extra in ("sender", "external_userids", "chat_ids", "welcome_code", "visible", "robot", "mention",
                      "userid", "external_userid"):
            if extra in d.destination:
                rec[extra] = d.destination[extra]
        for extra in ("attachments", "add_tag", "remove_tag"):
            if d.payload.get(extra):
                rec[extra] = d.payload[extra]
        return rec

    async def send(self, delivery: Delivery) -> SendResult:
        out = self._out()
        if self.fmt == "json":
            out.write(json.dumps(self.record(delivery), ensure_ascii=False) + "\n")
        else:
            out.write(self.render_text(delivery))
        out.flush()
        return SendResult({"via": "console"})

    def render_text(self, d: Delivery) -> str:
        chat = d.chat
        where = chat.get("name") or d.chat_id or ""
        if chat.get("name") and d.chat_id:
            where = f"{chat['name']}({d.chat_id})"
        target = f" → {where}" if where else ""
        to = f" @{','.join(d.to)}" if d.to else ""
        if d.kind == "mass_send" and d.destination.get("sender"):   # one 群发 task: whose, for how many
            customers = d.destination.get("external_userids") or []
            to = f" {d.destination['sender']}" + (f" → {len(customers)} 位客户" if customers else "")
        head = f"── [{KIND_LABELS.get(d.kind, d.kind)}]{target}{to}"
        body = d.text
        if d.kind == "mark_tag":
            body = f"+{d.payload.get('add_tag', [])} -{d.payload.get('remove_tag', [])}"
        lines = "\n".join(f"   {line}" for line in body.splitlines() or [""])
        return f"{head}\n{lines}\n"

    async def close(self) -> None:
        return None


class RecordingSender:
    """Keeps every delivery in memory; for tests and the simulator."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def send(self, delivery: Delivery) -> SendResult:
        self.deliveries.append(delivery)
        return SendResult({"via": "memory"})

    async def close(self) -> None:
        return None
