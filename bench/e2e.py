"""End-to-end benchmark: signed, encrypted callbacks in, replies at the fake WeCom out.

A real ``serve`` process (``bot.sender = "wecom"``, ``wecom.api_base`` pointed at the fake
WeCom of bot.testing) gets a realistic mix of callbacks:

  1:1 (self-built app, encrypted XML)   members' questions the example knowledge base answers,
                                        slash commands (/help, /whoami, /me) → message/send
  groups (智能机器人, encrypted JSON)     chatter that earns points, check-ins (「打卡 …」),
                                        questions, staff messages the moderation engine scans
                                        (some with hits → alerts to the reviewer) → aibot/response

2 % of the posts repeat an earlier one (WeCom's retries). An event is processed when its inbox
row is done (``/metrics``) and everything it queued has been delivered (no outbox row pending);
a reply's latency runs from the start of its callback's POST to its arrival at the fake.

Burst mode posts everything as fast as ``--concurrency`` allows and prints acknowledged/s,
processed/s, their ratio and the reply latency p50/p99. Sustained mode posts at a fixed rate
(``--rate`` events/s for ``--seconds``) and prints the reply latency p50/p99 at that rate.
Group replies wait ``aibot.reply_wait_ms`` + 500 ms before they use the response_url (the window in
which the callback itself may still answer), so their latency is printed apart from the 1:1 ones.

    .venv/bin/python bench/e2e.py                         # SQLite: burst 20,000, then 200/s for 30 s
    .venv/bin/python bench/e2e.py --n 5000 --seconds 10   # shorter
    .venv/bin/python bench/e2e.py --pg postgresql://user@host/db   # also PostgreSQL, 1 then 2 replicas
    .venv/bin/python bench/e2e.py --pg start              # PostgreSQL from scripts/pg-test-server

Each run also prints the ``serve`` processes' CPU time per event (intake and processing, start-up
included), which the load of a shared machine changes less than the rates. ``SIYU_E2E_PROFILE=/tmp/p``
writes a cProfile of each ``serve`` process to ``/tmp/p.<run>``; ``SIYU_E2E_STATEMENTS=/tmp/s`` writes
its SQL statements, counted by their opening, to ``/tmp/s.<run>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.testing import TEST_ENV, CallbackSigner, FakeWeCom, text_xml  # noqa: E402

CORP = TEST_ENV["SIYU_WECOM__CORP_ID"]
APP = CallbackSigner(TEST_ENV["SIYU_WECOM__TOKEN"], TEST_ENV["SIYU_WECOM__ENCODING_AES_KEY"], CORP)
AIBOT = CallbackSigner(TEST_ENV["SIYU_AIBOT__TOKEN"], TEST_ENV["SIYU_AIBOT__ENCODING_AES_KEY"], "")
STAFF = [f"staff{i:02d}" for i in range(1, 11)]
REVIEWER = "rev01"

QUESTIONS = ["请问怎么退款", "多久发货", "会员积分怎么用", "怎么成为会员", "白茶怎么冲泡", "快递到哪了",
             "可以开发票吗", "直播几点开始", "收到的茶叶有破损怎么办", "新人有什么福利"]
CHATTER = ["谢谢分享👍", "哈哈好的", "今天的茶真不错", "收到", "早上好各位", "学到了", "赞", "明天见～"]
CHECKINS = ["打卡 白牡丹 清甜", "#打卡 今天喝了寿眉", "打卡 第三天"]
STAFF_TEXT = ["大家好，今晚八点直播", "新品已上架，欢迎选购", "有问题随时找我", "活动规则见群公告"]
STAFF_HITS = ["有需要加我微信 tea_zhang2024 私聊", "私下转账给我可以返现"]
COMMANDS = ["/help", "/whoami", "/me"]


# ── the fake WeCom, with the lookups it does per request indexed for 20,000 deliveries ──


class BenchFake(FakeWeCom):
    """FakeWeCom whose per-member look-back (duplicate check, 30/min) reads that member's deliveries only,
    and which notes when each reply first arrived (``arrivals``: "u:<touser>" / "r:<response code>")."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.by_user: dict[str, list[Any]] = defaultdict(list)
        self.arrivals: dict[str, float] = {}
        self.sent = 0
        self._scope: list[str] | None = None
        inner = self._routes["message/send"]

        def message_send(rec: Any) -> dict[str, Any]:
            self._scope = sorted(set(str((rec.body or {}).get("touser", "")).split("|")))
            try:
                return inner(rec)
            finally:
                self._scope = None

        self._routes["message/send"] = message_send

    def delivered(self, path: str | None = None) -> list[Any]:
        if path == "message/send" and self._scope is not None:
            seen: dict[int, Any] = {}
            for user in self._scope:
                for r in self.by_user.get(user, ()):
                    seen[id(r)] = r
            return sorted(seen.values(), key=lambda r: r.at)
        return super().delivered(path)

    def _answer(self, rec: Any, errcode: int, errmsg: str, extra: dict[str, Any] | None = None, *,
                http_status: int = 200) -> Any:
        response = super()._answer(rec, errcode, errmsg, extra, http_status=http_status)
        if rec.effect == "delivered":
            self.sent += 1
            at = time.monotonic()
            if rec.path == "message/send":
                for user in str((rec.body or {}).get("touser", "")).split("|"):
                    self.by_user[user].append(rec)
                    self.arrivals.setdefault(f"u:{user}", at)
            elif rec.path == "aibot/response":
                self.arrivals.setdefault(f"r:{rec.query.get('response_code', '')}", at)
        return response


class FakeThread:
    def __init__(self) -> None:
        self.fake = BenchFake()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-wecom", daemon=True)

    def __enter__(self) -> BenchFake:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ── the load ──


@dataclass
class Post:
    path: str            # /wecom/callback or /wecom/aibot
    query: str
    body: bytes
    reply: str = ""      # the arrivals key of its reply ("" = none expected by the bench)
    kind: str = ""


def build_mix(n: int, seed: int, tag: str, fake: BenchFake) -> list[Post]:
    """``n`` posts of the mix; ``tag`` keeps ids of different runs apart (one fake serves them all)."""
    rng = random.Random(seed)
    now = int(time.time())
    posts: list[Post] = []
    members = [f"wm{tag}{i:04d}" for i in range(400)]
    groups = [f"wr{tag}G{i:02d}" for i in range(40)]
    for i in range(n):
        if posts and rng.random() < 0.02:
            posts.append(posts[rng.randrange(len(posts))])  # WeCom retries a callback
            continue
        roll = rng.random()
        msg_id = 10**15 + i
        if roll < 0.30 or roll < 0.40:  # 1:1: a question, or a command
            kind = "question" if roll < 0.30 else "command"
            user = f"u{tag}{i}"   # one message per user: the reply is found by its touser
            text = rng.choice(QUESTIONS if kind == "question" else COMMANDS)
            query, body = APP.app_post(text_xml(text, sender=user, msg_id=msg_id, corp_id=CORP, create_time=now),
                                       corp_id=CORP, nonce=str(i))
            posts.append(Post("/wecom/callback", query, body, f"u:{user}", kind))
            continue
        chat = rng.choice(groups)
        if roll < 0.65:
            kind, sender, text = "chatter", rng.choice(members), rng.choice(CHATTER)
        elif roll < 0.75:
            kind, sender, text = "checkin", rng.choice(members), rng.choice(CHECKINS)
        elif roll < 0.85:
            kind, sender, text = "group_question", rng.choice(members), rng.choice(QUESTIONS)
        else:
            kind, sender = "staff", rng.choice(STAFF)
            text = rng.choice(STAFF_HITS) if rng.random() < 0.03 else rng.choice(STAFF_TEXT)
        code = f"{tag}-{i}"
        msg = {"msgid": f"ab{tag}-{i}", "aibotid": "BOT", "chatid": chat, "chattype": "group",
               "from": {"userid": sender}, "response_url": fake.response_url(code), "msgtype": "text",
               "text": {"content": text}}
        query, body = AIBOT.aibot_post(msg, nonce=str(i))
        posts.append(Post("/wecom/aibot", query, body, f"r:{code}", kind))
    return posts


@dataclass
class Sent:
    started: dict[str, float] = field(default_factory=dict)   # reply key -> POST start (first time)
    acked: int = 0
    errors: int = 0
    first: float = 0.0
    last_ack: float = 0.0


async def post_all(ports: list[int], posts: list[Post], concurrency: int, rate: float | None) -> Sent:
    import aiohttp

    sent = Sent()
    conn = aiohttp.TCPConnector(limit=concurrency * len(ports))
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int, p: Post) -> None:
            port = ports[i % len(ports)]
            t0 = time.monotonic()
            if p.reply:
                sent.started.setdefault(p.reply, t0)
            try:
                async with session.post(f"http://127.0.0.1:{port}{p.path}?{p.query}", data=p.body) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                sent.acked += 1
            else:
                sent.errors += 1
            sent.last_ack = time.monotonic()

        sent.first = time.monotonic()
        if rate is None:
            it = iter(enumerate(posts))

            async def worker() -> None:
                for i, p in it:
                    await one(i, p)

            await asyncio.gather(*(worker() for _ in range(concurrency * len(ports))))
        else:
            tasks = []
            for i, p in enumerate(posts):
                delay = sent.first + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i, p)))
            await asyncio.gather(*tasks)
    return sent


METRIC = re.compile(r'^(siyu_processed_total|siyu_outbox_rows)\{(\w+)="(\w+)"\} ([0-9.e+]+)$', re.M)


def scrape(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {(m[1], m[3]): float(m[4]) for m in METRIC.finditer(text)}


async def wait_processed(ports: list[int], unique: int, within: float) -> float:
    """Wait until every event is processed and nothing is left to send; return the monotonic time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        stats = [await asyncio.to_thread(scrape, p) for p in ports]
        done = sum(s.get(("siyu_processed_total", st), 0) for s in stats for st in ("done", "failed"))
        waiting = sum(stats[0].get(("siyu_outbox_rows", st), 0) for st in ("pending", "sending"))
        if done >= unique and waiting == 0:
            return time.monotonic()
        await asyncio.sleep(0.25)
    raise RuntimeError(f"not processed within {within:.0f} s")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


# ── the server ──


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


COUNT_STATEMENTS = """
import atexit, collections, json, re, runpy, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
counts = collections.Counter()
@event.listens_for(Engine, "before_cursor_execute")
def _count(conn, cursor, statement, *args):
    counts[re.sub(r"\\s+", " ", statement)[:90]] += 1
atexit.register(lambda: open({out!r}, "w").write(json.dumps(counts.most_common(), ensure_ascii=False, indent=0)))
sys.argv = ["bot", *sys.argv[1:]]
runpy.run_module("bot", run_name="__main__")
"""


class Serve:
    def __init__(self, db: str, fake_url: str, tmp: Path, name: str, extra: dict[str, str],
                 port: int | None = None) -> None:
        self.port = port or free_port()  # a restarted replica keeps its port (bench/chaos.py)
        self.log = tmp / f"serve-{name}-{self.port}.log"
        env = {**os.environ, **TEST_ENV, "PYTHONPATH": str(REPO), "SIYU_DATABASE__URL": db,
               "SIYU_SERVER__PORT": str(self.port), "SIYU_BOT__SENDER": "wecom", "SIYU_WECOM__API_BASE": fake_url,
               "SIYU_BOT__ALLOW_EXAMPLE_CONTENT": "true",  # the example brand, sent to the fake WeCom
               "SIYU_BOT__STAFF_IDS": json.dumps(STAFF), "SIYU_MODERATION__REVIEWERS": json.dumps([REVIEWER]),
               "SIYU_MODERATION__ROBOT": "", "SIYU_AIBOT__REPLY_WAIT_MS": "0", "SIYU_LOG__LEVEL": "WARNING",
               "SIYU_BOT__INSTANCE_ID": f"bench-{name}", **extra}
        profile = ["-m", "cProfile", "-o", f"{os.environ['SIYU_E2E_PROFILE']}.{name}"] \
            if os.environ.get("SIYU_E2E_PROFILE") else []  # a profile of each serve process, for digging
        serve = ["-m", "bot", "serve", "--config", str(REPO / "config.example.toml")]
        if os.environ.get("SIYU_E2E_STATEMENTS"):  # count each process's SQL statements by their opening
            serve = ["-c", COUNT_STATEMENTS.format(out=f"{os.environ['SIYU_E2E_STATEMENTS']}.{name}"), *serve[2:]]
        cmd = [sys.executable, *profile, *serve]
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("serve did not start")

    def cpu_s(self) -> float:
        """CPU seconds the process has used (its threads included): what an event costs, whatever the load."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ── runs ──


async def run_one(label: str, db: str, replicas: int, args: argparse.Namespace, fake: BenchFake, tmp: Path,
                  *, rate: float | None) -> dict[str, Any]:
    tag = f"{label}{'r' if rate else 'b'}{replicas}".replace("-", "")
    n = int(rate * args.seconds) if rate else args.n
    posts = build_mix(n, seed=7, tag=tag, fake=fake)
    unique = len({(p.path, p.query) for p in posts})
    servers = [Serve(db, fake.url, tmp, f"{tag}-{k}", {}) for k in range(replicas)]
    try:
        for s in servers:
            s.wait_ready()
        ports = [s.port for s in servers]
        base = [await asyncio.to_thread(scrape, p) for p in ports]
        already = sum(b.get(("siyu_processed_total", st), 0) for b in base for st in ("done", "failed"))
        sent = await post_all(ports, posts, args.concurrency, rate)
        done_at = await wait_processed(ports, unique + int(already), args.timeout)
        cpu_s = sum(s.cpu_s() for s in servers)
    finally:
        for s in servers:
            s.stop()
    lat = {"1:1": [], "group": []}
    for key, t0 in sent.started.items():
        at = fake.arrivals.get(key)
        if at is not None:
            lat["1:1" if key.startswith("u:") else "group"].append(at - t0)
    every = lat["1:1"] + lat["group"]
    ack_s = sent.last_ack - sent.first
    proc_s = done_at - sent.first
    out: dict[str, Any] = {
        "run": label, "replicas": replicas, "mode": f"sustained {rate:.0f}/s" if rate else "burst",
        "posts": len(posts), "events": unique, "errors": sent.errors,
        "acknowledged_per_s": round(len(posts) / ack_s, 1), "processed_per_s": round(unique / proc_s, 1),
    }
    out["ratio"] = round(out["processed_per_s"] / out["acknowledged_per_s"], 3)
    out["serve_cpu_ms_per_event"] = round(cpu_s * 1000 / unique, 2)  # intake and processing together
    for name, values in (("all", every), *lat.items()):
        out[f"{name}_replies"] = len(values)
        out[f"{name}_p50_ms"] = round(pct(values, 0.5) * 1000, 1)
        out[f"{name}_p99_ms"] = round(pct(values, 0.99) * 1000, 1)
    return out


def start_pg(tmp: Path) -> str:
    """A PostgreSQL of scripts/pg-test-server under ``tmp`` (opened to the postgres user it runs as)."""
    tmp.chmod(0o755)
    out = subprocess.run([str(REPO / "scripts" / "pg-test-server"), "start", str(tmp / "pg")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


async def fresh_pg(url: str, name: str) -> str:
    from bot.testing.database import fresh_pg_database

    os.environ["SIYU_TEST_DATABASE_URL"] = url
    return f"{url.rpartition('/')[0]}/{await fresh_pg_database(name)}"


async def run(args: argparse.Namespace) -> None:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="siyu-e2e-") as tmpdir, FakeThread() as fake:
        tmp = Path(tmpdir)
        plans: list[tuple[str, str, int, float | None]] = []
        if not args.pg_only:
            plans += [("sqlite", f"sqlite:///{tmp}/burst.db", 1, None)]
            if args.rate:
                plans.append(("sqlite", f"sqlite:///{tmp}/rate.db", 1, args.rate))
        pg = args.pg
        started_pg = False
        if pg == "start":
            pg, started_pg = start_pg(tmp), True
        if pg:
            plans += [("postgresql", "", 1, None), ("postgresql", "", 2, None)]
            if args.rate:
                plans.append(("postgresql", "", 1, args.rate))
        try:
            for label, db, replicas, rate in plans:
                if label == "postgresql":
                    db = await fresh_pg(pg, f"e2e{replicas}{int(rate or 0)}")
                result = await run_one(label, db, replicas, args, fake, tmp, rate=rate)
                results.append(result)
                print(json.dumps(result, ensure_ascii=False), flush=True)
        finally:
            if started_pg:
                subprocess.run(  # noqa: ASYNC221 - after the measurements
                    [str(REPO / "scripts" / "pg-test-server"), "stop", str(tmp / "pg")], check=False)
    print()
    print(f"{'database':11s} {'replicas':>8s} {'mode':>16s} {'ack/s':>8s} {'proc/s':>8s} {'ratio':>6s} "
          f"{'p50 ms':>7s} {'p99 ms':>7s} {'1:1 p99':>8s} {'group p99':>9s} {'cpu ms/event':>12s}")
    for r in results:
        print(f"{r['run']:11s} {r['replicas']:8d} {r['mode']:>16s} {r['acknowledged_per_s']:8.0f} "
              f"{r['processed_per_s']:8.0f} {r['ratio']:6.2f} {r['all_p50_ms']:7.0f} {r['all_p99_ms']:7.0f} "
              f"{r['1:1_p99_ms']:8.0f} {r['group_p99_ms']:9.0f} {r['serve_cpu_ms_per_event']:12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="posts in the burst run (default 20000)")
    ap.add_argument("--concurrency", type=int, default=32, help="posts in flight per replica (default 32)")
    ap.add_argument("--rate", type=float, default=200.0, help="events/s of the sustained run (0 = skip; default 200)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the sustained run (default 30)")
    ap.add_argument("--pg", default="", help="PostgreSQL URL (a database per run is created next to it), or "
                                               "'start' for scripts/pg-test-server; default: SQLite only")
    ap.add_argument("--pg-only", action="store_true", help="skip the SQLite runs")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up waiting for processing after this")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
