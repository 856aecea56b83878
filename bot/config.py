"""One typed configuration object, validated at start-up.

Sources, later wins: built-in defaults, the TOML file, environment variables
``SIYU_<SECTION>__<KEY>`` (list and table values are JSON). Errors name the key.
Secrets are ``SecretStr`` so they never appear in reprs, logs or ``check-config``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from bot.access.config import ConsoleConfig
from bot.campaigns.config import CampaignsConfig
from bot.compliance.config import ModerationConfig
from bot.configbase import Section, check_duration
from bot.handoff.config import HandoffConfig
from bot.insights.config import ReportConfig
from bot.knowledge.config import KnowledgeConfig
from bot.sop.config import MomentsConfig, SopConfig
from bot.tiers.config import TiersConfig

ENV_PREFIX = "SIYU_"


class ConfigError(Exception):
    """A configuration problem; ``problems`` holds one ``key: what is wrong`` line each."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in problems))


def _check_aes_key(v: SecretStr) -> SecretStr:
    raw = v.get_secret_value()
    if raw and not re.fullmatch(r"[A-Za-z0-9]{43}", raw):
        raise ValueError("must be exactly 43 letters or digits (the EncodingAESKey from the admin console)")
    return v


def _check_token(v: SecretStr) -> SecretStr:
    raw = v.get_secret_value()
    if raw and not re.fullmatch(r"[A-Za-z0-9]{1,32}", raw):
        raise ValueError("must be 1-32 letters or digits")
    return v


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="larger request bodies are refused with 413")
    read_timeout_s: float = Field(10.0, gt=0, le=300, description="a client must send its request line and "
                                  "headers, and a channel's body, within this many seconds; idle keep-alive "
                                  "connections close after it too")
    ack_timeout_s: float = Field(4.0, gt=0, le=60, description="a callback whose event is not stored within this "
                                 "many seconds (the database held by another writer) is answered 503, so WeCom, "
                                 "which gives up after 5 s, sends it again")


class DatabaseConfig(Section):
    url: str = "sqlite:///data/siyu.db"
    pool_size: int = Field(10, ge=1, le=200)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = "FULL"
    echo: bool = False


class CallbackCrypto(Section):
    """The Token / EncodingAESKey pair every WeCom callback is signed and encrypted with."""

    token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, v: SecretStr) -> SecretStr:
        return _check_aes_key(v)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: SecretStr) -> SecretStr:
        return _check_token(v)


class WeComConfig(CallbackCrypto):
    corp_id: str = ""
    agent_id: int = 0
    secret: SecretStr = SecretStr("")
    api_base: str = "https://qyapi.weixin.qq.com"
    max_clock_skew_s: int = Field(600, ge=0)
    request_timeout_s: float = Field(10.0, gt=0)

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class AibotConfig(CallbackCrypto):
    reply_wait_ms: int = Field(1500, ge=0, le=4500, description="how long a callback waits for a passive reply")
    name: str = ""


class WebhookConfig(Section):
    secret: SecretStr = SecretStr("")
    max_clock_skew_s: int = Field(300, ge=0, description="events need a \"time\" within this many seconds of "
                                                         "now; 0 turns the check off")


class BotConfig(Section):
    name: str = "小域"
    timezone: str = "Asia/Shanghai"
    staff_ids: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    sender: Literal["console", "robot", "wecom"] = "console"
    ops_users: list[str] = Field(default_factory=list)
    confirm_ttl_s: int = Field(120, ge=10, le=3600)
    staff_groups: list[str] = Field(default_factory=list, description="internal groups (chat ids) where commands "
                                    "that show staff, customer or compliance data may answer in the group")
    instance_id: str = ""
    plugins: list[str] = Field(default_factory=list)
    allow_example_content: bool = Field(False, description="let serve send the shipped example brand's content "
                                        "with a real sender (wecom, robot)")

    @field_validator("plugins")
    @classmethod
    def _plugin_refs(cls, v: list[str]) -> list[str]:
        for ref in v:
            if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", ref):
                raise ValueError(f"{ref!r} is not 'package.module:setup_function'")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)") from exc
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class InboxConfig(Section):
    workers: int = Field(4, ge=1, le=64)
    batch_size: int = Field(64, ge=1, le=1000)
    poll_interval_s: float = Field(1.0, gt=0)
    lease_s: float = Field(60.0, gt=0)
    retention_days: int = Field(7, ge=1)
    handler_timeout_s: float = Field(30.0, gt=0)
    batch_max_s: float = Field(0.25, gt=0, le=30)
    optimistic: bool = True
    lag_degraded_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=50)


class OutboxConfig(Section):
    poll_interval_s: float = Field(1.0, gt=0)
    batch_size: int = Field(50, ge=1, le=1000)
    concurrency: int = Field(8, ge=1, le=128)
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    lease_s: float = Field(60.0, gt=0)
    retention_days: int = Field(30, ge=1)
    lag_degraded_s: float = Field(120.0, gt=0)


class GroupRobotConfig(Section):
    keys: dict[str, SecretStr] = Field(default_factory=dict, description="chat id -> group robot webhook key")
    default_key: SecretStr = SecretStr("")


class LogConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"




_duration = check_duration


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    wecom: WeComConfig = Field(default_factory=WeComConfig)
    aibot: AibotConfig = Field(default_factory=AibotConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    bot: BotConfig = Field(default_factory=BotConfig)
    inbox: InboxConfig = Field(default_factory=InboxConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    group_robot: GroupRobotConfig = Field(default_factory=GroupRobotConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    sop: SopConfig = Field(default_factory=SopConfig)
    moments: MomentsConfig = Field(default_factory=MomentsConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    campaigns: CampaignsConfig = Field(default_factory=CampaignsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    # Where the file came from; relative paths in the config are resolved against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    source: str = Field("", exclude=True)

    def resolve(self, path: str | Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def database_url(self) -> str:
        return normalise_db_url(self.database.url, self.base_dir)

    def robot_key(self, chat_id: str, *, named_only: bool = False) -> str:
        """The webhook key of robot ``chat_id``; ``group_robot.default_key`` when it has none, unless
        ``named_only`` (compliance content: the default key may be a customer group's robot)."""
        key = self.group_robot.keys.get(chat_id)
        if key is not None:
            return key.get_secret_value()
        return "" if named_only else self.group_robot.default_key.get_secret_value()


def normalise_db_url(url: str, base_dir: Path) -> str:
    """Map the user-facing URL to the async driver SQLAlchemy needs."""
    if url.startswith("sqlite"):
        m = re.match(r"^sqlite(\+\w+)?:///(.*)$", url)
        if not m:
            raise ValueError("sqlite URLs look like sqlite:///data/siyu.db")
        path = m.group(2)
        if path in ("", ":memory:"):
            return "sqlite+aiosqlite:///:memory:"
        p = Path(path)
        if not p.is_absolute():
            p = base_dir / p
        return f"sqlite+aiosqlite:///{p}"
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("database.url must be sqlite:///PATH or postgresql://USER:PASS@HOST/DB")


def _section_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: f.annotation for name, f in model.model_fields.items() if not f.exclude}


def _wants_json(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, dict, tuple, set):
        return True
    return any(_wants_json(a) for a in get_args(annotation) if a is not type(None))


def env_overrides(environ: Mapping[str, str], problems: list[str]) -> dict[str, dict[str, Any]]:
    sections = _section_fields(Config)
    out: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].partition("__")
        section, key = section.lower(), key.lower()
        model = sections.get(section)
        if model is None or not isinstance(model, type) or not issubclass(model, BaseModel):
            problems.append(f"{name}: no config section [{section}]")
            continue
        field = model.model_fields.get(key)
        if field is None:
            problems.append(f"{name}: [{section}] has no key {key!r}")
            continue
        parsed: Any = value
        if _wants_json(field.annotation):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(f"{name}: must be JSON (e.g. '[\"a\", \"b\"]'): {exc.msg}")
                continue
        out.setdefault(section, {})[key] = parsed
    return out


def _merge(base: dict[str, Any], over: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = dict(base)
    for section, values in over.items():
        current = merged.get(section)
        merged[section] = {**current, **values} if isinstance(current, dict) else dict(values)
    return merged


def _format_validation(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against config.example.toml)"
        msg = msg.removeprefix("Value error, ")
        problems.append(f"{key}: {msg}")
    return problems


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate; raise ConfigError naming every bad key."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    source = "defaults"
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError([f"cannot read {p}: {exc.strerror}"], str(p)) from exc
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"not valid TOML: {exc}"], str(p)) from exc
        base_dir = p.resolve().parent
        source = str(p)
    problems: list[str] = []
    data = _merge(data, env_overrides(environ, problems))
    try:
        cfg = Config.model_validate({**data, "base_dir": base_dir, "source": source})
    except ValidationError as exc:
        problems.extend(_format_validation(exc))
        raise ConfigError(problems, source) from None
    try:
        cfg.database_url  # noqa: B018 - validates the URL shape
    except ValueError as exc:
        problems.append(f"database.url: {exc}")
    if cfg.bot.sender == "wecom":
        for key in ("corp_id", "secret", "agent_id"):
            value = getattr(cfg.wecom, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                problems.append(f"wecom.{key}: required when bot.sender = \"wecom\"")
    if cfg.bot.sender == "robot" and not (cfg.group_robot.keys or cfg.group_robot.default_key.get_secret_value()):
        problems.append("group_robot.keys: at least one key (or group_robot.default_key) is required when "
                        "bot.sender = \"robot\"")
    if problems:
        raise ConfigError(problems, source)
    return cfg


def default_config_path(explicit: str | None) -> Path | None:
    """``--config`` if given; else ./config.toml; else ./config.example.toml."""
    if explicit:
        return Path(explicit)
    for candidate in ("config.toml", "config.example.toml"):
        if Path(candidate).exists():
            return Path(candidate)
    return None


def describe(cfg: Config) -> dict[str, Any]:
    """The effective configuration with every secret masked, for ``check-config``."""

    def mask(v: Any) -> Any:
        if isinstance(v, SecretStr):
            return "***" if v.get_secret_value() else ""
        if isinstance(v, dict):
            return {k: mask(x) for k, x in v.items()}
        if isinstance(v, BaseModel):
            return {k: mask(getattr(v, k)) for k in type(v).model_fields if not type(v).model_fields[k].exclude}
        if isinstance(v, list):
            return [mask(x) for x in v]
        return v

    return mask(cfg)
