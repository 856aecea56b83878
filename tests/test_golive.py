"""Safe to go live: the example brand is refused with a real sender, `siyu init` scaffolds valid content of
one's own, and `check-config` prints go-live warnings (exit 3 with --strict)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_config
from bot.golive import EXAMPLE_MARKER, refuse_example, warnings
from bot.testing.env import AGENT_ID, CORP_ID, ENCODING_AES_KEY, SECRET, TOKEN

REPO = Path(__file__).resolve().parent.parent
WECOM = {"SIYU_BOT__SENDER": "wecom", "SIYU_WECOM__CORP_ID": CORP_ID, "SIYU_WECOM__SECRET": SECRET,
         "SIYU_WECOM__AGENT_ID": str(AGENT_ID)}
READY = {**WECOM, "SIYU_WECOM__TOKEN": TOKEN, "SIYU_WECOM__ENCODING_AES_KEY": ENCODING_AES_KEY,
         "SIYU_WEBHOOK__SECRET": "a-long-random-secret-of-our-own", "SIYU_BOT__ADMINS": '["zhangwei"]',
         "SIYU_BOT__STAFF_IDS": '["zhangwei", "lina"]', "SIYU_MODERATION__REVIEWERS": '["lina"]',
         "SIYU_GROUP_ROBOT__KEYS": '{"compliance": "robot-key-of-the-compliance-group"}',
         "SIYU_SERVER__HOST": "0.0.0.0"}


def brand_config(tmp_path: Path) -> Path:
    """A config in a directory scaffolded by `siyu init`: the defaults' relative paths find its content."""
    assert main(["init", str(tmp_path)]) == 0
    (tmp_path / "config.toml").write_text((REPO / "config.example.toml").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    return tmp_path / "config.toml"


def test_the_shipped_content_is_marked_as_the_example_set() -> None:
    for where in ("knowledge_base", "sop_templates", "."):
        assert (REPO / where / EXAMPLE_MARKER).is_file()


def test_serve_refuses_the_example_brand_with_a_real_sender(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    for k, v in READY.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SIYU_DATABASE__URL", "sqlite:///:memory:")
    assert main(["serve", "--config", str(REPO / "config.example.toml")]) == 2
    err = capsys.readouterr().err
    assert "example brand" in err and "knowledge_base" in err and "bot.allow_example_content" in err
    cfg = load_config(REPO / "config.example.toml", READY)
    assert refuse_example(cfg) is not None
    assert refuse_example(load_config(REPO / "config.example.toml", {**READY, "SIYU_BOT__SENDER": "robot"}))
    assert refuse_example(load_config(REPO / "config.example.toml",
                                      {**READY, "SIYU_BOT__ALLOW_EXAMPLE_CONTENT": "true"})) is None
    assert refuse_example(load_config(REPO / "config.example.toml", {})) is None  # the console sender prints


def test_init_scaffolds_content_that_passes_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    written = capsys.readouterr().out
    for rel in ("knowledge_base/faq.yaml", "sop_templates/welcome.yaml", "sop_templates/moments.yaml", "tiers.yaml"):
        path = tmp_path / rel
        assert f"+ {path}" in written
        assert "【待填写" in path.read_text(encoding="utf-8")
    assert not list(tmp_path.rglob(EXAMPLE_MARKER))
    assert main(["kb", "check", str(tmp_path / "knowledge_base"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 3
    assert main(["sop", "check", str(tmp_path / "sop_templates"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scripts"] == 1 and report["calendar"]
    assert main(["tiers", "check", str(tmp_path / "tiers.yaml")]) == 0
    (tmp_path / "tiers.yaml").write_text("tiers: []\n", encoding="utf-8")  # an operator's edit is never overwritten
    assert main(["init", str(tmp_path)]) == 0
    assert "exists, left as it is" in capsys.readouterr().out
    assert (tmp_path / "tiers.yaml").read_text(encoding="utf-8") == "tiers: []\n"


def test_scaffolded_content_sends_nothing_by_itself() -> None:
    from bot.scaffold import MOMENTS, SCRIPT

    assert "enabled: false" in SCRIPT and "trigger: manual" in SCRIPT
    assert "approval: true" in MOMENTS


def test_a_brand_of_its_own_goes_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = brand_config(tmp_path)
    cfg = load_config(path, READY)
    assert refuse_example(cfg) is None and warnings(cfg) == []
    for k, v in READY.items():
        monkeypatch.setenv(k, v)
    assert main(["check-config", str(path), "--strict"]) == 0
    assert "go-live warning" not in capsys.readouterr().out


def test_check_config_prints_go_live_warnings_and_strict_fails(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    for k, v in WECOM.items():
        monkeypatch.setenv(k, v)
    path = str(REPO / "config.example.toml")
    assert main(["check-config", path]) == 0
    out = capsys.readouterr().out
    assert "configuration is valid" in out and "go-live warning" in out
    assert main(["check-config", path, "--strict"]) == 3
    capsys.readouterr()
    assert main(["check-config", path, "--json"]) == 0
    found = "\n".join(json.loads(capsys.readouterr().out)["warnings"])
    for piece in ("webhook.secret", "admin01", "moderation.reviewers", "'compliance'", "wecom.token",
                  "wecom.encoding_aes_key", "server.host = 127.0.0.1", "示例品牌", "serve 会拒绝启动"):
        assert piece in found, piece


def test_each_go_live_warning_goes_away_when_fixed(tmp_path: Path) -> None:
    path = brand_config(tmp_path)
    cases = {"SIYU_WEBHOOK__SECRET": ("change-me-webhook-secret", "webhook.secret"),
             "SIYU_BOT__ADMINS": ('["admin01"]', "示例 ID"),
             "SIYU_MODERATION__REVIEWERS": ("[]", "moderation.reviewers"),
             "SIYU_GROUP_ROBOT__KEYS": ("{}", "'compliance'"),
             "SIYU_WECOM__TOKEN": ("", "wecom.token"),
             "SIYU_SERVER__HOST": ("127.0.0.1", "server.host")}
    for key, (bad, piece) in cases.items():
        found = warnings(load_config(path, {**READY, key: bad}))
        assert len(found) == 1 and piece in found[0], (key, found)
    found = warnings(load_config(path, {**READY, "SIYU_MODERATION__REVIEWERS": "[]", "SIYU_GROUP_ROBOT__KEYS": "{}"}))
    assert any("合规预警没有去处" in w for w in found)
    (tmp_path / "knowledge_base" / EXAMPLE_MARKER).write_text("示例", encoding="utf-8")
    (found,) = warnings(load_config(path, READY))
    assert "示例品牌" in found and "知识库" in found
