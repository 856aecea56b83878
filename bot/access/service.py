"""Console access: one-time sign-in links, sessions, and who is signed in with which roles.

Only staff who hold a role in the bot (admin from config, operator or reviewer
granted with ``/role``) may sign in; the roles are read again on every request,
so revoking a role in chat takes effect on the page at once. Tokens and session
ids are random (256 bits) and stored only as SHA-256 digests; a link works once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.access import store
from bot.roles import ADMIN, OPERATOR, REVIEWER

if TYPE_CHECKING:
    from bot.access.config import ConsoleConfig
    from bot.clock import Clock
    from bot.roles import Roles

CONSOLE_ROLES = frozenset({ADMIN, OPERATOR, REVIEWER})
TOUCH_EVERY = timedelta(minutes=1)


class AccessDenied(Exception):
    """Sign-in refused; ``reason`` is what the person is told (Chinese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Staff:
    """The signed-in person: who, with which roles, in which session."""

    user_id: str
    roles: frozenset[str]
    session_id: int = 0

    def has_role(self, *roles: str) -> bool:
        return ADMIN in self.roles or any(r in self.roles for r in roles)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ConsoleAccess:
    def __init__(self, config: ConsoleConfig, roles: Roles, clock: Clock) -> None:
        self.config = config
        self.roles = roles
        self.clock = clock

    async def console_roles(self, session: Any, user_id: str) -> frozenset[str]:
        return (await self.roles.of(session, user_id)) & CONSOLE_ROLES

    async def invite(self, session: Any, user_id: str, by: str) -> str:
        """A new one-time sign-in token for ``user_id`` (who must hold a console role)."""
        if not await self.console_roles(session, user_id):
            raise AccessDenied(f"{user_id} 没有管理员、运营或合规审核角色，先用 /role grant 授予角色")
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        await store.add_invite(session, token_hash=digest(token), user_id=user_id, by=by, now=now,
                               expires_at=now + timedelta(minutes=self.config.invite_minutes))
        return token

    def link(self, token: str, base_url: str = "") -> str:
        base = (self.config.public_url or base_url).rstrip("/")
        return f"{base}/console/login/link/{token}"

    async def redeem(self, session: Any, token: str, ip: str = "") -> tuple[str, str]:
        """Use a sign-in link: (session id for the cookie, user id), or AccessDenied."""
        user_id = await store.take_invite(session, digest(token), self.clock.now())
        if user_id is None:
            raise AccessDenied("登录链接无效、已用过或已过期，请让管理员重新生成")
        return await self.open_session(session, user_id, via="invite", ip=ip), user_id

    async def open_session(self, session: Any, user_id: str, *, via: str, ip: str = "") -> str:
        if not await self.console_roles(session, user_id):
            raise AccessDenied(f"{user_id} 没有控制台权限（需要管理员、运营或合规审核角色）")
        sid = secrets.token_urlsafe(32)
        now = self.clock.now()
        await store.add_session(session, sid_hash=digest(sid), user_id=user_id, via=via, now=now,
                                expires_at=now + timedelta(hours=self.config.session_hours), ip=ip)
        return sid

    async def who(self, session: Any, sid: str) -> Staff | None:
        """The staff member behind a live session id with their roles now; None when signed out or expired,
        or when they no longer hold a console role."""
        if not sid:
            return None
        now = self.clock.now()
        row = await store.live_session(session, digest(sid), now)
        if row is None:
            return None
        roles = await self.console_roles(session, row.user_id)
        if not roles:
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            await store.touch_session(session, row.id, now)
        return Staff(user_id=row.user_id, roles=roles, session_id=row.id)

    async def sign_out(self, session: Any, sid: str) -> bool:
        return bool(await store.revoke_session(session, digest(sid), self.clock.now()))

    async def sign_out_everywhere(self, session: Any, user_id: str) -> int:
        return await store.revoke_user(session, user_id, self.clock.now())
