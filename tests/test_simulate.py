"""The terminal simulator runs the real pipeline; a script on stdin shows what the bot sends, and
``:wait`` moves a simulated clock through what falls due (SOP steps, quiet hours, cron jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WELCOME_REPLY = "── [回复] → 新人群(sim-新人群) @wmAlice"


def simulate(db_url: str, tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "SIYU_DATABASE__URL": db_url, "PYTHONPATH": str(REPO), **(env or {})}
    env.pop("SIYU_TEST_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "simulate", "--config", str(REPO / "config.example.toml"), *args],
        input=script, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env, check=True).stdout


def test_simulate_reads_a_script_from_stdin(db_url: str, tmp_path: Path) -> None:
    script = "/whoami\n:as 运营小王 admin\n/role grant @wm小明 operator\n:dm\n/whoami\n:quit\n"
    out = simulate(db_url, tmp_path, script, "--name", "小明", "--group", "新人群")
    assert "[新人群] 小明> /whoami" in out
    assert "👤 小明（ID：wm小明）" in out
    assert "已授予 wm小明 运营角色" in out
    assert "当前会话：运营小王（私聊）" in out


def test_a_joined_member_gets_the_day_one_step_after_waiting_a_day(db_url: str, tmp_path: Path) -> None:
    out = simulate(db_url, tmp_path, ":join\n:wait 1d\n:wait soon\n:nap\n:who\n:quit\n",
                   "--name", "Alice", "--start", "2026-12-07 10:00")
    # the welcome at once, and the run's feedback: how many steps, when the next one is due
    assert out.index(WELCOME_REPLY) < out.index("已启动 SOP：newcomer-7d（共 9 步，下一步 今天 10:30）")
    # a step that cannot be sent says why
    assert "未发送 SOP：newcomer-7d 的 owner-hello：没有员工" in out
    # the day-1 step (day 1 09:30) is sent when the clock gets there, after the night's cron jobs
    nightly = out.index("定时任务 knowledge-prune 已运行")
    day1 = out.index("⏰ 2026-12-08 周二 09:30")
    assert nightly < day1
    after = out[day1:].splitlines()
    assert after[1] == WELCOME_REPLY
    assert "现在是 2026-12-08 周二 10:00" in out
    # bad control lines are explained and change nothing
    assert "用法：:wait <时长>" in out
    assert "未知的模拟器命令 :nap" in out
    assert "模拟时间 2026-12-08 周二 10:00" in out


def test_quiet_hours_hold_a_step_until_the_wait_passes_them(db_url: str, tmp_path: Path) -> None:
    out = simulate(db_url, tmp_path, ":join\n:wait 2h\n:wait 8h\n:quit\n", "--name", "Alice",
                   "--start", "2026-12-07 22:30")
    held = out.index("暂缓 SOP：newcomer-7d 的 welcome 在免打扰时段（22:00-08:00），推迟到 明天 08:00")
    assert "已启动 SOP：newcomer-7d（共 9 步，下一步 明天 08:00）" in out
    morning = out.index("⏰ 2026-12-08 周二 08:00")
    assert WELCOME_REPLY not in out[:morning]  # nothing sent in the night
    assert held < out.index("现在是 2026-12-08 周二 00:30") < morning
    assert out[morning:].splitlines()[1] == WELCOME_REPLY
    assert out.count(WELCOME_REPLY) == 1


def test_a_staff_one_to_one_violation_reaches_a_reviewer(db_url: str, tmp_path: Path) -> None:
    script = (":as staff01 to wmAlice\n加我微信吧，私下给您优惠\n你好，茶叶今天发货\n"
              ":as rev01 reviewer\n/alerts\n:quit\n")
    out = simulate(db_url, tmp_path, script, "--start", "2026-12-07 15:00")
    assert "现在你是 staff01（staff01，staff），与客户 wmAlice 私聊" in out
    assert "[私聊 wmAlice] staff01> 加我微信吧，私下给您优惠" in out
    listing = out[out.index("[私聊] rev01> /alerts"):]
    assert "待处理预警共 1 条" in listing
    assert "私下联系「加我微信」staff01 @ wmAlice 12-07 15:00" in listing
    # the staff member's messages to the customer are not questions to the bot
    talk = out[out.index("[私聊 wmAlice] staff01>"):out.index("[私聊] rev01>")]
    assert "[回复] → wmAlice" not in talk


def test_a_slot_waits_for_its_approval_and_goes_out_once_approved(db_url: str, tmp_path: Path) -> None:
    script = ":wait 1h\n:as admin01 admin\n/moments approve 2026-12-07\n:wait 10m\n:quit\n"
    env_approval = {"SIYU_MOMENTS__APPROVAL": "true"}
    out = simulate(db_url, tmp_path, script, "--start", "2026-12-07 19:00", env=env_approval)
    held = out.index("暂缓 朋友圈 12-07 19:30「")
    assert "待审批（/moments approve 2026-12-07，2h 内审批仍会发出）" in out[held:]
    assert "[朋友圈任务]" not in out[:held]
    approved = out.index("admin01> /moments approve 2026-12-07")
    assert out.count("── [朋友圈任务]") == 1 and out.index("── [朋友圈任务]") > approved


def test_a_bad_start_time_is_refused(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SIYU_DATABASE__URL": db_url, "PYTHONPATH": str(REPO)}
    env.pop("SIYU_TEST_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "bot", "simulate", "--config", str(REPO / "config.example.toml"),
                           "--start", "tomorrow"], input="", capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "--start 'tomorrow' 应写成" in done.stderr


def test_the_days_mass_send_steps_show_as_one_task_per_staff_member(db_url: str, tmp_path: Path) -> None:
    scripts = tmp_path / "s"
    scripts.mkdir()
    (scripts / "care.yaml").write_text(
        "id: care\nname: 新客关怀\ntrigger: contact_added\nper: member\nsteps:\n"
        "  - {id: tips, at: \"+1d\", via: mass_send, text: 今天分享白茶冲泡的三个小技巧}\n", encoding="utf-8")
    out = simulate(db_url, tmp_path, ":add\n:wait 1h\n:as Bob\n:add\n:wait 1d\n:quit\n", "--name", "Alice",
                   "--start", "2026-12-07 10:00", env={"SIYU_SOP__DIR": str(scripts)})
    assert out.count("── [群发任务] staff01 → 2 位客户") == 1 and out.count("[群发任务]") == 1
