"""The test tools as a product: the pytest plugin a plugin author gets with ``pip install siyu``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

import bot.testing
import bot.testing.plugin
from bot.testing import FakeWeCom
from bot.testing.env import CORP_ID, SECRET

ECHO = '''
from bot.context import Context
from bot.events import MessageEvent
from bot.routing import Router, text_matches

router = Router("echo")


@router.message(text_matches("^echo "), priority=5, block=True)
async def echo(event: MessageEvent, ctx: Context) -> None:
    await ctx.reply(event.text.removeprefix("echo "))
'''

TEST_ECHO = '''
import pytest

from bot.events import Actor, Chat, MessageEvent
from bot.feature import Feature
from bot.senders.wecom import WeComSender
from bot.testing import Harness
from echo import router

ECHO = Feature("echo", routers=[router])


@pytest.fixture
def siyu_features():
    return [ECHO]


async def test_the_harness_fixture_has_my_feature(harness):
    assert "你好" in await harness.say_texts("echo 你好")


async def test_make_bot_builds_a_bot_with_the_features_asked_for(make_bot):
    app = make_bot(features=[ECHO])
    await app.start()
    assert await Harness(app).say_texts("echo 再见", group=False) == ["再见"]
    assert await Harness(make_bot(features=[])).say_texts("echo 没人听") == []


async def test_a_failed_send_is_retried_through_the_fake_wecom(make_bot, wecom_config, fake_wecom, clock):
    cfg = wecom_config()
    app = make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock))
    await app.start()
    fake_wecom.fail("appchat/send", -1, errmsg="system busy")
    await app.accept_event(MessageEvent(key="m1", time=clock.now(), channel="test", text="echo 稍后见",
                                        chat=Chat(id="g1", type="group"), sender=Actor(id="wmAlice")))
    await app.settle()
    clock.advance(60)
    await app.settle()
    assert [r.errcode for r in fake_wecom.calls("appchat/send")] == [-1, 0]
    assert [r.body["text"]["content"] for r in fake_wecom.delivered()] == ["稍后见"]
'''


def _docstring_example() -> str:
    """The test in bot.testing's docstring, as written there."""
    doc = bot.testing.__doc__ or ""
    block = doc.split("::\n", 1)[1].split("\n\n``", 1)[0]
    return textwrap.dedent(block)


def _child_env() -> dict[str, str]:
    """This environment without anything that points pytest or Python at this repository."""
    drop = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.mark.slow
def test_a_plugin_project_tests_its_feature_with_the_installed_fixtures(tmp_path: Path) -> None:
    project = tmp_path / "echo-plugin"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\nasyncio_mode = "auto"\n')
    (project / "echo.py").write_text(ECHO, encoding="utf-8")
    (project / "test_echo.py").write_text(TEST_ECHO, encoding="utf-8")
    (project / "test_example.py").write_text(_docstring_example(), encoding="utf-8")
    assert not list(project.rglob("conftest.py"))  # the fixtures come from the entry point
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                         env=_child_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


def test_loading_the_plugin_imports_nothing_of_the_bot() -> None:
    code = ("import sys, bot.testing.plugin\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('bot.app', 'bot.config', 'handlers', "
            "'sqlalchemy', 'aiohttp')))\n"
            "assert not loaded, loaded\n")
    run = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_the_tools_import_without_pytest_and_the_plugin_says_what_is_missing() -> None:
    code = ("import sys\n"
            "sys.modules['pytest'] = sys.modules['pytest_asyncio'] = None\n"
            "from bot.testing import TEST_ENV, CallbackSigner, FakeWeCom, Harness, listener, serve\n"
            "try:\n"
            "    import bot.testing.plugin\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "pip install 'siyu[test]'" in run.stdout


def _fixture_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any("fixture" in ast.unparse(d) for d in node.decorator_list)}


def test_the_plugin_is_registered_once_and_the_conftest_redefines_none_of_its_fixtures(
        pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("siyu") is bot.testing.plugin
    assert [p for p in pytestconfig.pluginmanager.get_plugins() if p is bot.testing.plugin] == [bot.testing.plugin]
    ours = _fixture_names(Path(bot.testing.plugin.__file__))
    assert {"make_bot", "bot", "harness", "fake_wecom", "wecom_config", "db_url"} <= ours
    assert not ours & _fixture_names(Path(__file__).parent / "conftest.py")


async def test_the_fake_wecom_fails_on_demand_through_its_public_api() -> None:
    fake = FakeWeCom()
    await fake.start()
    try:
        async with aiohttp.ClientSession(fake.url + "/cgi-bin/") as http:
            async with http.get("gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET}) as r:
                token = (await r.json())["access_token"]

            async def call(path: str, body: dict[str, object]) -> tuple[int, int | None]:
                async with http.post(path, params={"access_token": token}, json=body) as r:
                    answer = await r.json() if r.content_type == "application/json" else {}
                    return r.status, answer.get("errcode")
            send = {"touser": "staff01", "agentid": fake.agent_id, "msgtype": "text", "text": {"content": "早"}}
            chat = {"chatid": "wrChat", "msgtype": "text", "text": {"content": "早"}}

            fake.fail("message/send", 45009, times=2)
            fake.http_error("appchat/send", 502)
            assert [await call("message/send", send) for _ in range(3)] == [(200, 45009), (200, 45009), (200, 0)]
            assert [await call("appchat/send", chat) for _ in range(2)] == [(502, None), (200, 0)]

            fake.delay("appchat/send", 0.05, drop=True)
            assert await call("appchat/send", chat) == (200, -1)
            fake.expire_tokens()
            assert await call("message/send", send) == (200, 42001)
    finally:
        await fake.stop()
    assert [r.errcode for r in fake.calls("message/send")] == [45009, 45009, 0, 42001]
    assert len(fake.delivered("message/send")) == 1 and len(fake.delivered("appchat/send")) == 1
