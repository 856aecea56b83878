"""What a sender receives and how it reports failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("reply", "group_robot", "app_message", "appchat", "mass_send", "moment_task", "welcome",
         "remind_staff", "mark_tag")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row, as a sender sees it."""

    id: int
    key: str
    kind: str
    chat_id: str
    destination: dict[str, Any]
    payload: dict[str, Any]
    attempts: int = 1

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))

    @property
    def msgtype(self) -> str:
        return str(self.payload.get("msgtype", "text"))

    @property
    def to(self) -> list[str]:
        return list(self.destination.get("to", []))

    @property
    def chat(self) -> dict[str, Any]:
        return dict(self.destination.get("chat") or {})


class SendError(Exception):
    """A failed delivery. ``retryable`` ones go back to the outbox with backoff."""

    def __init__(self, reason: str, *, retryable: bool, errcode: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.errcode = errcode
        self.retry_after = retry_after


@dataclass(slots=True)
class SendResult:
    info: dict[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> SendResult:
        """Deliver once; raise SendError on failure."""
        ...

    async def close(self) -> None: ...
