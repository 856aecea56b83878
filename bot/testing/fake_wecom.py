"""A local fake of the WeCom API, speaking the shapes of docs/wecom-protocol.md §3-4.

``FakeWeCom`` is an aiohttp server on a free loopback port. It implements
``gettoken``, ``message/send``, ``appchat/send``, ``webhook/send`` (group robots),
``externalcontact/send_welcome_msg``, ``add_msg_template`` (at most ``mass_limit`` external_userids),
``add_moment_task``,
``get_moment_task_result``, ``media/upload_attachment`` (multipart; Moments take
pictures only as its media_ids), ``groupchat/list``, ``groupchat/get``, ``mark_tag``,
``get_groupmsg_send_result`` (a 群发 task's customers: sent, or unsent while its sender is in
``unconfirmed``, or failed for ``invalid_externals``), ``add_contact_way`` (a channel code's QR),
``externalcontact/get`` (a contact and the tags each staff member has on them),
the 智能机器人 ``aibot/response`` (what a ``response_url`` points at) and the web sign-in
(OAuth): ``authorize(url)`` plays the browser at WeCom's sign-in page — it checks the app's
redirect and returns the callback address with a one-time ``code`` and the app's ``state``
— and ``auth/getuserinfo?code=`` answers who that code belongs to (a code works once, for
five minutes; an unknown or used one answers 40029). Every
answer carries ``errcode``/``errmsg``; required fields, byte limits and the
access token are checked; every request is recorded.

Failures to inject (each for the next ``times`` calls of a path):
``fail(path, errcode)``, ``http_error(path, 502)``, ``delay(path, seconds)`` (the call
still takes effect after the delay, like a reply lost on the way back; ``drop=True``
makes it fail instead), and ``expire_tokens()`` (every issued token answers 42001).

Error codes the docs do not pin down are the fake's choice: 40058 for a missing
or malformed parameter, 45002 for a text over its byte limit, 40050 for an
unknown group chat, 40068 for an unknown tag, 40058 for a used ``response_url``.

Under pytest (:mod:`bot.testing.plugin`) the ``fake_wecom`` fixture starts one per test on
the test's FakeClock, and ``wecom_config(...)`` builds a Config that sends through it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import web

from bot.testing.env import AGENT_ID, CORP_ID, SECRET

# paths that deliver something (what ``delivered()`` lists)
SENDING = ("message/send", "appchat/send", "webhook/send", "externalcontact/send_welcome_msg",
           "externalcontact/add_msg_template", "externalcontact/add_moment_task", "externalcontact/mark_tag",
           "aibot/response")
NO_TOKEN = ("gettoken", "webhook/send", "aibot/response")
CODE_TTL = 300  # an OAuth code works once, this many seconds
EXTERNAL = ("wm", "wo")


class Answer(Exception):
    """Stop handling and answer this errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass
class Request:
    method: str
    path: str                      # without /cgi-bin/, e.g. "message/send"
    query: dict[str, str]
    body: dict[str, Any] | None
    at: float
    status: int = 200
    errcode: int | None = None
    errmsg: str = ""
    effect: str = ""               # "delivered", "duplicate" (dropped by the duplicate check), "dropped" (rate)
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.errcode == 0


@dataclass
class _Fault:
    errcode: int | None = None
    errmsg: str = ""
    status: int | None = None
    delay: float = 0.0
    drop: bool = False


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.split("|") if v]
    return [str(v) for v in value or [] if v]


def _need(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value in (None, "", [], {}):
        raise Answer(40058, f"{name} is required")
    return value


def _content(body: dict[str, Any], msgtype: str, limit: int) -> str:
    part = body.get(msgtype)
    if not isinstance(part, dict):
        raise Answer(40058, f"{msgtype} is required")
    content = part.get("content")
    if not isinstance(content, str) or not content:
        raise Answer(44004, "empty content")
    if len(content.encode()) > limit:
        raise Answer(45002, f"content size out of limit ({len(content.encode())} > {limit} bytes)")
    return content


class FakeWeCom:
    def __init__(self, *, corp_id: str = CORP_ID, secret: str = SECRET, agent_id: int = AGENT_ID,
                 robot_keys: set[str] | None = None, now: Callable[[], float] = time.time,
                 token_ttl: int = 7200) -> None:
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.robot_keys = robot_keys          # None: any non-empty key is a robot
        self.now = now
        self.token_ttl = token_ttl
        self.users: set[str] | None = None    # valid member ids; None: any id that is not external
        self.appchats: set[str] | None = None  # chat ids appchat/send knows; None: any
        self.tags: set[str] | None = None     # valid tag ids for mark_tag; None: any
        self.invalid_externals: set[str] = set()  # add_msg_template puts these in fail_list
        self.unconfirmed: set[str] = set()    # senders who have not confirmed their 群发 tasks yet
        self.mass_tasks: dict[str, dict[str, Any]] = {}   # msgid -> the add_msg_template body
        self.mass_limit = 10_000   # external_userids one add_msg_template takes (a test may lower it)
        self.contact_ways: dict[str, dict[str, Any]] = {}  # config_id -> the add_contact_way body
        self.moment_polls = 1                 # get_moment_task_result answers "done" from this poll on
        self.requests: list[Request] = []
        self.tokens: dict[str, float] = {}    # token -> expiry (self.now() seconds)
        self.groups: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.contact_tags: dict[tuple[str, str], set[str]] = defaultdict(set)  # (staff, contact) -> tag ids
        self.contacts: dict[str, str] = {}   # external contact id -> name (externalcontact/get)
        self.tag_names: dict[str, str] = {}  # tag id -> tag name; an unnamed id is its own name
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._used_welcome: set[str] = set()
        self._used_responses: set[str] = set()
        self.codes: dict[str, tuple[str, float]] = {}  # OAuth code -> (user id, expiry); removed when used
        self._seq = itertools.count(1)
        self.media: dict[str, bytes] = {}     # media_id -> the uploaded file (media/upload_attachment)
        self.files: dict[str, tuple[bytes, str]] = {}  # what /files/<name> serves: (content, content type)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._routes: dict[str, Callable[[Request], dict[str, Any]]] = {
            "gettoken": self._gettoken, "message/send": self._message_send, "appchat/send": self._appchat_send,
            "webhook/send": self._webhook_send, "aibot/response": self._aibot_response,
            "externalcontact/send_welcome_msg": self._welcome, "externalcontact/add_msg_template": self._mass,
            "externalcontact/add_moment_task": self._moment,
            "externalcontact/get_moment_task_result": self._moment_result,
            "externalcontact/groupchat/list": self._group_list, "externalcontact/groupchat/get": self._group_get,
            "externalcontact/mark_tag": self._mark_tag, "externalcontact/get": self._contact_get,
            "externalcontact/get_groupmsg_send_result": self._mass_result,
            "externalcontact/add_contact_way": self._contact_way,
            "auth/getuserinfo": self._getuserinfo,
        }

    # ── injecting failures ──

    def fail(self, path: str, errcode: int, times: int = 1, errmsg: str = "injected failure") -> None:
        self._faults[path].extend(_Fault(errcode=errcode, errmsg=errmsg) for _ in range(times))

    def http_error(self, path: str, status: int = 502, times: int = 1) -> None:
        self._faults[path].extend(_Fault(status=status) for _ in range(times))

    def delay(self, path: str, seconds: float, times: int = 1, *, drop: bool = False) -> None:
        self._faults[path].extend(_Fault(delay=seconds, drop=drop) for _ in range(times))

    def expire_tokens(self) -> None:
        """Every token issued so far becomes expired (WeCom may expire one early)."""
        for token in self.tokens:
            self.tokens[token] = float("-inf")

    # ── set-up helpers ──

    def add_group(self, chat_id: str, name: str, owner: str, members: list[dict[str, Any]]) -> None:
        self.groups[chat_id] = {"chat_id": chat_id, "name": name, "owner": owner,
                                "create_time": int(self.now()), "notice": "", "member_list": members,
                                "admin_list": [], "status": 0}

    def add_contact(self, external_id: str, name: str, staff: str, tags: dict[str, str] | None = None) -> None:
        """A customer ``staff`` added, with the tags ({id: name}) that staff member put on them."""
        self.contacts[external_id] = name
        self.contact_tags[(staff, external_id)] = set(tags or {})
        self.tag_names.update(tags or {})

    def response_url(self, code: str | None = None) -> str:
        return f"{self.url}/cgi-bin/aibot/response?response_code={code or secrets.token_hex(8)}"

    def issue_code(self, user_id: str) -> str:
        """The code WeCom's sign-in page hands back after ``user_id`` scanned or confirmed (web OAuth)."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = (user_id, self.now() + CODE_TTL)
        return code

    def authorize(self, url: str, user_id: str) -> str:
        """The browser at WeCom's sign-in page: ``url`` is where the app sent it (``login_type``, ``appid``,
        ``agentid``, ``redirect_uri``, ``state``); ``user_id`` signs in; the answer is where WeCom sends the
        browser next — ``redirect_uri`` with a fresh ``code`` and the same ``state``."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if query.get("appid") != self.corp_id:
            raise ValueError(f"the sign-in page was opened for another corp: appid={query.get('appid')!r}")
        if query.get("agentid") != str(self.agent_id):
            raise ValueError(f"the sign-in page was opened for another app: agentid={query.get('agentid')!r}")
        redirect = query.get("redirect_uri", "")
        if not redirect.startswith(("http://", "https://")) or "state" not in query:
            raise ValueError("the sign-in page needs a redirect_uri and a state")
        sep = "&" if urlsplit(redirect).query else "?"
        return f"{redirect}{sep}{urlencode({'code': self.issue_code(user_id), 'state': query['state']})}"

    # ── what happened ──

    def calls(self, path: str | None = None) -> list[Request]:
        return [r for r in self.requests if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> list[Request]:
        """Requests that took effect (a message that reached someone, a task created, a tag set)."""
        return [r for r in self.requests if r.effect == "delivered" and (path is None or r.path == path)]

    # ── the server ──

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{path:.+}", self._handle)
        app.router.add_get("/files/{name}", self._file)
        return app

    def serve_file(self, name: str, content: bytes, content_type: str = "image/png") -> str:
        """Serve ``content`` at a URL (e.g. an image a Moments post links to) and return the URL."""
        self.files[name] = (content, content_type)
        return f"{self.url}/files/{name}"

    async def _file(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="no such file")
        return web.Response(body=found[0], content_type=found[1])

    async def _upload(self, request: web.Request, rec: Request) -> web.Response:
        """media/upload_attachment: one multipart file field "media"; JPG/PNG images up to 10 MB."""
        try:
            self._check_token(rec.query.get("access_token", ""))
            if rec.query.get("media_type") not in ("image", "video", "file"):
                raise Answer(40004, "invalid media type")
            if rec.query.get("attachment_type") not in ("1", "2"):
                raise Answer(40058, "attachment_type must be 1 (moments) or 2 (product album)")
            try:
                form = await request.post()
            except ValueError:
                raise Answer(40058, "the body is not multipart form data") from None
            media = form.get("media")
            content = media.file.read() if isinstance(media, web.FileField) else b""
            if not content:
                raise Answer(41005, "media data missing")
            if rec.query["media_type"] == "image" and not content.startswith((b"\x89PNG", b"\xff\xd8")):
                raise Answer(40005, "invalid file type (JPG or PNG)")
            if len(content) > 10 * 1024 * 1024:
                raise Answer(40006, "invalid file size")
        except Answer as a:
            return self._answer(rec, a.errcode, a.errmsg)
        media_id = f"media{next(self._seq)}"
        self.media[media_id] = content
        rec.body = {"size": len(content), "filename": media.filename if isinstance(media, web.FileField) else ""}
        return self._answer(rec, 0, "ok", {"type": rec.query["media_type"], "media_id": media_id,
                                           "created_at": str(int(self.now()))})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), handler_cancellation=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body: dict[str, Any] | None = None
        rec = Request(request.method, path, dict(request.query), None, self.now())
        self.requests.append(rec)
        if path == "media/upload_attachment":
            return await self._upload(request, rec)
        raw = await request.read()
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                return self._answer(rec, 40058, "the body is not JSON")
            body = parsed if isinstance(parsed, dict) else None
            rec.body = body
            if body is None:
                return self._answer(rec, 40058, "the body is not a JSON object")
        fault = self._faults[path].pop(0) if self._faults.get(path) else None
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                rec.status = fault.status
                return web.Response(status=fault.status, text="injected HTTP error")
            if fault.errcode is not None:
                return self._answer(rec, fault.errcode, fault.errmsg)
            if fault.drop:
                return self._answer(rec, -1, "system busy")
        route = self._routes.get(path)
        if route is None:
            return self._answer(rec, 40058, f"unknown API {path}", http_status=404)
        try:
            if path not in NO_TOKEN:
                self._check_token(rec.query.get("access_token", ""))
            if request.method == "POST" and body is None and path not in ("gettoken",):
                raise Answer(40058, "a JSON body is required")
            answer = route(rec)
        except Answer as a:
            return self._answer(rec, a.errcode, a.errmsg)
        if not rec.effect and path in SENDING:
            rec.effect = "delivered"
        return self._answer(rec, 0, "ok", answer)

    def _answer(self, rec: Request, errcode: int, errmsg: str, extra: dict[str, Any] | None = None, *,
                http_status: int = 200) -> web.Response:
        rec.errcode, rec.errmsg, rec.status = errcode, errmsg, http_status
        rec.answer = {"errcode": errcode, "errmsg": errmsg, **(extra or {})}
        return web.json_response(rec.answer, status=http_status)

    def _check_token(self, token: str) -> None:
        if not token:
            raise Answer(41001, "access_token missing")
        expiry = self.tokens.get(token)
        if expiry is None:
            raise Answer(40014, "invalid access_token")
        if self.now() >= expiry:
            raise Answer(42001, "access_token expired")

    # ── the API ──

    def _gettoken(self, rec: Request) -> dict[str, Any]:
        if rec.method != "GET":
            raise Answer(40058, "gettoken is a GET")
        if rec.query.get("corpid") != self.corp_id:
            raise Answer(40013, "invalid corpid")
        if rec.query.get("corpsecret") != self.secret:
            raise Answer(40001, "invalid credential")
        token = f"tok{next(self._seq)}-{secrets.token_hex(12)}"
        self.tokens[token] = self.now() + self.token_ttl
        return {"access_token": token, "expires_in": self.token_ttl}

    def _getuserinfo(self, rec: Request) -> dict[str, Any]:
        """Who signed in with ``code``: a member's ``userid``, or a non-member's ``openid`` (no userid)."""
        if rec.method != "GET":
            raise Answer(40058, "auth/getuserinfo is a GET")
        code = rec.query.get("code", "")
        if not code:
            raise Answer(41008, "missing oauth code")
        found = self.codes.pop(code, None)
        if found is None or self.now() >= found[1]:
            raise Answer(40029, "invalid code")
        user_id = found[0]
        if not self._valid_user(user_id):
            return {"openid": f"o{secrets.token_hex(8)}", "external_userid": user_id}
        return {"userid": user_id, "user_ticket": secrets.token_hex(16), "expires_in": 1800}

    def _valid_user(self, uid: str) -> bool:
        if self.users is not None:
            return uid in self.users
        return not uid.startswith(EXTERNAL)

    def _message_send(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        if body.get("agentid") != self.agent_id:
            raise Answer(40056, "invalid agentid")
        users, parties, tags = _ids(body.get("touser")), _ids(body.get("toparty")), _ids(body.get("totag"))
        if not users and not parties and not tags:
            raise Answer(40058, "touser, toparty or totag is required")
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            raise Answer(40008, "invalid message type")
        _content(body, msgtype, 2048)
        invalid = [u for u in users if not self._valid_user(u)]
        if len(invalid) == len(users) and not parties and not tags:
            raise Answer(81013, "user & party & tag all invalid")
        valid = [u for u in users if u not in invalid]
        prev = self._duplicate_of(rec)
        if prev is not None:
            rec.effect = "duplicate"
            return {"invaliduser": "|".join(invalid), "msgid": prev.answer.get("msgid", "")}
        # per member 30/min: WeCom drops the excess silently
        recent = [r for r in self.delivered("message/send") if rec.at - r.at < 60]
        if any(sum(u in _ids((r.body or {}).get("touser")) for r in recent) >= 30 for u in valid):
            rec.effect = "dropped"
        return {"invaliduser": "|".join(invalid), "msgid": f"msg{next(self._seq)}"}

    def _duplicate_of(self, rec: Request) -> Request | None:
        """WeCom's duplicate check (message/send, appchat/send): a request with ``enable_duplicate_check: 1``
        equal to one that took effect within ``duplicate_check_interval`` seconds (default 1800) is not shown
        again. WeCom compares the whole request, so an earlier copy sent without the flag does not count."""
        body = rec.body or {}
        if body.get("enable_duplicate_check") != 1:
            return None
        window = float(body.get("duplicate_check_interval", 1800))
        for prev in self.delivered(rec.path):
            if prev.body == body and rec.at - prev.at <= window:
                return prev
        return None

    def _appchat_send(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        chat_id = _need(body, "chatid")
        if self.appchats is not None and chat_id not in self.appchats:
            raise Answer(86003, "chat not exist")
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            raise Answer(40008, "invalid message type")
        _content(body, msgtype, 2048)
        if self._duplicate_of(rec) is not None:
            rec.effect = "duplicate"
        return {}

    def _webhook_send(self, rec: Request) -> dict[str, Any]:
        key = rec.query.get("key", "")
        if not key or (self.robot_keys is not None and key not in self.robot_keys):
            raise Answer(93000, "invalid webhook url")
        body = rec.body or {}
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown"):
            raise Answer(40008, "invalid message type")
        _content(body, msgtype, 2048 if msgtype == "text" else 4096)
        sent = [r for r in self.delivered("webhook/send") if r.query.get("key") == key and rec.at - r.at < 60]
        if len(sent) >= 20:
            raise Answer(45009, "api freq out of limit")
        return {}

    def _aibot_response(self, rec: Request) -> dict[str, Any]:
        code = rec.query.get("response_code", "")
        if not code or code in self._used_responses:
            raise Answer(40058, "invalid or used response_code")
        body = rec.body or {}
        msgtype = body.get("msgtype")
        if msgtype not in ("markdown", "text", "template_card"):
            raise Answer(40008, "invalid message type")
        if msgtype != "template_card":
            _content(body, msgtype, 20480)
        self._used_responses.add(code)
        return {}

    def _texts(self, body: dict[str, Any], limit: int) -> None:
        attachments = body.get("attachments") or []
        if not isinstance(attachments, list) or len(attachments) > 9:
            raise Answer(40058, "attachments: at most 9")
        for a in attachments:
            image = a.get("image") if isinstance(a, dict) and a.get("msgtype") == "image" else None
            if image is not None and not (isinstance(image, dict) and (image.get("media_id") or image.get("pic_url"))):
                raise Answer(40058, "image attachments need media_id or pic_url")
        if "text" in body:
            _content(body, "text", limit)
        elif not attachments:
            raise Answer(40058, "text or attachments is required")

    def _welcome(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        code = _need(body, "welcome_code")
        if code in self._used_welcome:
            raise Answer(41051, "welcome code has been used")
        self._texts(body, 4000)
        self._used_welcome.add(code)
        return {}

    def _mass(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        chat_type = body.get("chat_type", "single")
        if chat_type not in ("single", "group"):
            raise Answer(40058, "chat_type must be single or group")
        if chat_type == "group" or not body.get("external_userid"):
            _need(body, "sender")
        self._texts(body, 4000)
        if len(_ids(body.get("external_userid"))) > self.mass_limit:
            raise Answer(40058, f"external_userid: at most {self.mass_limit}")
        fail = [e for e in _ids(body.get("external_userid")) if e in self.invalid_externals]
        msgid = f"msgTpl{next(self._seq)}"
        self.mass_tasks[msgid] = body
        return {"fail_list": fail, "msgid": msgid}

    def _mass_result(self, rec: Request) -> dict[str, Any]:
        """get_groupmsg_send_result: status 0 unsent (the sender has not confirmed), 1 sent, 2 not a contact."""
        body = rec.body or {}
        task = self.mass_tasks.get(_need(body, "msgid"))
        if task is None:
            raise Answer(41060, "invalid msgid")
        staff = _need(body, "userid")
        limit = body.get("limit", 500)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise Answer(40058, "limit must be 1-1000")
        if task.get("sender") and task["sender"] != staff:
            return {"detail_list": [], "next_cursor": ""}
        confirmed = staff not in self.unconfirmed
        details = [{"external_userid": e, "userid": staff,
                    "status": 2 if e in self.invalid_externals else 1 if confirmed else 0,
                    **({"send_time": int(self.now())} if confirmed else {})}
                   for e in _ids(task.get("external_userid"))]
        start = int(body.get("cursor") or 0)
        return {"detail_list": details[start:start + limit],
                "next_cursor": str(start + limit) if start + limit < len(details) else ""}

    def _contact_way(self, rec: Request) -> dict[str, Any]:
        """add_contact_way: type 1 (one user) or 2 (several), scene 1 (button) or 2 (QR code), state ≤ 30."""
        body = rec.body or {}
        kind, scene, users = body.get("type"), body.get("scene"), _ids(body.get("user"))
        if kind not in (1, 2) or scene not in (1, 2):
            raise Answer(40058, "type must be 1 or 2 and scene 1 or 2")
        if not users or (kind == 1 and len(users) != 1) or len(users) > 100:
            raise Answer(40058, "user: one member for type 1, up to 100 for type 2")
        if any(not self._valid_user(u) for u in users):
            raise Answer(60111, "invalid userid")
        if len(str(body.get("state", ""))) > 30:
            raise Answer(40058, "state: at most 30 characters")
        config_id = f"way{next(self._seq)}"
        self.contact_ways[config_id] = body
        answer: dict[str, Any] = {"config_id": config_id}
        if scene == 2:
            answer["qr_code"] = f"https://wework.qpic.cn/wwpic/{config_id}/0"
        return answer

    def _moment(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        attachments = body.get("attachments") or []
        if "text" in body:
            content = (body["text"] or {}).get("content", "") if isinstance(body["text"], dict) else ""
            if len(content) > 2000:
                raise Answer(45002, "text content over 2000 characters")
        if not (body.get("text") or {}).get("content") and not attachments:
            raise Answer(40058, "text or attachments is required")
        if len(attachments) > 9:
            raise Answer(40058, "attachments: at most 9")
        for a in attachments:  # Moments take pictures only as media_ids of upload_attachment
            kind = a.get("msgtype") if isinstance(a, dict) else None
            inner = a.get(kind) if kind in ("image", "video", "link") else None
            if not isinstance(inner, dict):
                raise Answer(40058, "attachments: msgtype image, video or link with its object")
            if kind == "link":
                if not inner.get("title") or not str(inner.get("url", "")).startswith(("http://", "https://")):
                    raise Answer(40058, "link attachments need title and url")
                if "media_id" in inner and inner["media_id"] not in self.media:
                    raise Answer(40007, "invalid media_id")
            elif inner.get("media_id") not in self.media:
                raise Answer(40007, "invalid media_id")
        jobid = f"job{next(self._seq)}"
        self.jobs[jobid] = {"body": body, "polls": 0}
        return {"jobid": jobid}

    def _moment_result(self, rec: Request) -> dict[str, Any]:
        if rec.method != "GET":
            raise Answer(40058, "get_moment_task_result is a GET")
        job = self.jobs.get(rec.query.get("jobid", ""))
        if job is None:
            raise Answer(40058, "invalid jobid")
        job["polls"] += 1
        if job["polls"] < self.moment_polls:
            return {"status": 2, "type": "add_moment_task", "result": {}}
        visible = (job["body"].get("visible_range") or {}).get("sender_list") or {}
        invalid = [u for u in visible.get("user_list", []) if not self._valid_user(u)]
        return {"status": 3, "type": "add_moment_task",
                "result": {"errcode": 0, "errmsg": "ok", "moment_id": f"moment-{rec.query['jobid']}",
                           "invalid_sender_list": {"user_list": invalid, "department_list": []},
                           "invalid_external_contact_list": {"tag_list": []}}}

    def _group_list(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        limit = body.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise Answer(40058, "limit must be 1-1000")
        owners = set((body.get("owner_filter") or {}).get("userid_list") or [])
        status = body.get("status_filter", 0)
        chats = [g for g in self.groups.values() if (not owners or g["owner"] in owners)
                 and (status == 0 or g["status"] == status)]
        start = int(body.get("cursor") or 0)
        page = chats[start:start + limit]
        next_cursor = str(start + limit) if start + limit < len(chats) else ""
        return {"group_chat_list": [{"chat_id": g["chat_id"], "status": g["status"]} for g in page],
                "next_cursor": next_cursor}

    def _group_get(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        group = self.groups.get(_need(body, "chat_id"))
        if group is None:
            raise Answer(40050, "chat_id not found")
        out = {k: v for k, v in group.items() if k != "status"}
        if body.get("need_name") != 1:
            out["member_list"] = [{k: v for k, v in m.items() if k != "name"} for m in group["member_list"]]
        return {"group_chat": out}

    def _mark_tag(self, rec: Request) -> dict[str, Any]:
        body = rec.body or {}
        staff, external = _need(body, "userid"), _need(body, "external_userid")
        add, remove = _ids(body.get("add_tag")), _ids(body.get("remove_tag"))
        if not add and not remove:
            raise Answer(40058, "add_tag or remove_tag is required")
        if self.tags is not None and any(t not in self.tags for t in add + remove):
            raise Answer(40068, "invalid tagid")
        tags = self.contact_tags[(staff, external)]
        tags.difference_update(remove)
        tags.update(add)
        return {}


    def _contact_get(self, rec: Request) -> dict[str, Any]:
        external = rec.query.get("external_userid", "")
        if not external:
            raise Answer(40058, "external_userid is required")
        if external not in self.contacts:
            raise Answer(84061, "not external contact")
        follow = [{"userid": staff, "remark": "", "createtime": int(self.now()),
                   "tags": [{"group_name": "", "tag_name": self.tag_names.get(t, t), "type": 1, "tag_id": t}
                            for t in sorted(tags)]}
                  for (staff, ext), tags in sorted(self.contact_tags.items()) if ext == external]
        return {"external_contact": {"external_userid": external, "name": self.contacts[external], "type": 1},
                "follow_user": follow}


@contextmanager
def fake_wecom_in_thread(**kw: Any) -> Iterator[FakeWeCom]:
    """The fake on its own event loop in a thread, for tests that drive a real ``serve`` process."""
    fake = FakeWeCom(**kw)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-wecom", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
