"""Moderation throughput: raw Aho-Corasick, the full engine and a naive loop, in one run.

    python bench/moderation.py [--mb 5] [--terms 10000] [--seed 7] [--naive-sample 1500] [--slice 512] [--no-gc-freeze]

A 10,000-term lexicon (the starter lexicons plus terms built from dictionary words)
over generated Chinese chat messages (≥ 5 MB of UTF-8, a few percent with a term,
some written with evasions). Prints MB/s and µs per message for

- raw: ``ahocorasick_rs`` over the terms as written, on the raw text of each message (no normalisation);
- engine: ``Matcher.scan_many`` (normalisation, variants, pinyin, detectors, allow terms, grading —
  per message what ``Matcher.scan`` does, with the coding and the automaton pass done per batch;
  the archive import scans this way), and ``Matcher.scan`` one message at a time (the live path);
  the bench checks that both give the same hits for every message;
- naive: ``for w in words: if w in text`` (on a sample of messages: it is slow);
- pyahocorasick, when that package is importable (it is not a dependency).

Raw and engine run interleaved, slice by slice (``--slice`` messages each), so a change in the
load of a shared machine falls on both; each is timed by the wall clock and by the CPU time of
this process (on a busy machine the wall clock also counts the other processes that ran in
between; the CPU time does not). Figures are ratios within this run; absolute times depend on
the machine. Each message is scanned once by each scan (a second run over the same strings
would find their UTF-8 form cached by the raw scan, and the engine's memo warm).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ahocorasick_rs

from bot.cli import freeze_startup_objects
from moderation.lexicon import Lexicon, Term, lexicon_from_dir
from moderation.matcher import Matcher
from moderation.normalize import fold_text
from moderation.words import tokenizer

PUNCT = "，。！？、~ "
EVASIONS = [
    lambda t: " ".join(t),
    lambda t: ".".join(t),
    lambda t: t[0] + t[0] + t[1:],
    lambda t: t.replace("微信", "vx"),
    lambda t: t.replace("微信", "薇信"),
]


def dictionary_words(rng: random.Random) -> list[str]:
    freq = tokenizer().FREQ
    words = [w for w, f in freq.items() if f >= 50 and 2 <= len(w) <= 3 and all("\u4e00" <= c <= "\u9fff" for c in w)]
    words.sort(key=lambda w: (-freq[w], w))
    common, rest = words[:4000], words[4000:]
    rng.shuffle(rest)
    return common + rest


def build_lexicon(n_terms: int, words: list[str], rng: random.Random) -> Lexicon:
    base, _ = lexicon_from_dir(Path(__file__).resolve().parent.parent / "moderation" / "lexicons")
    terms = list(base.terms)
    seen = {t.form for t in terms}
    cats = ["私下联系", "私下交易/返现", "广告法/夸大宣传", "辱骂", "竞品", "广告", "垃圾链接"]
    rare = words[4000:]  # messages are made of the 4,000 most frequent words; terms of the others
    i = 0
    while len(terms) < n_terms:
        w = rare[i % len(rare)] + rare[(i * 7 + 3) % len(rare)][: rng.randint(1, 2)]
        i += 1
        form = fold_text(w)
        if form in seen or len(form) < 3:
            continue
        seen.add(form)
        terms.append(Term(w, form, cats[i % len(cats)], rng.choice(["reject", "review", "info"]), "anywhere", "gen"))
    return Lexicon(terms=terms, allow=list(base.allow), categories={c: "" for c in cats}, version="bench")


def build_messages(mb: float, words: list[str], lexicon: Lexicon, rng: random.Random) -> list[str]:
    msgs: list[str] = []
    size = 0
    common = words[:4000]
    starter = [t.text for t in lexicon.terms if t.source != "gen"]
    while size < mb * 1_000_000:
        parts = []
        for _ in range(rng.randint(3, 18)):
            parts.append(rng.choice(common))
            if rng.random() < 0.25:
                parts.append(rng.choice(PUNCT))
        r = rng.random()
        if r < 0.03:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(starter))
        elif r < 0.05:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(EVASIONS)(rng.choice(starter)))
        elif r < 0.06:
            parts.append(f" 电话 1{rng.randint(3, 9)}{rng.randint(0, 999999999):09d}")
        m = "".join(parts)
        msgs.append(m)
        size += len(m.encode())
    return msgs


class Timer:
    """Wall-clock and CPU time spent in one scan, added up over the slices it ran on."""

    def __init__(self, label: str) -> None:
        self.label, self.wall, self.cpu, self.messages, self.bytes, self.hits = label, 0.0, 0.0, 0, 0, 0

    def run(self, fn, msgs: list[str], size: int):
        w, c = time.perf_counter(), time.process_time()
        out = fn(msgs)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c
        self.messages += len(msgs)
        self.bytes += size
        self.hits += sum(len(h) for h in out)
        return out

    def mbps(self, cpu: bool = False) -> float:
        return self.bytes / 1e6 / (self.cpu if cpu else self.wall)

    def show(self) -> None:
        print(f"  {self.label:<26} {self.mbps():8.1f} MB/s {self.wall / self.messages * 1e6:9.2f} µs/msg"
              f"   cpu {self.mbps(cpu=True):7.1f} MB/s   ({self.messages:,} msgs, {self.bytes / 1e6:.2f} MB, "
              f"{self.hits:,} hits)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=5.0, help="megabytes of messages to generate (default 5)")
    ap.add_argument("--terms", type=int, default=10_000, help="lexicon size (default 10000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--naive-sample", type=int, default=1500, help="messages for the naive loop (default 1500)")
    ap.add_argument("--slice", type=int, default=512, help="messages per interleaved slice (default 512)")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="leave the tables loaded at start in the garbage collector's walks (``serve`` freezes "
                         "them once the bot has started; this measures a process that does not)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    words = dictionary_words(rng)
    lexicon = build_lexicon(args.terms, words, rng)
    msgs = build_messages(args.mb, words, lexicon, rng)
    t0 = time.perf_counter()
    matcher = Matcher(lexicon)
    build_s = time.perf_counter() - t0
    raw_terms = [t.text for t in lexicon.terms]
    raw = ahocorasick_rs.AhoCorasick(raw_terms)
    print(f"lexicon: {lexicon.size:,} terms → {matcher.pattern_count:,} patterns (variants included), "
          f"engine built in {build_s:.2f} s")
    warm = msgs[:2000]  # the per-character tables, jieba and the memo warmed once, as a running bot has them
    matcher.scan_many(warm)
    for m in warm:
        matcher.scan(m)
    if not args.no_gc_freeze:
        freeze_startup_objects()  # as ``serve`` does once the bot has started
    print(f"garbage collector: {'not frozen' if args.no_gc_freeze else f'{gc.get_freeze_count():,} objects frozen'}")
    timers = [Timer("raw Aho-Corasick"), Timer("full engine (batch)"), Timer("full engine (one by one)")]
    raw_t, batch_t, one_t = timers
    with_hits = differ = 0
    for lo in range(0, len(msgs), args.slice):
        part = msgs[lo:lo + args.slice]
        size = sum(len(m.encode()) for m in part)
        raw_t.run(lambda ms: [raw.find_matches_as_indexes(m) for m in ms], part, size)
        batch_hits = batch_t.run(matcher.scan_many, part, size)
        one_hits = one_t.run(lambda ms: [matcher.scan(m) for m in ms], part, size)
        # compared slice by slice and let go, as the archive import does with a chunk: results kept
        # for the whole run would make the cyclic garbage collector walk them all (and every table
        # of the process) while some scan is being timed
        differ += sum(1 for a, b in zip(batch_hits, one_hits, strict=True) if a != b)
        with_hits += sum(1 for h in batch_hits if h)
    print(f"messages: {len(msgs):,}, {raw_t.bytes / 1e6:.2f} MB; {with_hits:,} ({with_hits / len(msgs):.1%}) "
          f"with a hit")
    print(f"results (interleaved slices of {args.slice} messages):")
    for t in timers:
        t.show()
    sample = msgs[: args.naive_sample]
    naive_t = Timer("naive `w in text`")
    naive_t.run(lambda ms: [[w for w in raw_terms if w in m] for m in ms], sample, sum(len(m.encode()) for m in sample))
    naive_t.show()
    try:
        import ahocorasick  # pyahocorasick, optional

        auto = ahocorasick.Automaton()
        for i, w in enumerate(raw_terms):
            auto.add_word(w, i)
        auto.make_automaton()
        py_t = Timer("pyahocorasick (raw)")
        py_t.run(lambda ms: [list(auto.iter(m)) for m in ms], msgs, raw_t.bytes)
        py_t.show()
        print(f"  ahocorasick-rs / pyahocorasick: {raw_t.mbps() / py_t.mbps():.2f}×")
    except ImportError:
        print("  pyahocorasick: not installed, skipped")
    same = differ == 0
    print(f"batch and one-by-one hits: {'the same' if same else f'DIFFERENT for {differ:,}'} "
          f"of all {len(msgs):,} messages")
    eng_mbps = batch_t.mbps()
    print(f"by CPU time: engine (batch) / raw {batch_t.mbps(cpu=True) / raw_t.mbps(cpu=True):.2f}×, "
          f"one by one / raw {one_t.mbps(cpu=True) / raw_t.mbps(cpu=True):.2f}×; "
          f"by the wall clock: one by one / raw {one_t.mbps() / raw_t.mbps():.2f}×")
    print(f"engine / raw: {eng_mbps / raw_t.mbps():.2f}× (target ≥ 0.30); engine {eng_mbps:.1f} MB/s (target ≥ 20); "
          f"engine / naive: {eng_mbps / naive_t.mbps():.0f}×")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
