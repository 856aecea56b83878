"""The ``[console]`` section: the console sender's output and the web console under /console."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from bot.configbase import Section


class ConsoleConfig(Section):
    format: Literal["text", "json"] = Field("text", description="console sender output: text or json")
    enabled: bool = Field(True, description="serve the web console under /console on the same port")
    public_url: str = Field("", description="how staff reach the bot, e.g. https://bot.example.com "
                                            "(sign-in links and the WeCom sign-in redirect); empty: the "
                                            "address the request came to")
    secret: SecretStr = Field(SecretStr(""), description="key for the session cookie (32+ characters; "
                                                         "empty: one is made and kept in the database)")
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="a console session ends after this")
    invite_minutes: int = Field(60 * 24, ge=5, le=60 * 24 * 14, description="a sign-in link works this long, once")
    login_attempts_per_minute: int = Field(10, ge=1, le=1000, description="sign-in attempts per client address")
    wecom_login: bool = Field(True, description="offer 企业微信 sign-in when bot.sender = \"wecom\"")
    wecom_login_url: str = Field("https://login.work.weixin.qq.com/wwlogin/sso/login",
                                 description="WeCom's sign-in page (扫码登录); the code comes back to "
                                             "/console/login/wecom/callback")
    report_cache_s: int = Field(60, ge=0, le=3600, description="the overview's report figures are reused this "
                                "many seconds (the page says when they were computed); 0: computed on every view")
