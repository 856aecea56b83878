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
    assert page.get_by_text("正常").is_visible()
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    for path, name in (("alerts", "合规告警"), ("knowledge", "知识库"), ("sop", "SOP 与朋友圈"),
                       ("members", "成员"), ("handoffs", "转人工")):
        page.get_by_role("link", name=name, exact=True).click()
        page.wait_for_url(f"**/console/{path}")
        page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())  # type: ignore[attr-defined]
    phone.goto(f"http://127.0.0.1:{server.port}/console/")
    phone.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)
    phone.close()
    page.get_by_role("button", name="退出").click()
    page.wait_for_url("**/console/login")
    page.goto(link)  # the link was used
    page.get_by_role("button", name="登录").click()
    assert page.get_by_role("alert").inner_text().startswith("登录链接无效")
    assert not [e for e in errors if "Content Security Policy" in e], errors
