"""The web console in a real browser: headless Chromium (the distribution's package) against a running serve.

Screenshots of every page go to test-artifacts/console/ (look at them after a change to a page).
Skipped only where no Chromium is installed; scripts/test installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_process import REPO, Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or ""
ARTIFACTS = REPO / "test-artifacts" / "console"
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM, reason="no chromium installed (scripts/test installs it)")]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(f"sqlite:///{tmp_path / 'console.db'}", tmp_path, SIYU_BOT__ADMINS='["admin01"]')
    try:
        yield srv
    finally:
        srv.stop()


def invite_link(server: Server, tmp_path: Path, user: str = "admin01") -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIYU_DATABASE__URL": f"sqlite:///{tmp_path / 'console.db'}",
           "SIYU_BOT__ADMINS": '["admin01"]'}
    env.pop("SIYU_TEST_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "bot", "console", "invite", user, "--config",
                          str(REPO / "config.example.toml"), "--base-url", f"http://127.0.0.1:{server.port}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def test_sign_in_with_a_link_see_the_overview_and_sign_out(server: Server, tmp_path: Path, browser: object) -> None:
    # Customers talk first, so the overview has figures to draw and the handoffs page someone waiting.
    server.post(_event("evt-q-1", "怎么退款", sender="wmBob", name="Bob", staff=False, group=False))
    server.post(_event("evt-g-1", "大家好，打卡第一天", sender="wmCarol", name="Carol", staff=False))
    server.post(_event("evt-h-1", "我要转人工，茶叶收到是碎的", sender="wmDave", name="王大卫", staff=False,
                       group=False))
    server.wait_for(lambda: {"wmBob", "wmDave"} <= {t for d in server.deliveries() for t in d.get("to") or ()},
                    within=60)
    link = invite_link(server, tmp_path)
    assert link.startswith(f"http://127.0.0.1:{server.port}/console/login/link/")
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"http://127.0.0.1:{server.port}/console/")
    assert "/console/login" in page.url
    page.screenshot(path=str(ARTIFACTS / "login.png"), full_page=True)
    page.goto(link)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"http://127.0.0.1:{server.port}/console/")
    assert page.get_by_role("heading", name="概览").is_visible()
    assert page.get_by_text("正常", exact=True).first.is_visible()
    for dim in ("users", "conversion", "behaviour"):  # the report's charts, drawn by ECharts as SVG
        page.locator(f"#dim-{dim} .chart svg").first.wait_for()
    assert page.locator("#dim-deals").get_by_text("本期和上期都没有数据").is_visible()  # no purchase yet
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    page.get_by_label("近 30 天").check()
    page.get_by_role("button", name="查看").click()
    page.wait_for_url("**/console/?span=30*")
    page.locator("#dim-users .chart svg").first.wait_for()
    assert "（30 天）" in page.locator(".period-line").inner_text()
    for path, name in (("alerts", "合规告警"), ("knowledge", "知识库"), ("sop", "SOP 与朋友圈"),
                       ("members", "成员"), ("handoffs", "转人工")):
        page.get_by_role("link", name=name, exact=True).click()
        page.wait_for_url(f"**/console/{path}")
        page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)
    # Handoffs: the customer who asked for a person, taken on the page.
    row = page.locator("tr", has_text="王大卫")
    assert "等待接手" in row.inner_text()
    row.get_by_role("button", name="接手").click()
    page.get_by_role("status").wait_for()
    assert "已接手" in page.get_by_role("status").inner_text()
    assert "admin01 处理中" in page.locator("tr", has_text="王大卫").inner_text()
    page.screenshot(path=str(ARTIFACTS / "handoffs-taken.png"), full_page=True)
    server.wait_for(lambda: any("已经接手" in str(d.get("text", "")) for d in server.deliveries()), within=60)
    # Members: two characters of a Chinese name find the customer; their profile opens from the result.
    page.get_by_role("link", name="成员", exact=True).click()
    page.get_by_role("searchbox").fill("大卫")
    page.get_by_role("button", name="搜索").click()
    page.wait_for_url("**/console/members?q=*")
    page.screenshot(path=str(ARTIFACTS / "members-search.png"), full_page=True)
    page.get_by_role("link", name="王大卫").click()
    page.wait_for_url("**/console/members/wmDave")
    assert page.get_by_role("heading", name="王大卫").is_visible()
    assert "积分流水" in page.content()
    page.screenshot(path=str(ARTIFACTS / "member-profile.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())  # type: ignore[attr-defined]
    phone.goto(f"http://127.0.0.1:{server.port}/console/")
    phone.locator("#dim-users .chart svg").first.wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    phone.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)
    phone.goto(f"http://127.0.0.1:{server.port}/console/handoffs")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "handoffs-phone.png"), full_page=True)
    phone.close()
    page.get_by_role("button", name="退出").click()
    page.wait_for_url("**/console/login")
    page.goto(link)  # the link was used
    page.get_by_role("button", name="登录").click()
    assert page.get_by_role("alert").inner_text().startswith("登录链接无效")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def _event(event_id: str, text: str, *, sender: str, name: str, staff: bool, chat: str = "g1",
           group: bool = True) -> dict[str, object]:
    import time as _time

    return {"id": event_id, "type": "message", "time": int(_time.time()),
            "chat": {"id": chat if group else sender, "type": "group" if group else "single",
                     "name": "新人群" if group else name},
            "sender": {"id": sender, "name": name, "staff": staff}, "text": text, "mentions_bot": not group}


def _alert_status(db: Path, alert_id: int) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT status FROM moderation_alert WHERE id = ?", (alert_id,)).fetchone()[0])


def test_reviewer_and_operator_work_in_the_browser(tmp_path: Path, browser: object) -> None:
    db = tmp_path / "console.db"
    srv = Server(f"sqlite:///{db}", tmp_path, SIYU_BOT__ADMINS='["admin01"]', SIYU_MOMENTS__APPROVAL="true")
    try:
        base = f"http://127.0.0.1:{srv.port}"
        # A staff member writes something that breaks the rules: a signed callback raises an alert.
        srv.post(_event("evt-alert-1", "您好，加 我 v x 吧，私下给您优惠", sender="staff01", name="张三", staff=True))
        srv.wait_for(lambda: any("加我微信" in str(d.get("text", "")) for d in srv.deliveries()), within=60)
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.goto(invite_link(srv, tmp_path))
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(f"{base}/console/")
        # Reviewer: the queue, the alert with its marked span, acknowledge it.
        page.goto(f"{base}/console/alerts")
        page.screenshot(path=str(ARTIFACTS / "alerts-queue.png"), full_page=True)
        page.get_by_role("link", name="#1").click()
        assert page.locator("mark").inner_text() == "加 我 v x"
        page.get_by_role("button", name="确认收到").click()
        page.get_by_role("status").wait_for()
        page.screenshot(path=str(ARTIFACTS / "alert.png"), full_page=True)
        assert _alert_status(db, 1) == "acked"
        srv.post(_event("evt-show-1", "/alerts show 1", sender="admin01", name="管理员", staff=True, group=False))
        srv.wait_for(lambda: any("预警 #1 [已确认]" in str(d.get("text", "")) for d in srv.deliveries()), within=60)
        # Operator: edit a knowledge entry, then a member asks and gets the new answer through the pipeline.
        page.goto(f"{base}/console/knowledge/entry/refund-policy")
        page.get_by_label("字段").select_option("答案")
        page.locator("textarea[name=value]").fill("退款请直接找小茶，审核通过后三个工作日内原路退回。")
        page.get_by_role("button", name="保存修改").click()
        page.get_by_role("status").wait_for()
        assert "已修改" in page.get_by_role("status").inner_text()
        page.screenshot(path=str(ARTIFACTS / "knowledge-entry.png"), full_page=True)
        page.goto(f"{base}/console/knowledge")
        page.get_by_placeholder("例如：多久能发货").fill("怎么退款")
        page.get_by_role("button", name="试一试").click()
        page.locator("#try-result .badge").wait_for()
        page.screenshot(path=str(ARTIFACTS / "knowledge.png"), full_page=True)
        srv.post(_event("evt-ask-1", "怎么退款", sender="wmBob", name="Bob", staff=False, group=False))
        srv.wait_for(lambda: any("三个工作日内原路退回" in str(d.get("text", "")) for d in srv.deliveries()),
                     within=60)
        # Moments: the week as a calendar; approve the first day that waits.
        page.goto(f"{base}/console/moments")
        page.get_by_role("button", name="审批这天").first.click()
        page.get_by_role("status").wait_for()
        assert "已审批" in page.content()
        page.screenshot(path=str(ARTIFACTS / "moments.png"), full_page=True)
        for path in ("sop", "members"):
            page.goto(f"{base}/console/{path}")
            page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)
    finally:
        srv.stop()
