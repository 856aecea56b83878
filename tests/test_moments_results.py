"""The result of a moment task: polled with get_moment_task_result and recorded; or recorded as not polled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.app import BotApp
from bot.senders.base import Delivery, SendError, SendResult
from bot.senders.console import RecordingSender
from bot.testing import Harness
from bot.wecomapi import WECOM_API, WeComError
from tests.sop_support import FakeWeComApi, JobSender, at, posts, sop_config, started, write_scripts

ONE_SLOT = """\
staff: [ahe]
week:
  monday:
    - {time: "08:30", theme: 早安, text: 早安}
"""


async def bot(make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path, sender: Any,
              api: Any = None) -> BotApp:
    cfg = sop_config(make_config, write_scripts(tmp_path / "s", {"moments.yaml": ONE_SLOT}), moments=True,
                     MOMENTS__POLL_INTERVAL_S="60", MOMENTS__POLL_MAX_HOURS="1")
    app = await started(make_bot, cfg, sender=sender)
    if api is not None:
        app.provide(WECOM_API, api)
    at(app.clock, 2026, 11, 23, 8, 30)  # type: ignore[arg-type]
    await app.settle()
    return app


async def tick(app: BotApp, seconds: float = 61) -> Any:
    app.clock.advance(timedelta(seconds=seconds))  # type: ignore[attr-defined]
    await app.settle()
    (post,) = await posts(app)
    return post


async def test_the_job_is_polled_until_done_and_the_result_recorded(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    api = FakeWeComApi([1, 2, 3])
    app = await bot(make_config, make_bot, tmp_path, JobSender(), api)
    (post,) = await posts(app)
    assert (post.state, post.jobid, api.calls) == ("queued", "", [])  # the first look comes after the interval
    post = await tick(app)
    assert (post.state, post.jobid, post.task_status, post.detail) == ("queued", "job-1", 1, "任务开始创建")
    post = await tick(app, 10)
    assert post.polls == 1  # not due again yet
    post = await tick(app, 60)
    assert (post.task_status, post.detail) == (2, "任务正在创建")
    post = await tick(app)
    assert (post.state, post.task_status) == ("done", 3)
    assert post.result["result"]["moment_id"] == "mom-job-1"
    assert post.detail == "已发布，moment_id mom-job-1；无效员工 1 个：gone01"
    assert api.calls == [("externalcontact/get_moment_task_result", "GET", {"jobid": "job-1"})] * 3
    await tick(app)
    assert len(api.calls) == 3  # done: never asked again
    (text,) = await Harness(app).admin("/moments today", group=False)
    assert "08:30 早安 · 已发布（已发布，moment_id mom-job-1；无效员工 1 个：gone01）" in text and "任务 job-1" in text


async def test_without_the_wecom_api_nothing_is_polled_and_that_is_recorded(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await bot(make_config, make_bot, tmp_path, JobSender())
    post = await tick(app)
    assert (post.state, post.jobid, post.result) == ("unpolled", "job-1", {"polled": False})
    assert post.detail == "没有企业微信 API 服务（console sender），没有查询任务结果"


async def test_a_sender_without_a_jobid_is_recorded_as_not_polled(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    api = FakeWeComApi()
    app = await bot(make_config, make_bot, tmp_path, RecordingSender(), api)
    post = await tick(app)
    assert post.state == "unpolled" and post.result == {"polled": False, "send_result": {"via": "memory"}}
    assert api.calls == []


class Refusing:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def send(self, delivery: Delivery) -> SendResult:
        raise SendError("not authorized", retryable=False, errcode=48002)

    async def close(self) -> None:
        return None


async def test_a_task_that_could_not_be_sent_is_recorded_as_failed(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    app = await bot(make_config, make_bot, tmp_path, Refusing(), FakeWeComApi())
    post = await tick(app)
    assert post.state == "failed" and post.detail == "朋友圈任务没有发出：errcode 48002: not authorized"


async def test_a_job_that_never_finishes_is_recorded_as_unknown(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    api = FakeWeComApi([2])
    app = await bot(make_config, make_bot, tmp_path, JobSender(), api)
    post = await tick(app)
    assert post.state == "queued"
    post = await tick(app, 3600)
    assert post.state == "unknown" and post.detail == "1 小时内任务没有完成（status 2）"


class FailingApi(FakeWeComApi):
    async def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        self.calls.append((path, method, params))
        if len(self.calls) == 1:
            raise WeComError(-1, "system busy")
        return await super().call(path, payload, method=method, params=params)


async def test_a_failed_poll_is_tried_again_next_interval(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path) -> None:
    api = FailingApi([3])
    app = await bot(make_config, make_bot, tmp_path, JobSender(), api)
    post = await tick(app)
    assert post.state == "queued" and post.detail == "查询结果失败：errcode -1: system busy"
    post = await tick(app)
    assert post.state == "done"


WITH_PICTURE = """\
staff: [staff01]
week:
  monday:
    - {time: "08:30", theme: 春茶, text: 春茶开采啦, images: ["{image}"], audience: {tags: [VIP]}}
"""


async def test_a_slot_goes_through_the_wecom_api_and_its_result_is_recorded(
        make_config: Callable[..., Any], make_bot: Callable[..., BotApp], tmp_path: Path, fake_wecom: Any,
        clock: Any) -> None:
    """The calendar, the WeCom sender and the fake WeCom together: upload, add_moment_task, poll, record."""
    from bot.senders.wecom import WeComSender

    image = fake_wecom.serve_file("spring.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    scripts = write_scripts(tmp_path / "s", {"moments.yaml": WITH_PICTURE.replace("{image}", image)})
    cfg = sop_config(make_config, scripts, moments=True, MOMENTS__POLL_INTERVAL_S="60", BOT__SENDER="wecom",
                     WECOM__API_BASE=fake_wecom.url, MOMENTS__TAG_IDS='{"VIP": "etVIP"}')
    sender = WeComSender(cfg, clock=clock)
    app = await started(make_bot, cfg, sender=sender)
    app.provide(WECOM_API, sender)
    at(app.clock, 2026, 11, 23, 8, 30)  # type: ignore[arg-type]
    await app.settle()
    (task,) = fake_wecom.delivered("externalcontact/add_moment_task")
    (upload,) = fake_wecom.calls("media/upload_attachment")
    assert task.body["text"] == {"content": "春茶开采啦"}
    assert task.body["attachments"] == [{"msgtype": "image", "image": {"media_id": upload.answer["media_id"]}}]
    assert task.body["visible_range"]["sender_list"]["user_list"] == ["staff01"]
    assert task.body["visible_range"]["external_contact_list"] == {"tag_list": ["etVIP"]}
    post = await tick(app)
    assert (post.state, post.jobid, post.task_status) == ("done", task.answer["jobid"], 3)
    assert post.result["result"]["moment_id"] == f"moment-{task.answer['jobid']}"
