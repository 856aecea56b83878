"""``python -m bot simulate``: chat with the bot in a terminal, through the real pipeline.

What you type becomes an event in the inbox; the workers dispatch it; what the
bot would send goes through the outbox to the console sender and is printed.
Lines starting with ":" control the simulation (``:help`` lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.clock import FakeClock
from bot.events import EXTERNAL_PREFIXES, Actor, Chat, ContactAdded, MemberJoined, MemberLeft, MessageEvent
from bot.sop import MOMENTS, SOP
from bot.sop.timing import WEEKDAY_CN, parse_duration

HELP = """\
模拟器命令（以冒号开头，其余输入都作为聊天消息发送）:
  :as <名字> [member|staff|operator|reviewer|admin]  切换身份（默认 member 成员）
  :as <员工> to <客户>  以员工身份与客户私聊（如 :as staff01 to wmAlice）：之后的消息是员工发给客户的，
                       合规监控照常检查
  :group <群名>        进入一个群聊（不存在则新建）
  :dm                  切换到与机器人的私聊
  :join [邀请人]       当前身份加入当前群（有邀请人则记为邀请入群）
  :leave               当前身份退出当前群
  :add                 当前身份（客户）添加员工为好友（contact_added）
  :mention on|off      群消息是否 @机器人（默认 on）
  :wait <时长>         让模拟时钟前进（3d、2h、30m 或秒数）：途中到期的 SOP 步骤、朋友圈、定时任务按时运行，
                       并说明哪些被免打扰时段或审批暂缓
  :who                 显示当前身份、会话和模拟时间
  :help                显示本帮助
  :quit                退出
"""
ROLES = ("member", "staff", "operator", "reviewer", "admin")
# The longest :wait step: reloaders and other pollers get a turn at least this often.
MAX_STEP = timedelta(hours=1)


@dataclass
class Persona:
    name: str
    role: str = "member"

    @property
    def id(self) -> str:
        base = "".join(ch for ch in self.name if ch.isalnum()) or "user"
        return base if self.staff or base.startswith(EXTERNAL_PREFIXES) else f"wm{base}"

    @property
    def staff(self) -> bool:
        return self.role != "member"

    def actor(self) -> Actor:
        return Actor(id=self.id, name=self.name, staff=self.staff)


def parse_wait(text: str) -> timedelta:
    """``3d`` / ``2h`` / ``30m`` (as SOP timings are written) or a number of seconds."""
    raw = text.strip() or "1"
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        return parse_duration(raw)


class Simulation:
    def __init__(self, app: Any, group: str, persona: Persona, out: Any = None) -> None:
        self.app = app
        self.persona = persona
        self.chat = Chat(id=f"sim-{group}", type="group", name=group)
        self.mention = True
        self.out = out or sys.stdout
        self._last_run = 0
        self._seen_steps: set[int] = set()
        self._seen_slots: set[str] = set()
        self.commands: dict[str, Callable[[str], Awaitable[bool | None]]] = {
            "help": self._help, "as": self._as, "group": self._group, "dm": self._dm,
            "join": lambda rest: self._join_leave(rest, join=True),
            "leave": lambda rest: self._join_leave(rest, join=False),
            "add": self._add, "mention": self._mention, "wait": self._wait, "who": self._who,
        }

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _key(self) -> str:
        return f"sim:{uuid.uuid4().hex}"

    async def ensure_role(self) -> None:
        role = self.persona.role
        if role == "admin":
            self.app.roles.admins = self.app.roles.admins | {self.persona.id}
        elif role in ("operator", "reviewer"):
            async with self.app.db.session() as s:
                await self.app.roles.grant(s, self.persona.id, role, "simulator")

    async def push(self, event: Any) -> None:
        """Commit an event, process everything it causes, and tell what started or is held."""
        since = self.app.clock.now()
        await self.app.accept_event(event)
        await self.app.settle()
        await self.report(since)

    async def send_text(self, text: str) -> None:
        chat = self.chat
        to_customer = chat.type == "single" and chat.id != self.persona.id   # staff writing to a customer
        event = MessageEvent(key=self._key(), time=self.app.clock.now(), channel="simulator", chat=chat,
                             sender=self.persona.actor(), text=text,
                             mentions_bot=not to_customer and (self.mention or chat.type == "single"))
        await self.push(event)

    async def report(self, since: datetime) -> None:
        """What the schedules did that no delivery shows: SOP runs started, steps held by quiet hours or not
        sent, Moments slots held for an approval, skipped or missed."""
        now = self.app.clock.now()
        lines: list[str] = []
        sop = self.app.maybe(SOP)
        if sop is not None:
            async with self.app.db.read() as s:
                got, self._last_run = await sop.activity(s, after_run=self._last_run, since=since, now=now,
                                                          seen=self._seen_steps)
            lines += got
        moments = self.app.maybe(MOMENTS)
        if moments is not None and self.app.config.moments.enabled:
            lines += await moments.activity(now, self._seen_slots)
        for line in lines:
            self.say(f"   ⓘ {line}")

    def local(self, at: datetime) -> str:
        local = at.astimezone(self.app.config.bot.tz)
        return f"{local:%Y-%m-%d} {WEEKDAY_CN[local.weekday()]} {local:%H:%M}"

    async def wait(self, delta: timedelta) -> None:
        """Move the clock by ``delta``, stopping at every time something falls due (the features' pumps and
        due tasks say when, the cron triggers when they fire) and at least every MAX_STEP: at each stop the
        due cron jobs fire and everything due is processed, as the running bot would."""
        app, clock = self.app, self.app.clock
        end = clock.now() + delta
        while clock.now() < end:
            now = clock.now()
            due = await app.next_due()
            firings = app.scheduler.firings(now, min(end, now + MAX_STEP))
            stop = min(t for t in (end, now + MAX_STEP, firings[0][0] if firings else None,
                                   due if due is not None and due > now else None) if t is not None)
            clock.set(stop)
            fired = [(at, job) for at, job in firings if at <= stop]
            # a job that fires more than once an hour (a notice batch, escalations) runs silently: what it sends
            # is shown anyway, and a line per run would bury everything else during a long wait
            hourly = Counter(job for _, job in app.scheduler.firings(now, now + MAX_STEP))
            shown = [job for _, job in fired if hourly[job] <= 1]
            if (due is not None and now < due <= stop) or shown:
                self.say(f"⏰ {self.local(stop)}")
            for at, job in fired:
                await app.scheduler.fire(job, at)
            for job in shown:
                self.say(f"   ⓘ 定时任务 {job} 已运行")
            await app.settle()
            await self.report(now)
        self.say(f"现在是 {self.local(clock.now())}")

    async def control(self, line: str) -> bool:
        """Handle a ':' line; False to quit."""
        cmd, _, rest = line[1:].strip().partition(" ")
        if cmd in ("quit", "q", "exit"):
            return False
        handler = self.commands.get(cmd)
        if handler is None:
            self.say(f"未知的模拟器命令 :{cmd}，输入 :help 查看")
            return True
        await handler(rest.strip())
        return True

    async def _help(self, _rest: str) -> None:
        self.say(HELP)

    async def _as(self, rest: str) -> None:
        parts = rest.split()
        to = ""
        if len(parts) >= 3 and parts[-2] == "to":
            to, parts = parts[-1], parts[:-2]
        if not parts or len(parts) > 2:
            self.say("用法：:as <名字> [member|staff|operator|reviewer|admin]，或 :as <员工> to <客户>")
            return
        role = parts[1] if len(parts) > 1 else ("staff" if to else "member")
        if role not in ROLES or (to and role == "member"):
            self.say("身份只能是 member、staff、operator、reviewer 或 admin（与客户私聊的必须是员工）")
            return
        self.persona = Persona(parts[0], role)
        await self.ensure_role()
        if to:
            customer = Persona(to)
            self.chat = Chat(id=customer.id, type="single", name=customer.name)
            self.say(f"现在你是 {self.persona.name}（{self.persona.id}，{role}），与客户 {customer.id} 私聊")
        else:
            if self.chat.type == "single":  # a 1:1 chat is someone's: the new persona talks to the bot 1:1
                self.chat = Chat(id=self.persona.id, type="single", name=self.persona.name)
            self.say(f"现在你是 {self.persona.name}（{self.persona.id}，{role}）")

    async def _group(self, rest: str) -> None:
        if not rest:
            self.say("用法：:group <群名>")
            return
        self.chat = Chat(id=f"sim-{rest}", type="group", name=rest)
        self.say(f"进入群聊 {rest}")

    async def _dm(self, _rest: str) -> None:
        self.chat = Chat(id=self.persona.id, type="single", name=self.persona.name)
        self.say("切换到与机器人的私聊")

    async def _join_leave(self, rest: str, *, join: bool) -> None:
        if self.chat.type != "group":
            self.say("请先用 :group <群名> 进入一个群")
            return
        now = self.app.clock.now()
        if join:
            inviter = Persona(rest).actor() if rest else None
            event: Any = MemberJoined(key=self._key(), time=now, channel="simulator", chat=self.chat,
                                      member=self.persona.actor(), inviter=inviter,
                                      scene="invite" if inviter else "qrcode")
        else:
            event = MemberLeft(key=self._key(), time=now, channel="simulator", chat=self.chat,
                               member=self.persona.actor(), scene="left")
        await self.push(event)

    async def _add(self, _rest: str) -> None:
        await self.push(ContactAdded(key=self._key(), time=self.app.clock.now(), channel="simulator",
                                     member=self.persona.actor(), staff=Actor(id="staff01", name="客服", staff=True),
                                     state="simulator", welcome_code=uuid.uuid4().hex))

    async def _mention(self, rest: str) -> None:
        self.mention = rest != "off"
        self.say(f"群消息{'会' if self.mention else '不会'} @机器人")

    async def _wait(self, rest: str) -> None:
        try:
            delta = parse_wait(rest)
        except ValueError:
            delta = timedelta(0)
        if delta <= timedelta(0) or delta > timedelta(days=60):
            self.say("用法：:wait <时长>，例如 :wait 3d、:wait 2h、:wait 30m 或 :wait 90（秒），最多 60 天")
            return
        await self.wait(delta)

    async def _who(self, _rest: str) -> None:
        self.say(f"{self.persona.name}（{self.persona.id}，{self.persona.role}）在 {self.chat.display}，"
                 f"模拟时间 {self.local(self.app.clock.now())}")

    def prompt(self) -> str:
        if self.chat.type == "group":
            where = self.chat.name
        else:
            where = "私聊" if self.chat.id == self.persona.id else f"私聊 {self.chat.id}"
        return f"[{where}] {self.persona.name}> "


def start_time(text: str | None, tz: Any) -> datetime:
    """The simulated clock's start: ``--start "YYYY-MM-DD HH:MM"`` in the bot's time zone, else now."""
    if not text:
        return datetime.now(UTC)
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=tz).astimezone(UTC)


async def run(args: argparse.Namespace) -> int:
    from bot.app import BotApp
    from bot.cliargs import config_from_args
    from bot.logs import setup_logging
    from bot.senders.console import ConsoleSender

    cfg = config_from_args(args)
    try:
        clock = FakeClock(start_time(args.start, cfg.bot.tz))
    except ValueError:
        print(f"--start {args.start!r} 应写成 \"YYYY-MM-DD HH:MM\"（{cfg.bot.timezone} 时间）", file=sys.stderr)
        return 2
    tmp = None
    if args.fresh:
        tmp = tempfile.TemporaryDirectory(prefix="siyu-sim-")
        cfg.database.url = f"sqlite:///{tmp.name}/sim.db"
    setup_logging("WARNING" if not args.verbose else "DEBUG", "text")
    # The simulated clock moves only with :wait; nothing runs in the background: after each line the
    # simulator processes what is due (BotApp.settle) and, on :wait, fires the cron jobs as they fall due.
    app = BotApp(cfg, sender=ConsoleSender(cfg.console.format, stream=sys.stdout), clock=clock, run_workers=False)
    sim = Simulation(app, args.group, Persona(args.name, args.role))
    interactive = sys.stdin.isatty()
    async with app:
        await sim.ensure_role()
        if interactive:
            sim.say(f"siyu 模拟器 —— 数据库 {app.db.dialect}，模拟时间 {sim.local(clock.now())}，"
                    "输入 :help 查看命令，:quit 退出")
        loop = asyncio.get_running_loop()
        while True:
            try:
                if interactive:
                    line = await loop.run_in_executor(None, input, sim.prompt())
                else:
                    line = await loop.run_in_executor(None, sys.stdin.readline)
                    if not line:
                        break
                    line = line.rstrip("\n")
            except EOFError:
                break
            if not line.strip():
                continue
            if line.startswith(":"):
                if not await sim.control(line):
                    break
                continue
            if not interactive:
                sim.say(f"{sim.prompt()}{line}")
            await sim.send_text(line)
    if tmp is not None:
        tmp.cleanup()
    return 0


def register(sub: Any) -> None:
    from bot.cliargs import add_config_arg

    p = sub.add_parser(
        "simulate", help="chat with the bot in the terminal (real pipeline, console sender)",
        description="An interactive chat: type as a member or an operator in a named group and see what the bot "
                    "sends. Lines starting with ':' control the simulation (:help). Reads a script from stdin "
                    "when it is not a terminal.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=HELP)
    add_config_arg(p)
    p.add_argument("--group", default="新人群", help="group to start in (default: 新人群)")
    p.add_argument("--name", default="小明", help="who you are (default: 小明)")
    p.add_argument("--role", default="member", choices=["member", "staff", "operator", "reviewer", "admin"],
                   help="your role (default: member)")
    p.add_argument("--fresh", action="store_true", help="use a throwaway database instead of database.url")
    p.add_argument("--start", metavar="'YYYY-MM-DD HH:MM'",
                   help="where the simulated clock starts, in bot.timezone (default: now); :wait moves it")
    p.add_argument("--verbose", action="store_true", help="show debug logs")
    p.set_defaults(func=lambda a: asyncio.run(run(a)))
