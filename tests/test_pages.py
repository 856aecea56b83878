"""The web console's doors: sign-in by one-time link, sessions, CSRF, roles, headers, rate limits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.access import ACCESS
from bot.access.models import ConsoleSession
from bot.app import BotApp
from bot.storage.models import AuditLog
from bot.testing import Harness, serve

VENDOR = Path(__file__).resolve().parent.parent / "bot" / "pages" / "static" / "vendor"


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[TestClient]:
    await harness.admin("/role grant @op1 operator")
    await harness.admin("/role grant @rev1 reviewer")
    async with serve(harness.app) as c:
        yield c


async def invite(app: BotApp, user: str) -> str:
    async with app.db.session() as s:
        token = await app.get(ACCESS).invite(s, user, by="admin01")
    return token


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


async def sign_in(client: TestClient, app: BotApp, user: str) -> str:
    """Sign in through the one-time link as a browser would; the console's CSRF token."""
    token = await invite(app, user)
    page = await client.get(f"/console/login/link/{token}")
    assert page.status == 200
    r = await client.post(f"/console/login/link/{token}", data={"csrf": csrf_of(await page.text())},
                          allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/console/"
    home = await client.get("/console/")
    assert home.status == 200
    return csrf_of(await home.text())


async def test_every_page_needs_a_session(client: TestClient) -> None:
    for path in ("/console/", "/console/alerts", "/console/knowledge", "/console/members"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/console/login")
    r = await client.get("/console/api/anything", allow_redirects=False)
    assert r.status == 401 and (await r.json())["error"]
    r = await client.post("/console/logout", allow_redirects=False)
    assert r.status == 302  # not signed in: to the sign-in page, nothing else happens


async def test_a_link_signs_in_once_and_sign_out_ends_the_session(client: TestClient, harness: Harness) -> None:
    app = harness.app
    token = await invite(app, "op1")
    page = await client.get(f"/console/login/link/{token}")  # opening the link (a chat preview) uses nothing
    csrf = csrf_of(await page.text())
    await client.post(f"/console/login/link/{token}", data={"csrf": csrf}, allow_redirects=False)
    home = await client.get("/console/")
    assert home.status == 200 and "op1" in await home.text()
    cookie = home.cookies if home.cookies else None
    assert cookie is None or all(m["httponly"] for m in cookie.values())
    again = await client.post(f"/console/login/link/{token}", data={"csrf": csrf_of(await home.text())},
                              allow_redirects=False)
    assert again.status == 302 and "problem=" in again.headers["Location"]  # used once
    r = await client.post("/console/logout", data={"csrf": csrf_of(await home.text())}, allow_redirects=False)
    assert r.status == 302
    r = await client.get("/console/", allow_redirects=False)
    assert r.status == 302
    async with app.db.read() as s:
        rows = (await s.execute(ConsoleSession.__table__.select())).all()
    assert len(rows) == 1 and rows[0].revoked_at is not None
    assert rows[0].sid_hash != "" and len(rows[0].sid_hash) == 64  # only the digest is stored


async def test_only_staff_with_a_role_may_get_a_link(harness: Harness) -> None:
    from bot.access.service import AccessDenied

    async with harness.app.db.session() as s:
        with pytest.raises(AccessDenied, match="没有管理员、运营或合规审核角色"):
            await harness.app.get(ACCESS).invite(s, "wmCustomer", by="admin01")


async def test_a_role_taken_away_in_chat_ends_the_console_session(client: TestClient, harness: Harness) -> None:
    await sign_in(client, harness.app, "rev1")
    assert (await client.get("/console/alerts")).status == 200
    await harness.admin("/role revoke @rev1 reviewer")
    r = await client.get("/console/alerts", allow_redirects=False)
    assert r.status == 302


async def test_roles_decide_the_pages(client: TestClient, harness: Harness) -> None:
    await sign_in(client, harness.app, "rev1")
    assert (await client.get("/console/alerts")).status == 200
    for path in ("/console/knowledge", "/console/members", "/console/sop", "/console/handoffs"):
        assert (await client.get(path)).status == 403, path
    text = await (await client.get("/console/")).text()
    assert "合规告警" in text and "知识库" not in text  # the menu shows only what the role may open


async def test_posts_without_the_csrf_token_are_refused(client: TestClient, harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "op1")
    r = await client.post("/console/logout", data={}, allow_redirects=False)
    assert r.status == 403 and "CSRF" in await r.text()
    r = await client.post("/console/logout", data={"csrf": "forged"}, allow_redirects=False)
    assert r.status == 403
    assert (await client.get("/console/")).status == 200  # still signed in
    r = await client.post("/console/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
    assert r.status == 302


async def test_every_response_carries_the_security_headers(client: TestClient, harness: Harness) -> None:
    for path in ("/console/login", "/console/"):
        r = await client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    html = await (await client.get("/console/login")).text()
    assert "<script>" not in html and "onclick" not in html  # no inline scripts anywhere


async def test_sign_in_attempts_are_rate_limited(client: TestClient, harness: Harness) -> None:
    limit = harness.app.config.console.login_attempts_per_minute
    page = await client.get("/console/login/link/x")
    csrf = csrf_of(await page.text())
    statuses = [(await client.post(f"/console/login/link/bad{i}", data={"csrf": csrf}, allow_redirects=False)).status
                for i in range(limit + 2)]
    assert statuses[:limit] == [302] * limit and statuses[-1] == 429


async def test_a_next_address_outside_the_console_is_ignored(client: TestClient) -> None:
    html = await (await client.get("/console/login?next=https://evil.example/")).text()
    assert "evil.example" not in html


async def test_chat_invite_is_admin_only_and_only_in_a_private_chat(harness: Harness) -> None:
    await harness.admin("/role grant @op1 operator")
    (text,) = await harness.admin("/console invite @op1", group=False)
    assert "/console/login/link/" in text and "只能用一次" in text
    (text,) = await harness.admin("/console invite @op1")  # in a group: no link posted there
    assert "/console/login/link/" not in text
    (text,) = await harness.say_texts("/console invite @op1", group=False, sender="op1")
    assert "/console/login/link/" not in text
    async with harness.app.db.read() as s:
        outcomes = [a.outcome for a in (await s.execute(AuditLog.__table__.select())).all()
                    if a.command == "console invite"]
    assert "ok" in outcomes and "denied" in outcomes


def test_vendored_libraries_are_the_pinned_files() -> None:
    table = (VENDOR / "VENDOR.md").read_text(encoding="utf-8")
    for name, digest in re.findall(r"\| (\S+\.min\.js) \| ([0-9a-f]{64}) \|", table):
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert len(re.findall(r"\.min\.js \| [0-9a-f]{64}", table)) == 2


async def test_console_can_be_switched_off(make_bot: Callable[..., BotApp], make_config: Callable[..., object]) -> None:
    app = make_bot(cfg=make_config(CONSOLE__ENABLED="false"))
    async with serve(app) as c:
        assert (await c.get("/console/", allow_redirects=False)).status == 404


async def test_knowledge_pages_search_try_and_edit_through_the_chat_command(client: TestClient,
                                                                            harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "op1")
    html = await (await client.get("/console/knowledge?q=退款")).text()
    assert "refund" in html
    tried = await client.post("/console/knowledge/try", data={"text": "怎么退款", "csrf": csrf})
    assert tried.status == 200 and "会回答" in await tried.text()
    r = await client.post("/console/knowledge/entry/refund-policy/edit",
                          data={"field": "答案", "value": "退款请联系小茶，三天内到账。", "csrf": csrf})
    page = await r.text()
    assert r.status == 200 and "已修改" in page, page
    await harness.app.settle()
    (answer,) = await harness.say_texts("怎么退款", group=False, sender="wmBob", name="Bob")
    assert "三天内到账" in answer  # the bot answers members with the edited entry
    async with harness.app.db.read() as s:
        audits = (await s.execute(AuditLog.__table__.select())).all()
    rows = [(a.command, a.outcome, a.actor, a.chat_id) for a in audits]
    assert ("kb edit", "ok", "op1", "console:op1") in rows


async def test_a_page_edit_is_checked_like_the_chat_command(client: TestClient, harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "op1")
    r = await client.post("/console/knowledge/entry/refund-policy/edit",
                          data={"field": "匹配", "value": "sometimes", "csrf": csrf})
    page = await r.text()
    assert "❌" in page and "已修改" not in page
    await client.post("/console/knowledge/entry/refund-policy/edit",
                      data={"field": "答案", "value": "{{ 'a' * 10**9 }}", "csrf": csrf})
    await harness.app.settle()
    sent = await harness.say("怎么退款", group=False, sender="wmBob", name="Bob")
    assert len(sent) <= 1 and all("a" * 1000 not in d.text for d in sent)  # the render budget: no flood


async def test_reviewers_cannot_use_operator_actions(client: TestClient, harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "rev1")
    r = await client.post("/console/knowledge/entry/refund-policy/edit",
                          data={"field": "答案", "value": "x", "csrf": csrf})
    assert r.status == 403
    r = await client.post("/console/knowledge/try", data={"text": "怎么退款", "csrf": csrf},
                          headers={"Accept": "application/json"})
    assert r.status == 403


async def raise_alert(harness: Harness) -> int:
    from bot.compliance.store import ALERTS

    await harness.say("请问这款茶怎么泡？", mention=False)
    await harness.say("您好，加 我 v x 吧，私下给您优惠", sender="staff01", name="张三", staff=True, mention=False)
    async with harness.app.db.read() as s:
        return int((await s.execute(ALERTS.select().order_by(ALERTS.c.id.desc()))).first().id)


async def test_a_reviewer_works_the_alert_queue(client: TestClient, harness: Harness) -> None:
    alert_id = await raise_alert(harness)
    csrf = await sign_in(client, harness.app, "rev1")
    queue = await (await client.get("/console/alerts")).text()
    assert f"#{alert_id}" in queue and "私下联系" in queue
    assert f"#{alert_id}" not in await (await client.get("/console/alerts?category=nosuch")).text()
    page = await (await client.get(f"/console/alerts/{alert_id}")).text()
    assert "<mark>加 我 v x</mark>" in page and "请问这款茶怎么泡？" in page  # the span and the context
    r = await client.post(f"/console/alerts/{alert_id}", data={"action": "resolve", "note": "已提醒员工", "csrf": csrf})
    assert "已处理" in await r.text()
    from bot.compliance.store import ALERTS

    async with harness.app.db.read() as s:
        row = (await s.execute(ALERTS.select().where(ALERTS.c.id == alert_id))).first()
    assert (row.status, row.resolved_by, row.note) == ("resolved", "rev1", "已提醒员工")
    (text,) = await harness.say_texts(f"/alerts show {alert_id}", sender="rev1", group=False, staff=True)
    assert "rev1" in text  # the chat command sees what the page did
    csv_text = (await (await client.get("/console/alerts.csv?status=all")).read()).decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("编号,时间,状态") and str(alert_id) in csv_text


async def test_bulk_acknowledge_runs_the_command_for_each(client: TestClient, harness: Harness) -> None:
    first = await raise_alert(harness)
    await harness.say("微信转账给我吧", sender="staff02", name="李四", staff=True, mention=False, chat="g2")
    csrf = await sign_in(client, harness.app, "rev1")
    from bot.compliance.store import ALERTS

    async with harness.app.db.read() as s:
        ids = [r.id for r in (await s.execute(ALERTS.select().where(ALERTS.c.status == "open"))).all()]
    assert first in ids
    r = await client.post("/console/alerts/ack", data=[("csrf", csrf), *[("id", str(i)) for i in ids]])
    assert f"已确认 {len(ids)} 条" in await r.text()
    async with harness.app.db.read() as s:
        assert {r.status for r in (await s.execute(ALERTS.select().where(ALERTS.c.id.in_(ids)))).all()} == {"acked"}
        audits = [a for a in (await s.execute(AuditLog.__table__.select())).all() if a.command == "alerts ack"]
    assert len(audits) == len(ids) and {a.actor for a in audits} == {"rev1"}


async def test_operators_cannot_open_the_alert_queue(client: TestClient, harness: Harness) -> None:
    await sign_in(client, harness.app, "op1")
    assert (await client.get("/console/alerts")).status == 403
    assert (await client.get("/console/alerts.csv")).status == 403


async def test_an_operator_finds_a_member_and_grants_points(client: TestClient, harness: Harness) -> None:
    await harness.say("大家好，我是新来的", sender="wmBob", name="Bob", mention=False)
    csrf = await sign_in(client, harness.app, "op1")
    found = await (await client.get("/console/members?q=Bo")).text()
    assert "/console/members/wmBob" in found
    profile = await (await client.get("/console/members/wmBob")).text()
    assert "Bob" in profile and "积分流水" in profile
    r = await client.post("/console/members/wmBob/points", data={"points": "20", "reason": "分享了使用心得",
                                                                  "csrf": csrf})
    page = await r.text()
    assert "分享了使用心得" in page and "+20" in page
    (card,) = await harness.say_texts("/tier show @wmBob", sender="op1", staff=True, group=False)
    assert "20" in card
    r = await client.post("/console/members/wmBob/points", data={"points": "lots", "reason": "x", "csrf": csrf})
    assert "应是整数" in await r.text()  # the command's own usage error, nothing changed
    assert (await client.get("/console/members/nobody")).status == 404


async def test_sop_runs_and_the_moments_week_on_pages(client: TestClient, harness: Harness) -> None:
    await harness.join("wmBob", "Bob", chat="g1", chat_name="新人群")  # the newcomer script starts for the group
    csrf = await sign_in(client, harness.app, "op1")
    page = await (await client.get("/console/sop")).text()
    assert "正在运行" in page
    from bot.sop.store import RUNS

    async with harness.app.db.read() as s:
        run = (await s.execute(RUNS.select().order_by(RUNS.c.id))).first()
    assert run is not None, "the example newcomer script runs on a join"
    timeline = await (await client.get(f"/console/sop/runs/{run.id}")).text()
    assert "接下来" in timeline and "已经发生" in timeline
    r = await client.post(f"/console/sop/runs/{run.id}", data={"action": "pause", "csrf": csrf})
    assert "已暂停" in await r.text()
    async with harness.app.db.read() as s:
        assert (await s.execute(RUNS.select().where(RUNS.c.id == run.id))).first().status == "paused"
    week = await (await client.get("/console/moments")).text()
    assert "朋友圈周历" in week
