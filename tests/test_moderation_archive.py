"""The message archive (会话内容存档): CLI and HTTP import, idempotency, the seq cursor, recalls."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.compliance import MODERATION, archive
from bot.compliance.store import ALERTS, MESSAGES
from bot.config import Config
from bot.signing import webhook_signature as archive_signature
from bot.testing import Harness, serve

SECRET = "archive-secret"
T0 = 1763863200000  # 2025-11-23 10:00 +08:00, in ms


def rec(seq: int, msgid: str, text: str | None = None, *, sender: str = "zhangsan", to: str = "wmCustomer",
        room: str = "", **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"seq": seq, "msgid": msgid, "action": "send", "from": sender, "tolist": [to],
                         "roomid": room, "msgtime": T0 + seq * 1000, "msgtype": "text"}
    if text is not None:
        r["text"] = {"content": text}
    r.update(extra)
    return r


def recall(seq: int, msgid: str, pre: str, sender: str = "zhangsan") -> dict[str, Any]:
    return {"seq": seq, "msgid": msgid, "action": "recall", "from": sender, "tolist": ["wmCustomer"], "roomid": "",
            "msgtime": T0 + seq * 1000, "msgtype": "revoke", "revoke": {"pre_msgid": pre}}


def jsonl(*records: dict[str, Any]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"


FEED = jsonl(
    rec(1, "m1", "您好，这款茶现在有活动"),
    rec(2, "m2", "多少钱呀", sender="wmCustomer", to="zhangsan"),
    rec(3, "m3", "加我vx，私下给你便宜"),
    rec(4, "m4", "好评返现5元", room="wrGroup1"),
    rec(5, "m5", None, msgtype="image", image={"md5sum": "x"}),
    rec(6, "m6", "加我微信", sender="zhangsan", to="lisi"),  # staff to staff: not watched
    recall(7, "m7", "m3"),
)


@pytest.fixture
def cfg(make_config: Callable[..., Config]) -> Config:
    return make_config(MODERATION__REVIEWERS='["rev01"]', MODERATION__ARCHIVE_SECRET=SECRET)


@pytest.fixture
async def app(make_bot: Callable[..., BotApp], cfg: Config) -> AsyncIterator[BotApp]:
    a = make_bot(cfg=cfg)
    await a.start()
    yield a


async def counts(app: BotApp) -> tuple[int, int]:
    async with app.db.read() as s:
        n_alerts = (await s.execute(select(func.count()).select_from(ALERTS))).scalar_one()
        n_msgs = (await s.execute(select(func.count()).select_from(MESSAGES))).scalar_one()
    return n_alerts, n_msgs


async def run_import(app: BotApp, text: str) -> archive.ImportReport:
    records, problems = archive.parse_lines(text.splitlines())
    assert problems == []
    return await archive.import_records(app, app.get(MODERATION), records)


async def test_import_is_idempotent_and_keeps_the_cursor(app: BotApp) -> None:
    first = await run_import(app, FEED)
    assert (first.imported, first.duplicates, first.recalls, first.cursor) == (7, 0, 1, 7)
    n_alerts, n_msgs = await counts(app)
    assert n_alerts == first.alerts >= 2 and n_msgs == 7
    await app.settle()
    sent = list(app.sender.deliveries)  # type: ignore[attr-defined]
    assert any(d.kind == "group_robot" and "会话存档" in d.text for d in sent)
    again = await run_import(app, FEED)
    assert (again.imported, again.duplicates, again.alerts) == (0, 7, 0)
    assert await counts(app) == (n_alerts, n_msgs)
    await app.settle()
    assert len(app.sender.deliveries) == len(sent)  # type: ignore[attr-defined]
    older = await run_import(app, jsonl(rec(3, "m3", "加我vx，私下给你便宜")))
    assert older.cursor == 7  # never moves back
    newer = await run_import(app, jsonl(rec(9, "m9", "今天发货")))
    assert newer.cursor == 9 and await archive.cursor(app) == 9


async def test_archive_alerts_say_where_and_are_linked_to_recalls(app: BotApp) -> None:
    await run_import(app, FEED)
    async with app.db.read() as s:
        rows = (await s.execute(select(ALERTS).order_by(ALERTS.c.id))).all()
    by_msg = {r.msg_id: r for r in rows}
    assert "m6" not in by_msg and "m1" not in by_msg and "m2" not in by_msg
    one_to_one = by_msg["m3"]
    assert (one_to_one.source, one_to_one.chat_type, one_to_one.sender_id) == ("archive", "single", "zhangsan")
    assert one_to_one.recalled_at is not None
    assert [c["text"] for c in one_to_one.context] == ["您好，这款茶现在有活动", "多少钱呀"]
    group = by_msg["m4"]
    assert (group.chat_id, group.category, group.recalled_at) == ("wrGroup1", "私下交易/返现", None)


async def test_a_recall_that_arrives_first_is_linked_later(app: BotApp) -> None:
    await run_import(app, jsonl(recall(20, "r1", "late")))
    await run_import(app, jsonl(rec(10, "late", "加我微信")))
    async with app.db.read() as s:
        row = (await s.execute(select(ALERTS).where(ALERTS.c.msg_id == "late"))).first()
    assert row is not None and row.recalled_at is not None


def test_bad_lines_are_named() -> None:
    text = FEED + "not json\n" + json.dumps({"msgid": "x"}) + "\n" + json.dumps(rec(30, "m30")) + "\n"
    records, problems = archive.parse_lines(text.splitlines())
    assert len(records) == 7
    assert [(p.line, p.error.split(":")[0]) for p in problems] == \
        [(8, "not JSON"), (9, "seq"), (10, 'a text record needs "text"')]


async def test_http_import(app: BotApp) -> None:
    body = FEED.encode()
    signed = {"X-Siyu-Signature": archive_signature(SECRET, body)}
    async with serve(app) as client:
        r = await client.post("/archive/import", data=body, headers={"X-Siyu-Signature": "sha256=bad"})
        assert r.status == 401
        r = await client.post("/archive/import", data=body)
        assert r.status == 401
        assert await counts(app) == (0, 0)
        bad = FEED.encode() + b"{oops\n"
        r = await client.post("/archive/import", data=bad,
                              headers={"X-Siyu-Signature": archive_signature(SECRET, bad)})
        assert r.status == 400
        data = await r.json()
        assert data["problems"][0]["line"] == 8
        assert await counts(app) == (0, 0)
        empty = b"\n\n"
        r = await client.post("/archive/import", data=empty,
                              headers={"X-Siyu-Signature": archive_signature(SECRET, empty)})
        assert r.status == 400
        r = await client.post("/archive/import", data=body, headers=signed)
        assert r.status == 200
        data = await r.json()
        assert data["imported"] == 7 and data["cursor"] == 7 and data["alerts"] >= 2
        r = await client.post("/archive/import", data=body, headers=signed)
        assert (await r.json())["alerts"] == 0


async def test_http_import_is_off_without_a_secret(make_bot: Callable[..., BotApp],
                                                   make_config: Callable[..., Config]) -> None:
    a = make_bot(cfg=make_config())
    async with serve(a) as client:
        r = await client.post("/archive/import", data=b"{}", headers={"X-Siyu-Signature": "sha256=x"})
        assert r.status == 404


def test_cli_import_archive(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SIYU_DATABASE__URL", db_url)
    monkeypatch.setenv("SIYU_MODERATION__REVIEWERS", '["rev01"]')
    monkeypatch.setenv("SIYU_CONSOLE__FORMAT", "json")
    f = tmp_path / "feed.jsonl"
    f.write_text(FEED, encoding="utf-8")
    assert main(["import-archive", str(f), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["imported"] == 7 and summary["cursor"] == 7 and summary["alerts"] >= 2
    assert any(json.loads(line).get("kind") == "group_robot" for line in out[:-1])
    assert main(["import-archive", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["alerts"] == 0
    f.write_text(FEED + "{broken\n", encoding="utf-8")
    assert main(["import-archive", str(f)]) == 1
    assert f"{f}:8: not JSON" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(jsonl(rec(40, "m40", "加我微信")).encode())))
    assert main(["import-archive", "-", "--json", "--no-send"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cursor"] == 40


BEHAVIOUR_FEED = jsonl(
    rec(1, "b1", None, msgtype="redpacket", redpacket={"type": 1, "wish": "恭喜发财", "totalcnt": 1,
                                                         "totalamount": 500}),
    rec(2, "b2", None, msgtype="card", card={"corpname": "", "userid": "zhangsan_personal"}),
    rec(3, "b3", None, msgtype="transfer", room="wrGroup1", transfer={"amount": 2000}),
    rec(4, "b4", None, msgtype="weapp", weapp={"title": "茶叶商城", "displayname": "禾屿小店"}),
    rec(5, "b5", None, msgtype="file", file={"filename": "价目表.pdf"}),
    # a customer's red packet and card to a staff member, and a red packet between colleagues: no alert
    rec(6, "b6", None, sender="wmCustomer", to="zhangsan", msgtype="redpacket", redpacket={"wish": "谢谢"}),
    rec(7, "b7", None, sender="wmCustomer", to="zhangsan", msgtype="card", card={"userid": "wmFriend"}),
    rec(8, "b8", None, to="lisi", msgtype="redpacket", redpacket={"wish": "生日快乐"}),
)


async def test_red_packets_cards_and_transfers_to_customers_are_behaviour_alerts(app: BotApp) -> None:
    report = await run_import(app, BEHAVIOUR_FEED)
    async with app.db.read() as s:
        rows = (await s.execute(select(ALERTS).order_by(ALERTS.c.id))).all()
    by_msg = {r.msg_id: r for r in rows}
    assert set(by_msg) == {"b1", "b2", "b3", "b4", "b5"} and report.alerts == 5
    # the documented defaults: red packet and card review, transfer reject, mini-program and file only noted
    assert {m: (r.category, r.term, r.level, r.status) for m, r in by_msg.items()} == {
        "b1": ("行为：发红包", "发红包", "review", "open"), "b2": ("行为：推名片", "推名片", "review", "open"),
        "b3": ("行为：转账", "转账", "reject", "open"), "b4": ("行为：发小程序", "发小程序", "info", "noted"),
        "b5": ("行为：发文件", "发文件", "info", "noted")}
    red = by_msg["b1"]
    assert (red.stage, red.sender_id, red.chat_type, red.text) == ("behaviour", "zhangsan", "single",
                                                                   "[红包] 恭喜发财 ¥5.00")
    assert by_msg["b3"].chat_id == "wrGroup1" and by_msg["b2"].text == "[名片] zhangsan_personal"
    await app.settle()
    sent = [d for d in app.sender.deliveries if "敏感行为预警" in d.text]  # type: ignore[attr-defined]
    routed = {(d.kind, tuple(d.to)) for d in sent}
    assert routed == {("group_robot", ()), ("app_message", ("rev01",))}
    assert len(sent) == 6  # three messages alerted, each to the robot and the reviewer
    card = next(d for d in sent if "行为：推名片" in d.text)
    assert "zhangsan_personal" in card.text and f"/alerts ack {by_msg['b2'].id}" in card.text
    # a false positive proposes no allow term: there are no words to allow
    h = Harness(app)
    await h.admin("/role grant @rev01 reviewer", group=False)
    fp = await h.say_texts(f"/alerts fp {red.id} 节日福利", sender="rev01", staff=True, group=False)
    assert "误报" in fp[0] and "/word allow" not in fp[0]


async def test_behaviour_levels_come_from_the_config(make_bot: Callable[..., BotApp],
                                                    make_config: Callable[..., Config]) -> None:
    cfg = make_config(MODERATION__REVIEWERS='["rev01"]',
                      MODERATION__BEHAVIOUR_LEVELS='{"card": "reject", "redpacket": "off", "file": "review"}')
    assert cfg.moderation.behaviour_levels["transfer"] == "reject"  # a key left out keeps its default
    app = make_bot(cfg=cfg)
    await app.start()
    await run_import(app, BEHAVIOUR_FEED)
    async with app.db.read() as s:
        rows = (await s.execute(select(ALERTS).order_by(ALERTS.c.id))).all()
    assert {r.msg_id: r.level for r in rows} == {"b2": "reject", "b3": "reject", "b4": "info", "b5": "review"}


def test_unknown_behaviour_is_refused(make_config: Callable[..., Config]) -> None:
    with pytest.raises(Exception, match="redpackt"):
        make_config(MODERATION__BEHAVIOUR_LEVELS='{"redpackt": "review"}')
