"""Runs started and stopped by the events the bot receives, driven through the harness with the shipped scripts."""

from __future__ import annotations

from datetime import timedelta

from bot.events import Actor, Chat, ContactAdded, GroupCreated, GroupDismissed, TagAdded
from bot.testing import Harness
from tests.sop_support import at, runs, sop_sent, steps


async def test_a_member_joining_gets_the_welcome_in_the_group_with_a_mention(harness: Harness) -> None:
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    sent = sop_sent(await harness.join("wmBob", "Bob", chat="g1", chat_name="禾屿茶友会1群"))
    (welcome,) = sent
    assert welcome.kind == "reply" and welcome.chat_id == "g1" and welcome.to == ["wmBob"]
    assert welcome.destination["mention"] == ["wmBob"]
    assert welcome.text.startswith("欢迎 Bob 加入禾屿茶友会1群🍵")
    (run,) = await runs(harness.app)
    assert (run.script_id, run.per, run.member_id, run.chat_id, run.status) == ("newcomer-7d", "member", "wmBob",
                                                                                 "g1", "running")
    assert [s.step_key for s in await steps(harness.app, run.id)][:3] == ["welcome", "owner-hello", "day1-gift"]


async def test_staff_joining_a_group_start_nothing(harness: Harness) -> None:
    from bot.events import MemberJoined

    ev = MemberJoined(key=harness.key(), time=harness.app.clock.now(), channel="test", chat=Chat(id="g1"),
                      member=Actor(id="staff01", name="客服", staff=True))
    assert sop_sent(await harness.push(ev)) == [] and await runs(harness.app) == []


async def test_the_newcomer_week_goes_out_at_local_times_and_the_owner_is_reminded(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    await harness.admin("/group owner @staff01", chat="g1")
    await harness.join("wmBob", "Bob", chat="g1")
    clock.advance(timedelta(minutes=30))
    (remind,) = sop_sent(await harness.settle())
    assert remind.kind == "remind_staff" and remind.to == ["staff01"]
    assert "请发给 Bob" in remind.text and "新朋友 Bob 半小时前进了「新人群」" in remind.text
    at(clock, 2026, 11, 24, 9, 29)
    assert sop_sent(await harness.settle()) == []
    at(clock, 2026, 11, 24, 9, 30)
    (gift,) = sop_sent(await harness.settle())
    assert gift.key.endswith(":day1-gift:0") and "新人礼包" in gift.text
    at(clock, 2026, 11, 30, 10, 0)
    late = sop_sent(await harness.settle())
    # day 2-5 were missed by more than the 2 h grace (late: skip); day 7 is on time
    assert [d.key.split(":")[2] for d in late] == ["day7-review"]
    outcomes = {s.step_key: s.outcome for s in await steps(harness.app)}
    assert outcomes["day2-brew"] == "skipped_late" and outcomes["day7-review"] == "sent"
    at(clock, 2026, 11, 30, 20, 0)
    (survey,) = sop_sent(await harness.settle())     # that evening the satisfaction question (an external
    assert survey.key.endswith(":day7-nps:0") and survey.chat_id == "g1"   # contact: in the group, @-mentioned)
    assert survey.destination["mention"] == ["wmBob"]
    assert "推荐给身边爱喝茶的朋友" in survey.text and "0–10" in survey.text
    (run,) = await runs(harness.app)
    assert run.status == "done" and run.active_key is None


async def test_joining_at_night_is_welcomed_when_quiet_hours_end(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 23, 10)
    assert sop_sent(await harness.join("wmBob", "Bob")) == []
    at(clock, 2026, 11, 24, 7, 59)
    assert sop_sent(await harness.settle()) == []
    at(clock, 2026, 11, 24, 8, 0)
    (welcome,) = sop_sent(await harness.settle())
    assert welcome.key.endswith(":welcome:0")
    step = (await steps(harness.app))[0]
    assert step.nominal_at < step.due_at and step.outcome == "sent"


async def test_one_run_per_member_and_group_while_it_runs_and_a_new_one_after_rejoining(harness: Harness) -> None:
    first = harness.key()
    await harness.join("wmBob", "Bob")
    from bot.events import MemberJoined

    again = MemberJoined(key=first, time=harness.app.clock.now(), channel="test", chat=Chat(id="g1", name="新人群"),
                         member=Actor(id="wmBob", name="Bob"))
    await harness.push(again)       # a redelivered event
    await harness.push(MemberJoined(key=harness.key(), time=harness.app.clock.now(), channel="test",
                                    chat=Chat(id="g1", name="新人群"), member=Actor(id="wmBob", name="Bob")))
    await harness.join("wmBob", "Bob", chat="g2", chat_name="禾屿茶友会2群")  # another group: its own run
    assert [(r.chat_id, r.status) for r in await runs(harness.app)] == [("g1", "running"), ("g2", "running")]
    assert len(sop_sent(harness.sent)) == 2
    await harness.leave("wmBob", chat="g1")
    await harness.join("wmBob", "Bob", chat="g1")
    assert [(r.chat_id, r.status) for r in await runs(harness.app)] == [("g1", "stopped"), ("g2", "running"),
                                                                         ("g1", "running")]


async def test_leaving_the_group_stops_the_run_and_nothing_more_is_sent(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    await harness.join("wmBob", "Bob")
    await harness.leave("wmBob")
    (run,) = await runs(harness.app)
    assert run.status == "stopped" and "退群" in run.end_reason
    at(clock, 2026, 11, 24, 9, 30)
    assert sop_sent(await harness.settle()) == []
    states = {(s.state, s.outcome) for s in await steps(harness.app, run.id)}
    assert states == {("done", "sent"), ("cancelled", "stopped")}


async def test_a_contact_added_gets_the_welcome_message_tag_and_staff_reminder(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    sent = sop_sent(await harness.add_contact("wmCarol", "Carol", staff="staff01", state="live-qr",
                                              welcome_code="WC-123"))
    kinds = {d.kind: d for d in sent}
    assert set(kinds) == {"welcome", "mark_tag"}
    welcome = kinds["welcome"]
    assert welcome.destination["welcome_code"] == "WC-123" and welcome.destination["sender"] == "staff01"
    assert welcome.text.startswith("Carol您好，我是禾屿茶的茶艺师阿禾")
    assert welcome.payload["attachments"][0]["msgtype"] == "link"
    assert welcome.destination["expires_at"] == (clock.now() + timedelta(seconds=20)).isoformat()
    tag = kinds["mark_tag"]
    assert tag.destination["external_userid"] == "wmCarol" and tag.payload["add_tag"] == ["etHeYuStage1Guide"]
    clock.advance(timedelta(hours=2))
    (remind,) = sop_sent(await harness.settle())
    assert remind.kind == "remind_staff" and remind.to == ["staff01"] and "渠道：live-qr" in remind.text
    at(clock, 2026, 11, 24, 10, 0)
    day1 = {d.kind: d for d in sop_sent(await harness.settle())}
    assert day1["mass_send"].destination == {"sender": "staff01", "external_userids": ["wmCarol"], "to": []}
    assert day1["mark_tag"].payload == {"add_tag": ["etHeYuStage2Help"], "remove_tag": ["etHeYuStage1Guide"],
                                        "text": "+etHeYuStage2Help -etHeYuStage1Guide", "msgtype": "text"}


async def test_a_contact_event_processed_after_20_seconds_records_the_welcome_as_expired(harness: Harness) -> None:
    now = harness.app.clock.now()
    ev = ContactAdded(key=harness.key(), time=now - timedelta(seconds=25), channel="test",
                      member=Actor(id="wmDan", name="Dan"), staff=Actor(id="staff01", staff=True), welcome_code="W")
    sent = sop_sent(await harness.push(ev))
    assert [d.kind for d in sent] == ["mark_tag"]
    welcome = next(s for s in await steps(harness.app) if s.step_key == "welcome")
    assert (welcome.state, welcome.outcome) == ("done", "expired")


async def test_a_group_created_with_a_check_in_name_starts_the_camp(harness: Harness) -> None:
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    for name in ("禾屿打卡营3群", "禾屿茶友会9群"):
        ev = GroupCreated(key=harness.key(), time=harness.app.clock.now(), channel="test",
                          chat=Chat(id=f"wr-{name}", name=name), owner=Actor(id="staff02", staff=True))
        await harness.push(ev)
    (run,) = await runs(harness.app)
    assert (run.script_id, run.per, run.chat_name, run.staff_id) == ("checkin-21d", "group", "禾屿打卡营3群", "staff02")
    (opening,) = sop_sent(harness.sent)
    assert opening.text.startswith("📣 禾屿打卡营3群 开营啦") and opening.to == []
    ev = GroupDismissed(key=harness.key(), time=harness.app.clock.now(), channel="test",
                        chat=Chat(id="wr-禾屿打卡营3群"))
    await harness.push(ev)
    assert (await runs(harness.app))[0].status == "stopped"


async def test_tags_start_and_stop_scripts(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    await harness.add_contact("wmEve", "Eve", staff="staff02")

    def tag(name: str) -> TagAdded:
        return TagAdded(key=harness.key(), time=clock.now(), channel="test", member=Actor(id="wmEve", name="Eve"),
                        tag=name)

    await harness.push(tag("白茶爱好者"))   # no script for this tag
    await harness.push(tag("首单"))
    care = [r for r in await runs(harness.app) if r.script_id == "first-order-care"]
    assert [(r.status, r.staff_id) for r in care] == [("running", "staff02")]
    at(clock, 2026, 11, 25, 10, 0)
    (remind,) = [d for d in sop_sent(await harness.settle()) if d.key.startswith(f"sop:{care[0].id}:")]
    assert remind.kind == "remind_staff" and remind.to == ["staff02"] and "首单" in remind.text
    await harness.push(tag("复购"))
    care = [r for r in await runs(harness.app) if r.script_id == "first-order-care"]
    assert care[0].status == "stopped" and care[0].end_reason == "打上标签 复购"
    lifecycle = [r for r in await runs(harness.app) if r.script_id == "lifecycle-7"]
    assert lifecycle[0].status == "running"  # stop_on names the tag; other scripts go on


async def test_a_real_upgrade_to_vip_starts_the_vip_welcome(harness: Harness) -> None:
    at(harness.app.clock, 2026, 11, 23, 10, 0)
    await harness.admin("/group owner @staff01", chat="g1")
    await harness.join("wmBob", "Bob", chat="g1")
    await harness.say("大家好", sender="wmBob", name="Bob", mention=False)
    await harness.admin("/purchase @wmBob 268 白茶礼盒", group=False)
    vip = [r for r in await runs(harness.app) if r.script_id == "vip-welcome"]
    assert [(r.member_id, r.chat_id, r.staff_id, r.trigger["to_tier"]) for r in vip] == [("wmBob", "g1", "staff01",
                                                                                           "vip")]
    (remind,) = [d for d in sop_sent(harness.sent) if d.key.startswith(f"sop:{vip[0].id}:")]
    assert remind.kind == "remind_staff" and remind.to == ["staff01"]
    assert "Bob 刚升到 VIP（累计消费 ¥268）" in remind.text


async def test_the_check_in_tally_counts_who_checked_in(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    for who, name in (("wmBob", "Bob"), ("wmCarol", "Carol"), ("wmDan", "Dan")):
        await harness.join(who, name, chat="gC", chat_name="禾屿打卡营")
    await harness.admin("/sop start checkin-21d 本群", chat="gC", chat_name="禾屿打卡营")
    at(clock, 2026, 11, 23, 19, 0)
    await harness.say("打卡 白牡丹 清甜", sender="wmBob", name="Bob", chat="gC", mention=False)
    await harness.say("打卡 肉桂 很香", sender="wmCarol", name="Carol", chat="gC", mention=False)
    await harness.say("打卡 又来一次", sender="wmCarol", name="Carol", chat="gC", mention=False)  # capped: once a day
    at(clock, 2026, 11, 23, 20, 30)
    (evening,) = [d for d in sop_sent(await harness.settle()) if ":evening:" in d.key]
    assert "今天已经有 2 位茶友打卡：Bob、Carol" in evening.text and evening.key.endswith(":evening:0")
    at(clock, 2026, 11, 24, 7, 0)
    await harness.say("打卡 早起一杯", sender="wmDan", name="Dan", chat="gC", mention=False)  # today, not yesterday
    at(clock, 2026, 11, 24, 8, 30)
    (tally,) = [d for d in sop_sent(await harness.settle()) if ":tally:" in d.key]
    assert "昨天（2026-11-23）群里 3 位茶友中有 2 位打卡，打卡率 67%" in tally.text
    assert "打卡名单：Bob、Carol" in tally.text
    assert tally.chat_id == "gC" and tally.to == []


async def test_a_when_condition_is_evaluated_on_the_member_at_send_time(harness: Harness) -> None:
    clock = harness.app.clock
    at(clock, 2026, 11, 23, 10, 0)
    await harness.join("wmBob", "Bob")
    await harness.join("wmCarol", "Carol")
    at(clock, 2026, 11, 25, 12, 0)
    await harness.say("打卡 今天的白茶", sender="wmBob", name="Bob", mention=False)
    at(clock, 2026, 11, 26, 20, 0)
    sent = [d for d in sop_sent(await harness.settle()) if ":day3-checkin:" in d.key]
    assert [d.to for d in sent] == [["wmCarol"]]
    outcome = {(s.run_id, s.outcome) for s in await steps(harness.app) if s.step_key == "day3-checkin"}
    bob, carol = await runs(harness.app)
    assert outcome == {(bob.id, "skipped_when"), (carol.id, "sent")}
