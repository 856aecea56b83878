"""Config: every key documented and validated, env overrides, errors that name the key, secrets masked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"


def test_the_example_is_valid_and_documents_every_key() -> None:
    cfg = load_config(EXAMPLE, {})
    text = EXAMPLE.read_text()
    for section, field in Config.model_fields.items():
        if field.exclude:
            continue
        assert f"[{section}]" in text, f"[{section}] missing from config.example.toml"
        model = type(getattr(cfg, section))
        for key in model.model_fields:
            line = re.search(rf"^{key}\s*=.*$", text, re.MULTILINE)
            assert line, f"{section}.{key} is not documented in config.example.toml"


def test_env_overrides_including_json_lists() -> None:
    cfg = load_config(EXAMPLE, {"SIYU_BOT__ADMINS": '["a1", "a2"]', "SIYU_SERVER__PORT": "9001",
                                "SIYU_DATABASE__URL": "postgresql://u:p@db/siyu", "SIYU_WECOM__TOKEN": "Zq9Secret"})
    assert cfg.bot.admins == ["a1", "a2"] and cfg.server.port == 9001
    assert cfg.database_url == "postgresql+asyncpg://u:p@db/siyu"
    assert cfg.wecom.token.get_secret_value() == "Zq9Secret"
    assert "Zq9Secret" not in repr(cfg) and "Zq9Secret" not in str(cfg)


def test_errors_name_every_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\nhostname = "x"\n[bot]\ntimezone = "Mars/Olympus"\n'
                   '[wecom]\nencoding_aes_key = "short"\n[database]\nurl = "mysql://x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(bad, {"SIYU_BOT__STAFF_IDS": "not-json", "SIYU_NOPE__X": "1"})
    text = str(e.value)
    for expected in ("server.port", "server.hostname: unknown key", "bot.timezone", "wecom.encoding_aes_key",
                     "SIYU_BOT__STAFF_IDS: must be JSON", "SIYU_NOPE__X: no config section"):
        assert expected in text


def test_wecom_sender_requires_credentials() -> None:
    with pytest.raises(ConfigError, match=r"wecom\.secret: required"):
        load_config(EXAMPLE, {"SIYU_BOT__SENDER": "wecom", "SIYU_WECOM__CORP_ID": "ww1", "SIYU_WECOM__AGENT_ID": "1"})


def test_not_toml_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("[server\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p, {})


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_WEBHOOK__SECRET", "very-secret-value")
    assert main(["check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "configuration is valid" in out and "very-secret-value" not in out and '"***"' in out
    assert main(["check-config", str(EXAMPLE), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["config"]["webhook"]["secret"] == "***"
    bad = tmp_path / "bad.toml"
    bad.write_text("[inbox]\nworkers = 0\n")
    assert main(["check-config", str(bad)]) == 1
    assert "inbox.workers" in capsys.readouterr().err
    assert main(["check-config", str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0].startswith("inbox.workers")


def test_plugins_are_validated_and_loaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bot\.plugins"):
        load_config(EXAMPLE, {"SIYU_BOT__PLUGINS": '["no colon here"]'})
    cfg = load_config(EXAMPLE, {"SIYU_BOT__PLUGINS": '["handlers.admin:setup"]'})
    assert cfg.bot.plugins == ["handlers.admin:setup"]
