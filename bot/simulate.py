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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.events import Actor, Chat, ContactAdded, MemberJoined, MemberLeft, MessageEvent

HELP = """\
模拟器命令（以冒号开头，其余输入都作为聊天消息发送）:
  :as <名字> [member|staff|operator|reviewer|admin]  切换身份（默认 member 成员）
  :group <群名>        进入一个群聊（不存在则新建）
  :dm                  切换到与机器人的私聊
  :join [邀请人]       当前身份加入当前群（有邀请人则记为邀请入群）
  :leave               当前身份退出当前群
  :add                 当前身份（客户）添加员工为好友（contact_added）
  :mention on|off      群消息是否 @机器人（默认 on）
  :wait <秒>           让时间流逝（调度器与定时任务照常运行）
  :who                 显示当前身份与会话
  :help                显示本帮助
  :quit                退出
"""


@dataclass
class Persona:
    name: str
    role: str = "member"

    @property
    def id(self) -> str:
        base = "".join(ch for ch in self.name if ch.isalnum()) or "user"
        return base if self.staff else f"wm{base}"

    @property
    def staff(self) -> bool:
        return self.role != "member"

    def actor(self) -> Actor:
        return Actor(id=self.id, name=self.name, staff=self.staff)


class Simulation:
    def __init__(self, app: Any, group: str, persona: Persona, out: Any = None) -> None:
        self.app = app
        self.persona = persona
        self.chat = Chat(id=f"sim-{group}", type="group", name=group)
        self.mention = True
        self.out = out or sys.stdout

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

    async def send_text(self, text: str) -> None:
        chat = self.chat
        event = MessageEvent(key=self._key(), time=self.app.clock.now(), channel="simulator", chat=chat,
                             sender=self.persona.actor(), text=text,
                             mentions_bot=self.mention or chat.type == "single")
        await self.app.accept_event(event)
        await self.app.settle()

    async def control(self, line: str) -> bool:
        """Handle a ':' line; False to quit."""
        cmd, _, rest = line[1:].strip().partition(" ")
        rest = rest.strip()
        if cmd in ("quit", "q", "exit"):
            return False
        if cmd == "help":
            self.say(HELP)
        elif cmd == "as":
            parts = rest.split()
            if not parts:
                self.say("用法：:as <名字> [member|staff|operator|reviewer|admin]")
                return True
            role = parts[1] if len(parts) > 1 else "member"
            if role not in ("member", "staff", "operator", "reviewer", "admin"):
                self.say("身份只能是 member、staff、operator、reviewer 或 admin")
                return True
            self.persona = Persona(parts[0], role)
            await self.ensure_role()
            self.say(f"现在你是 {self.persona.name}（{self.persona.id}，{role}）")
        elif cmd == "group":
            if not rest:
                self.say("用法：:group <群名>")
                return True
            self.chat = Chat(id=f"sim-{rest}", type="group", name=rest)
            self.say(f"进入群聊 {rest}")
        elif cmd == "dm":
            self.chat = Chat(id=self.persona.id, type="single", name=self.persona.name)
            self.say("切换到与机器人的私聊")
        elif cmd in ("join", "leave"):
            if self.chat.type != "group":
                self.say("请先用 :group <群名> 进入一个群")
                return True
            if cmd == "join":
                inviter = Persona(rest).actor() if rest else None
                event: Any = MemberJoined(key=self._key(), time=self.app.clock.now(), channel="simulator",
                                          chat=self.chat, member=self.persona.actor(), inviter=inviter,
                                          scene="invite" if inviter else "qrcode")
            else:
                event = MemberLeft(key=self._key(), time=self.app.clock.now(), channel="simulator", chat=self.chat,
                                   member=self.persona.actor(), scene="left")
            await self.app.accept_event(event)
            await self.app.settle()
        elif cmd == "add":
            event = ContactAdded(key=self._key(), time=self.app.clock.now(), channel="simulator",
                                 member=self.persona.actor(), staff=Actor(id="staff01", name="客服", staff=True),
                                 state="simulator", welcome_code=uuid.uuid4().hex)
            await self.app.accept_event(event)
            await self.app.settle()
        elif cmd == "mention":
            self.mention = rest != "off"
            self.say(f"群消息{'会' if self.mention else '不会'} @机器人")
        elif cmd == "wait":
            try:
                seconds = float(rest or "1")
            except ValueError:
                self.say("用法：:wait <秒>")
                return True
            clock = self.app.clock
            if hasattr(clock, "advance"):
                clock.advance(timedelta(seconds=seconds))
            else:
                await asyncio.sleep(seconds)
            await self.app.settle()
        elif cmd == "who":
            self.say(f"{self.persona.name}（{self.persona.id}，{self.persona.role}）在 {self.chat.display}")
        else:
            self.say(f"未知的模拟器命令 :{cmd}，输入 :help 查看")
        return True

    def prompt(self) -> str:
        where = self.chat.name if self.chat.type == "group" else "私聊"
        return f"[{where}] {self.persona.name}> "


async def run(args: argparse.Namespace) -> int:
    from bot.app import BotApp
    from bot.cliargs import config_from_args
    from bot.logs import setup_logging
    from bot.senders.console import ConsoleSender

    cfg = config_from_args(args)
    tmp = None
    if args.fresh:
        tmp = tempfile.TemporaryDirectory(prefix="siyu-sim-")
        cfg.database.url = f"sqlite:///{tmp.name}/sim.db"
    setup_logging("WARNING" if not args.verbose else "DEBUG", "text")
    app = BotApp(cfg, sender=ConsoleSender(cfg.console.format, stream=sys.stdout))
    sim = Simulation(app, args.group, Persona(args.name, args.role))
    interactive = sys.stdin.isatty()
    async with app:
        await sim.ensure_role()
        if interactive:
            sim.say(f"siyu 模拟器 —— 数据库 {app.db.dialect}，输入 :help 查看命令，:quit 退出")
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
    p.add_argument("--verbose", action="store_true", help="show debug logs")
    p.set_defaults(func=lambda a: asyncio.run(run(a)))
