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
    for path in ("/console/members/wmBob/note", "/console/members/wmBob/points"):  # operators' actions
        assert (await client.post(path, data={"text": "x", "points": "1", "reason": "x"})).status == 403, path
    text = await (await client.get("/console/")).text()
    assert 'href="/console/alerts"' in text and 'href="/console/knowledge"' not in text  # the menu: only what
    assert 'href="/console/handoffs"' not in text                                        # the role may open


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


async def test_the_profile_shows_the_channel_and_what_other_features_know(client: TestClient,
                                                                          harness: Harness) -> None:
    """The page shows what /member shows: where the customer came from, an open handoff, their SOP runs."""
    await harness.add_contact("wmCarol", "Carol", staff="staff05")
    await harness.say("找真人", group=False, sender="wmCarol", name="Carol")
    await sign_in(client, harness.app, "op1")
    page = await (await client.get("/console/members/wmCarol")).text()
    assert "<dd>员工添加" in page and "服务记录" in page
    assert "<dt>转人工</dt><dd>等待接待" in page
    (card,) = await harness.say_texts("/member @wmCarol", sender="op1", staff=True, group=False)
    assert "来源：员工添加" in card and "转人工：等待接待" in card


async def test_an_operator_adds_a_note_on_the_profile(client: TestClient, harness: Harness) -> None:
    await harness.say("大家好，我是新来的", sender="wmBob", name="Bob", mention=False)
    csrf = await sign_in(client, harness.app, "op1")
    assert "还没有备注" in await (await client.get("/console/members/wmBob")).text()
    r = await client.post("/console/members/wmBob/note", data={"text": "喜欢白茶，想要礼盒装", "csrf": csrf})
    assert "喜欢白茶，想要礼盒装" in await r.text()
    (listed,) = await harness.say_texts("/note list @wmBob", sender="op1", staff=True, group=False)
    assert "喜欢白茶，想要礼盒装" in listed  # the same note the chat command sees
    r = await client.post("/console/members/wmBob/note", data={"text": "长" * 501, "csrf": csrf})
    assert "备注太长了" in await r.text()  # the command's own refusal, nothing stored
    r = await client.post("/console/members/wmBob/note", data={"text": "没有令牌"})
    assert r.status in (400, 403)  # no CSRF token: refused


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


# ── the overview: the report as charts, the operations health ──


def options_of(html: str) -> dict[str, dict[str, object]]:
    """The ECharts options of a page part, by the chart's label."""
    import html as html_lib
    import json

    found = re.findall(r"""<div class="chart" data-option='([^']*)' role="img" aria-label="([^"]+)：""", html)
    return {label: json.loads(html_lib.unescape(option)) for option, label in found}


async def test_the_overview_draws_the_report_of_the_period_against_the_one_before(client: TestClient,
                                                                                   harness: Harness) -> None:
    import json

    from bot.insights import INSIGHTS
    from bot.insights.period import local_today, parse_span

    await harness.say("大家好，我是新来的", sender="wmBob", name="Bob", mention=False)
    await harness.say("打卡第一天", sender="wmCarol", name="Carol", mention=False)
    await harness.say("怎么退款", sender="wmBob", name="Bob", group=False)
    await sign_in(client, harness.app, "op1")
    shell = await (await client.get("/console/?span=7")).text()
    assert 'hx-get="/console/overview/report?span=7"' in shell and "运行状态" in shell
    part = await (await client.get("/console/overview/report?span=7")).text()
    tz = harness.app.config.bot.tz
    period = parse_span("7天", local_today(harness.app.clock.now(), tz), tz)
    report = await harness.app.get(INSIGHTS).report(period)
    assert f"{report['period']['since']} ~ {report['period']['until']}（7 天）" in part
    charts = options_of(part)
    tiers = charts["各等级人数"]
    names = {t["tier"]: t["name"] for t in report["conversion"]["funnel"]}
    assert tiers["xAxis"]["data"] == [names[t] for t in report["users"]["by_tier"]]  # type: ignore[index]
    assert tiers["series"][0]["data"] == list(report["users"]["by_tier"].values())  # type: ignore[index]
    assert [s["name"] for s in tiers["series"]] == ["本期", "上期"]  # type: ignore[index, union-attr]
    funnel = charts["等级漏斗"]["series"][0]["data"]  # type: ignore[index]
    assert funnel == [s["members"] for s in report["conversion"]["funnel"]]
    behaviour = charts["活跃与参与"]["series"]  # type: ignore[index]
    assert behaviour[0]["data"][0] == report["behaviour"]["active"] == 2  # type: ignore[index]
    assert charts["知识库问答"]["series"][0]["data"][0] == report["behaviour"]["kb"]["answered"]  # type: ignore[index]
    for empty in ("裂变", "本期和上期都没有数据"):  # no referral and no purchase: empty states, not empty charts
        assert empty in part
    assert "裂变" not in charts and "各等级 GMV" not in charts
    same = await (await client.get("/console/api/report?span=7")).json()
    assert same == json.loads(json.dumps(report, default=str))  # the same JSON as `siyu report --json`


async def test_a_period_with_no_customers_shows_empty_states(client: TestClient, harness: Harness) -> None:
    await sign_in(client, harness.app, "op1")
    part = await (await client.get("/console/overview/report?span=today")).text()
    assert "还没有客户" in part and "转化：本期和上期都没有客户" in part
    assert options_of(part) == {}


async def test_a_custom_period_is_checked(client: TestClient, harness: Harness) -> None:
    await sign_in(client, harness.app, "op1")
    part = await (await client.get("/console/overview/report?span=custom&since=2026-12-05&until=2026-12-01")).text()
    assert "开始日期 2026-12-05 晚于结束日期 2026-12-01" in part
    part = await (await client.get("/console/overview/report?since=2026-13-01")).text()
    assert "YYYY-MM-DD" in part
    part = await (await client.get("/console/overview/report?since=2025-01-01&until=2026-11-30")).text()
    assert "一次最多看 366 天" in part
    r = await client.get("/console/api/report?since=2026-12-05&until=2026-12-01")
    assert r.status == 400 and "晚于" in (await r.json())["error"]
    part = await (await client.get("/console/overview/report?span=custom&since=2026-11-01&until=2026-11-07")).text()
    assert "2026-11-01 ~ 2026-11-07（7 天），对比上期 2026-10-25 ~ 2026-10-31" in part


async def test_the_overview_shows_dead_deliveries_and_files_refused_on_reload(
        make_bot: Callable[..., BotApp], make_config: Callable[..., object], tmp_path: Path) -> None:
    from sqlalchemy import update

    from bot.storage.models import OutboxRow

    sop_dir = tmp_path / "sop"
    sop_dir.mkdir()
    (sop_dir / "broken.yaml").write_text("id: broken\nsteps: [\n", encoding="utf-8")
    app = make_bot(cfg=make_config(SOP__DIR=str(sop_dir)))
    await app.start()
    harness = Harness(app)
    await harness.admin("/role grant @rev1 reviewer")
    async with app.db.session() as s:
        await app.outbox.enqueue(s, key="t:dead", kind="app_message", to=["staff01"], text="x", source="test")
    async with app.db.session() as s:
        await s.execute(update(OutboxRow.__table__).where(OutboxRow.__table__.c.key == "t:dead").values(
            status="dead", attempts=5, last_error="errcode 81013: all recipients invalid"))
    async with serve(app) as c:
        await sign_in(c, app, "rev1")  # reviewers see the health, not the report
        page = await (await c.get("/console/")).text()
        assert "errcode 81013: all recipients invalid" in page
        assert "SOP 脚本：1 个问题" in page and "broken.yaml" in page
        assert "知识库：正常" in page and "敏感词词库：正常" in page
        assert "收件箱" in page and "hx-get" not in page


async def test_reviewers_do_not_get_the_report_nor_the_handoffs(client: TestClient, harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "rev1")
    assert (await client.get("/console/overview/report?span=7")).status == 403
    r = await client.get("/console/api/report?span=7")
    assert r.status == 403 and (await r.json())["error"] == "没有权限"
    assert (await client.get("/console/handoffs")).status == 403
    assert (await client.post("/console/handoffs/1", data={"action": "take", "csrf": csrf})).status == 403


async def test_operators_cannot_act_on_alerts(client: TestClient, harness: Harness) -> None:
    alert_id = await raise_alert(harness)
    csrf = await sign_in(client, harness.app, "op1")
    r = await client.post(f"/console/alerts/{alert_id}", data={"action": "ack", "csrf": csrf})
    assert r.status == 403
    assert (await client.post("/console/alerts/ack", data={"id": str(alert_id), "csrf": csrf})).status == 403


async def test_new_pages_need_a_session_and_the_csrf_token(client: TestClient, harness: Harness) -> None:
    for path in ("/console/handoffs", "/console/overview/report"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/console/login")
    r = await client.get("/console/api/report", allow_redirects=False)
    assert r.status == 401
    await sign_in(client, harness.app, "op1")
    r = await client.post("/console/handoffs/1", data={"action": "take"}, allow_redirects=False)
    assert r.status == 403 and "CSRF" in await r.text()


# ── handoffs ──


async def test_an_operator_takes_and_closes_a_handoff_on_the_page(client: TestClient, harness: Harness) -> None:
    from datetime import timedelta

    from bot.handoff.models import Handoff

    csrf = await sign_in(client, harness.app, "op1")
    assert "现在没有等待人工的客户" in await (await client.get("/console/handoffs")).text()
    await harness.say("我要转人工，茶叶收到是碎的", sender="wmBob", name="Bob", group=False)
    harness.app.clock.advance(timedelta(minutes=75))  # type: ignore[attr-defined]
    page = await (await client.get("/console/handoffs?id=1")).text()
    assert "#1" in page and "Bob" in page and "1 小时 15 分钟" in page and "等待接手" in page
    assert 'class="wanted"' in page and "茶叶收到是碎的" in page
    r = await client.post("/console/handoffs/1", data={"action": "take", "csrf": csrf})
    page = await r.text()
    assert "已接手 #1" in page and "op1 处理中" in page
    told = [d.text for d in await harness.settle() if d.to == ["wmBob"]]
    assert told and "已经接手" in told[-1]  # the member is told, as by the chat command
    (listing,) = await harness.say_texts("/handoff list", sender="op1", staff=True, group=False)
    assert "op1 处理中" in listing  # the chat command sees what the page did
    r = await client.post("/console/handoffs/1", data={"action": "close", "csrf": csrf})
    page = await r.text()
    assert "已结束 #1" in page and "现在没有等待人工的客户" in page
    r = await client.post("/console/handoffs/1", data={"action": "close", "csrf": csrf})
    assert "❌" in await r.text()  # the command's own refusal: already closed
    async with harness.app.db.read() as s:
        row = (await s.execute(Handoff.__table__.select())).first()
        audits = [(a.command, a.outcome, a.actor) for a in (await s.execute(AuditLog.__table__.select())).all()]
    assert (row.status, row.taken_by, row.closed_by) == ("closed", "op1", "op1")
    assert ("handoff take", "ok", "op1") in audits and ("handoff close", "ok", "op1") in audits
    assert (await client.post("/console/handoffs/1", data={"action": "drop", "csrf": csrf})).status == 400


# ── the knowledge base's "try a question" ──


async def test_trying_a_question_runs_the_matcher_off_the_event_loop(client: TestClient, harness: Harness) -> None:
    import threading

    from bot.knowledge import KNOWLEDGE

    csrf = await sign_in(client, harness.app, "op1")
    matcher = harness.app.get(KNOWLEDGE).matcher
    ran_in: list[str] = []
    match = matcher.match

    def spy(*a: object, **kw: object) -> object:
        ran_in.append(threading.current_thread().name)
        return match(*a, **kw)

    matcher.match = spy  # type: ignore[method-assign]
    tried = await client.post("/console/knowledge/try", data={"text": "怎么退款", "csrf": csrf})
    assert "会回答" in await tried.text()
    assert (await client.get("/console/knowledge?q=退款")).status == 200
    assert ran_in and threading.main_thread().name not in ran_in


# ── 企业微信 sign-in (OAuth) against the fake WeCom ──


@pytest.fixture
async def wecom_app(make_bot: Callable[..., BotApp], wecom_config: Callable[..., object],
                    clock: object) -> BotApp:
    from bot.senders.wecom import WeComSender

    cfg = wecom_config()
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock))  # type: ignore[arg-type]
    await app.start()
    async with app.db.session() as s:
        await app.roles.grant(s, "op1", "operator", by="admin01")
    return app


async def wecom_redirect(c: TestClient) -> str:
    r = await c.get("/console/login/wecom", allow_redirects=False)
    assert r.status == 302
    return r.headers["Location"]


def local(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_staff_member_signs_in_with_wecom(wecom_app: BotApp, fake_wecom: object) -> None:
    async with serve(wecom_app) as c:
        login = await (await c.get("/console/login")).text()
        assert "企业微信登录" in login
        to = await wecom_redirect(c)
        assert to.startswith(wecom_app.config.console.wecom_login_url + "?") and "state=" in to
        back = fake_wecom.authorize(to, "op1")  # type: ignore[attr-defined]
        r = await c.get(local(back), allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/console/"
        home = await c.get("/console/")
        text = await home.text()
        assert home.status == 200 and "op1" in text and "知识库" in text and "合规告警" not in text  # chat's roles
        calls = fake_wecom.calls("auth/getuserinfo")  # type: ignore[attr-defined]
        assert len(calls) == 1 and calls[0].ok
        r = await c.get(local(back), allow_redirects=False)  # the same callback again: the state was used
        assert "problem=" in r.headers["Location"]
    async with wecom_app.db.read() as s:
        rows = (await s.execute(ConsoleSession.__table__.select())).all()
    assert [(r.user_id, r.via) for r in rows] == [("op1", "wecom")]


async def test_a_state_mismatch_is_refused(wecom_app: BotApp, fake_wecom: object) -> None:
    from urllib.parse import parse_qs, urlsplit

    async with serve(wecom_app) as c:
        back = fake_wecom.authorize(await wecom_redirect(c), "op1")  # type: ignore[attr-defined]
        code = parse_qs(urlsplit(back).query)["code"][0]
        r = await c.get(f"/console/login/wecom/callback?code={code}&state=forged", allow_redirects=False)
        assert r.status == 302
        page = await (await c.get(r.headers["Location"])).text()
        assert "登录状态不匹配（state），请重新登录" in page
        assert (await c.get("/console/", allow_redirects=False)).status == 302  # no session
        assert not fake_wecom.calls("auth/getuserinfo")  # type: ignore[attr-defined]  # the code was never used
    async with wecom_app.db.read() as s:
        assert not (await s.execute(ConsoleSession.__table__.select())).all()


async def test_a_code_for_someone_without_a_role_or_a_used_code_is_refused(wecom_app: BotApp,
                                                                          fake_wecom: object) -> None:
    from urllib.parse import parse_qs, urlsplit

    async with serve(wecom_app) as c:
        back = fake_wecom.authorize(await wecom_redirect(c), "staff09")  # type: ignore[attr-defined]
        r = await c.get(local(back), allow_redirects=False)
        page = await (await c.get(r.headers["Location"])).text()
        assert "staff09 没有控制台权限" in page
        assert (await c.get("/console/", allow_redirects=False)).status == 302
        back = fake_wecom.authorize(await wecom_redirect(c), "op1")  # type: ignore[attr-defined]
        code = parse_qs(urlsplit(back).query)["code"][0]
        fake_wecom.codes.pop(code)  # type: ignore[attr-defined]  # used or expired at WeCom
        r = await c.get(local(back), allow_redirects=False)
        page = await (await c.get(r.headers["Location"])).text()
        assert "企业微信登录失败（40029）" in page
        assert (await c.get("/console/", allow_redirects=False)).status == 302
    async with wecom_app.db.read() as s:
        assert not (await s.execute(ConsoleSession.__table__.select())).all()


async def test_the_misses_page_follows_new_misses_and_a_new_phrasing(client: TestClient, harness: Harness) -> None:
    csrf = await sign_in(client, harness.app, "op1")
    (text,) = await harness.say_texts("你们卖二手车吗", sender="wmBob", name="Bob", group=False)
    assert "暂时还答不上来" in text
    page = await (await client.get("/console/knowledge/misses")).text()
    assert "你们卖二手车吗" in page
    (text,) = await harness.say_texts("明天天气如何", sender="wmCarol", name="Carol", group=False)
    assert "暂时还答不上来" in text
    page = await (await client.get("/console/knowledge/misses")).text()
    assert "明天天气如何" in page and "你们卖二手车吗" in page  # a new miss: grouped again, not the kept page
    r = await client.post("/console/knowledge/add", data={"question": "你们卖二手车吗", "answer": "我们只卖茶，不卖车",
                                                          "csrf": csrf})
    assert "❌" not in await r.text()
    await harness.app.settle()
    page = await (await client.get("/console/knowledge/misses")).text()
    assert "你们卖二手车吗" not in page and "明天天气如何" in page  # answered now: the new matcher counts
