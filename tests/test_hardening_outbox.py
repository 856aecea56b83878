"""Outbox keys are never cut (long ones are hashed), and a send repeated after a crash is not shown twice
where WeCom offers a duplicate check (message/send, appchat/send)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BotApp
from bot.clock import FakeClock
from bot.config import Config
from bot.inbox import Incoming
from bot.senders.wecom import WeComSender
from bot.storage.keys import bounded_key
from bot.storage.models import InboxRow, OutboxRow
from bot.testing import FakeWeCom

# ── #6: idempotency keys ──


def test_bounded_key_keeps_short_keys_and_hashes_long_ones() -> None:
    assert bounded_key("abc") == "abc"
    assert bounded_key("x" * 200) == "x" * 200
    a, b = "p" * 178 + "-staff1-groupA" * 10, "p" * 178 + "-staff2-groupB" * 10
    ka, kb = bounded_key(a), bounded_key(b)
    assert ka != kb and len(ka) == len(kb) == 200
    assert ka.startswith("p" * 100)  # still readable
    assert bounded_key(a, 255) != bounded_key(b, 255) and len(bounded_key(a, 255)) == 255
    assert bounded_key(a) == ka  # stable


async def test_outbox_keys_sharing_a_long_prefix_are_two_deliveries(bot: BotApp) -> None:
    prefix = "moderation:alert:" + "e" * 178
    async with bot.db.session() as s:
        n1 = await bot.outbox.enqueue(s, key=prefix + ":staff1:groupA", kind="app_message", text="一", to=["s1"])
        n2 = await bot.outbox.enqueue(s, key=prefix + ":staff2:groupB", kind="app_message", text="二", to=["s2"])
        again = await bot.outbox.enqueue(s, key=prefix + ":staff2:groupB", kind="app_message", text="二",
                                         to=["s2"])
        many = await bot.outbox.enqueue(s, key=prefix + ":x", kind="app_message", text="三",
                                        to=["a" * 120, "b" * 120])
    assert (n1, n2, again, many) == (1, 1, 0, 2)
    async with bot.db.read() as s:
        keys = list((await s.execute(select(OutboxRow.key))).scalars())
    assert len(set(keys)) == 4 and all(len(k) <= 255 for k in keys)


async def test_inbox_keys_sharing_a_long_prefix_are_two_events(bot: BotApp) -> None:
    long = "aibot:msg:" + "m" * 300
    new = [await bot.accept(Incoming(dedup_key=long + s, channel="aibot", kind="message", payload={}))
           for s in ("1", "2", "1")]
    assert new == [True, True, False]
    async with bot.db.read() as s:
        keys = list((await s.execute(select(InboxRow.dedup_key))).scalars())
    assert len(keys) == 2 and all(len(k) <= 255 for k in keys)


# ── #10: WeCom's duplicate check after a crash ──


@pytest.fixture
def wecom_bot(make_bot: Callable[..., BotApp], wecom_config: Callable[..., Config],
              clock: FakeClock) -> Callable[..., BotApp]:
    def build(**overrides: str) -> BotApp:
        cfg = wecom_config(**overrides)
        return make_bot(cfg=cfg, sender=WeComSender(cfg, clock=clock))

    return build


@pytest.mark.parametrize(("kind", "path", "kw"), [
    ("app_message", "message/send", {"to": ["staff01"]}),
    ("appchat", "appchat/send", {"chat": {"id": "wrAppChat1", "type": "group"}}),
])
async def test_a_send_repeated_after_a_crash_is_shown_once(wecom_bot: Callable[..., BotApp], fake_wecom: FakeWeCom,
                                                           clock: FakeClock, kind: str, path: str,
                                                           kw: dict[str, Any]) -> None:
    app = wecom_bot()
    await app.start()
    async with app.db.session() as s:
        await app.outbox.enqueue(s, key="k1", kind=kind, text="今晚八点直播", **kw)
    # a worker claims the row, the message reaches WeCom, and the process dies before it marks the row sent
    (claimed,) = await app.outbox_pump.claim(10)
    await app.sender.send(claimed.delivery)
    assert len(fake_wecom.delivered(path)) == 1
    clock.set(clock.now() + timedelta(seconds=app.config.outbox.lease_s + 1))
    await app.outbox_pump.drain()  # after the lease the row is claimed again and sent again …
    async with app.db.read() as s:
        row = (await s.execute(select(OutboxRow))).scalar_one()
    assert row.status == "sent" and row.attempts == 2
    calls = fake_wecom.calls(path)
    assert [c.effect for c in calls] == ["delivered", "duplicate"]  # … and WeCom shows it once
    assert all(c.body and c.body.get("enable_duplicate_check") == 1 for c in calls)
    assert len(fake_wecom.delivered(path)) == 1


async def test_the_fake_only_drops_what_asked_for_the_check(fake_wecom: FakeWeCom, clock: FakeClock) -> None:
    """Without the flag, or with different content or after the interval, each send is shown."""

    import aiohttp

    async with aiohttp.ClientSession() as http:
        token = (await (await http.get(f"{fake_wecom.url}/cgi-bin/gettoken",
                                       params={"corpid": fake_wecom.corp_id, "corpsecret": fake_wecom.secret}))
                 .json())["access_token"]

        async def send(body: dict[str, Any]) -> None:
            await http.post(f"{fake_wecom.url}/cgi-bin/appchat/send", params={"access_token": token}, json=body)

        plain = {"chatid": "wrX", "msgtype": "text", "text": {"content": "hi"}}
        flagged = {**plain, "enable_duplicate_check": 1, "duplicate_check_interval": 60}
        await send(plain)
        await send(plain)
        await send(flagged)
        await send(flagged)
        await send({**flagged, "text": {"content": "other"}})
        clock.set(clock.now() + timedelta(seconds=61))
        await send(flagged)
    assert [c.effect for c in fake_wecom.calls("appchat/send")] == \
           ["delivered", "delivered", "delivered", "duplicate", "delivered", "delivered"]
