"""Knowledge-base benchmark: accuracy on the shipped evaluation set, latency on a generated 5,000-entry base.

    python bench/kb.py [--entries 5000] [--queries 2000] [--json]
    python bench/kb.py --dev [--failures]     # the dev sets only (never reads the held-out questions)
    python bench/kb.py --dev --show-wrong     # only the dev questions answered outright with a wrong entry
    python bench/kb.py --tune                 # choose the weights on the dev sets (two-fold cross-validation)
    python bench/kb.py --check-dev            # dev questions that copy or nearly copy a held-out one
    python bench/kb.py --try-phrasings FILE   # would these stored phrasings help? (two-fold, dev sets)
    python bench/kb.py --dev --chatter-failures   # the chatter lines the bot would reply to
    python bench/kb.py --set min_support=0.2 [--set …]   # the same measures with other matcher weights

Every run also prints, for the example base, how often the bot would reply to everyday chatter
(knowledge_base/eval/chatter.yaml: answers + "did you mean" + "can't answer", as in a 1:1 chat;
target ≤ 1%) and how often it answers a question of the question sets with the wrong entry
(an outright answer that is not the labelled one, or any answer to a question labelled none;
target ≤ 2%), split into answers to questions nothing should answer (off-topic) and answers with
the wrong entry.

Accuracy (hit@1) on knowledge_base/eval/questions.yaml (held out: the matcher's
weights were chosen on the dev sets eval/dev.yaml and eval/dev_voices.yaml) for
three matchers over the example base:

- exact:    the question, normalised (full-width, traditional, punctuation), equals a stored question;
- contains: classic keyword auto-reply — an entry's keyword (or question) occurs in the message;
- full:     the knowledge base's matcher (exact, triggers, then meaning with threshold and suggestions).

A labelled question scores when that entry answers outright; a question labelled none scores when
nothing answers; a question labelled with a list (it asks two things) scores when any of them
answers. Latency: p50/p99 per question over a generated base, for the full matcher and, in
the same run, an exact-dict lookup (normalise + dict.get), with the ratio between them, and the
full matcher's CPU time per question (what it costs without waiting for a core).

``--dev``, ``--tune``, ``--check-dev`` and ``--try-phrasings`` are for working on the matcher: they print dev questions
only, so the held-out set stays unseen until the one measurement of a round.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bot.knowledge.base import build_matcher
from bot.knowledge.entry import Entry, Source, Where
from bot.knowledge.files import KnowledgeFiles
from bot.knowledge.matcher import Matcher, MatchSettings
from bot.knowledge.text import Synonyms, compact

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO / "knowledge_base" / "eval"
HELD_OUT = "questions"
DEV_SETS = ("dev", "dev_voices")
CHATTER = "chatter"

Expect = str | tuple[str, ...] | None
Item = tuple[str, Expect, Where]


# ── accuracy ──

def load_eval(path: Path) -> list[Item]:
    items: list[Item] = []
    for g in yaml.safe_load(path.read_text(encoding="utf-8")):
        raw = g["expect"]
        expect: Expect = tuple(raw) if isinstance(raw, list) else (None if raw == "none" else raw)
        where = Where(chat=g.get("chat", "single"), tier=g.get("tier", ""))
        items += [(q, expect, where) for q in g["questions"]]
    return items


def load_chatter(path: Path) -> tuple[list[tuple[str, str]], list[Item]]:
    """The chatter file: (line, kind) for every line that must get no reply, and the questions that look
    like chatter but ask something (labelled as in the dev sets)."""
    lines: list[tuple[str, str]] = []
    questions: list[Item] = []
    for g in yaml.safe_load(path.read_text(encoding="utf-8")):
        if "lines" in g:
            lines += [(str(t), g["kind"]) for t in g["lines"]]
        else:
            questions += [(q, g["expect"], Where(chat="single")) for q in g["questions"]]
    return lines, questions


def chatter_replies(m: Matcher, lines: list[tuple[str, str]]) -> dict[str, Any]:
    """What the bot would send, 1:1, for each chatter line: an answer, suggestions, or "can't answer" —
    anything but silence (mode ``chatter``) is a reply."""
    counts = {"answers": 0, "suggestions": 0, "cannot_answer": 0}
    replied: list[str] = []
    for text, kind in lines:
        r = m.match(text, Where(chat="single"))
        if r.mode == "chatter":
            continue
        counts["answers" if r.entry else ("suggestions" if r.suggestions else "cannot_answer")] += 1
        replied.append(f"{kind}: {text}  -> {r.entry.id if r.entry else r.mode} {r.score:.2f}")
    total = sum(counts.values())
    return {"lines": len(lines), **counts, "replied": total, "rate": round(total / max(1, len(lines)), 4),
            "failures": replied}


def right(got: str | None, expect: Expect) -> bool:
    return got in expect if isinstance(expect, tuple) else got == expect


def expected_ids(expect: Expect) -> tuple[str, ...]:
    if expect is None:
        return ()
    return expect if isinstance(expect, tuple) else (expect,)


def near_copy(a: str, b: str) -> float:
    """How close two questions are in characters (0–1): the larger of the Dice overlap of their
    characters and character pairs and difflib's ratio. 0.7 or more counts as a near copy."""
    a, b = compact(a), compact(b)
    if not a or not b:
        return 0.0
    fa = set(a) | {a[i:i + 2] for i in range(len(a) - 1)}
    fb = set(b) | {b[i:i + 2] for i in range(len(b) - 1)}
    dice = 2 * len(fa & fb) / (len(fa) + len(fb))
    return max(dice, difflib.SequenceMatcher(None, a, b).ratio())


def near_copies(questions: list[str], others: list[str], limit: float = 0.7) -> list[tuple[str, float]]:
    """The ``questions`` that copy or nearly copy one of ``others`` (only ``questions`` are named)."""
    out = []
    for q in questions:
        best = max((near_copy(q, o) for o in others), default=0.0)
        if best >= limit:
            out.append((q, round(best, 2)))
    return out


def exact_baseline(entries: list[Entry]) -> Callable[[str, Where], str | None]:
    table: dict[str, list[Entry]] = {}
    for e in entries:
        for q in (*e.questions, *(e.keywords if e.match == "exact" else ())):
            table.setdefault(compact(q), []).append(e)

    def answer(text: str, where: Where) -> str | None:
        found = [e for e in table.get(compact(text), []) if e.scope.allows(where)]
        return max(found, key=lambda e: e.priority).id if found else None

    return answer


def contains_baseline(entries: list[Entry]) -> Callable[[str, Where], str | None]:
    import re

    from bot.textnorm import fold

    triggers = []
    for e in entries:
        if e.match == "regex":
            triggers += [(e, re.compile(k, re.I), len(k)) for k in e.keywords]
        else:
            for k in e.keywords or e.questions:
                triggers.append((e, compact(k), len(compact(k))))

    def answer(text: str, where: Where) -> str | None:
        key, folded = compact(text), fold(text)
        hits = [(e.priority, n, e.id) for e, k, n in triggers
                if e.scope.allows(where) and (k.search(folded) if hasattr(k, "search") else k and k in key)]
        return max(hits)[2] if hits else None

    return answer


def accuracy(answer: Callable[[str, Where], str | None], items: list[Item]) -> float:
    return sum(right(answer(q, w), expect) for q, expect, w in items) / len(items)


def full(m: Matcher) -> Callable[[str, Where], str | None]:
    def answer(text: str, where: Where) -> str | None:
        r = m.match(text, where)
        return r.entry.id if r.entry else None

    return answer


# ── a generated base ──

PRODUCTS_A = ["白毫", "寿眉", "牡丹", "银针", "岩韵", "肉桂", "水仙", "凤凰", "茉莉", "金骏", "正山", "古树",
              "高山", "云雾", "碧螺", "龙井", "雪芽", "蜜香", "兰香", "桂花"]
PRODUCTS_B = ["茶饼", "散茶", "礼盒", "小方片", "罐装"]
YEARS = ["2018", "2019", "2020", "2021", "2022", "2023", "2024", "2025"]
TOPICS: list[tuple[str, list[str], list[str], str]] = [
    ("refund", ["{p}怎么退款", "{p}买错了能退吗", "{p}退货流程"], ["{p}退款"], "{p}收到 7 天内未拆封可退。"),
    ("ship", ["{p}多久发货", "{p}什么时候寄出", "{p}几天能发"], ["{p}发货"], "{p}付款后 48 小时内发货。"),
    ("brew", ["{p}怎么泡", "{p}用多少度的水", "{p}冲泡方法"], ["{p}冲泡"], "{p}用 95 度水，5 克配 110 毫升。"),
    ("store", ["{p}怎么保存", "{p}要放冰箱吗", "{p}受潮了怎么办"], ["{p}保存"], "{p}常温避光密封保存。"),
    ("shelf", ["{p}保质期多久", "{p}过期还能喝吗", "{p}生产日期在哪"], ["{p}保质期"], "{p}保质期 36 个月。"),
    ("price", ["{p}多少钱", "{p}价格是多少", "{p}有优惠吗"], ["{p}价格"], "{p}官方价 198 元。"),
    ("gift", ["{p}适合送礼吗", "{p}有礼盒装吗", "{p}能写贺卡吗"], ["{p}送礼"], "{p}可以加礼盒和贺卡。"),
    ("taste", ["{p}是什么味道", "{p}口感怎么样", "{p}苦不苦"], ["{p}口感"], "{p}清甜带花香。"),
    ("origin", ["{p}产地是哪里", "{p}是哪里的茶", "{p}茶园在哪"], ["{p}产地"], "{p}产自福鼎太姥山。"),
    ("stock", ["{p}还有货吗", "{p}什么时候补货", "{p}缺货了吗"], ["{p}库存"], "{p}现货充足。"),
]


def generated(n: int, seed: int = 7) -> tuple[list[Entry], list[str]]:
    rnd = random.Random(seed)
    names = [f"{y}{a}{b}" for y in YEARS for a in PRODUCTS_A for b in PRODUCTS_B]
    rnd.shuffle(names)
    entries, queries = [], []
    per_topic = max(1, n // len(TOPICS))
    for t, (topic, questions, keywords, answer) in enumerate(TOPICS):
        for p in names[:per_topic]:
            eid = f"{topic}-{len(entries)}"
            entries.append(Entry(id=eid, answer=answer.format(p=p), questions=tuple(q.format(p=p) for q in questions),
                                 keywords=tuple(k.format(p=p) for k in keywords), source=Source("file", "gen.yaml")))
        for p in rnd.sample(names[:per_topic], min(per_topic, 60)):
            q = rnd.choice(questions).format(p=p)
            queries.append(rnd.choice(["请问", "", "你好，", "想问下"]) + q.replace("怎么", "该怎么")
                           + rnd.choice(["", "呀", "？", "啊"]))
        del t
    return entries, queries


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency(m: Matcher, questions: list[str], rounds: int = 3) -> tuple[list[float], list[float], list[float]]:
    """Wall-clock milliseconds per question (full matcher, exact dict) and the full matcher's CPU time.

    On a shared machine the wall-clock p99 mostly measures waiting for a core; the thread's CPU
    time (``time.thread_time``) is the matcher's own work.
    """
    table = {compact(q): e.id for e in m.entries for q in e.questions}
    full_t: list[float] = []
    dict_t: list[float] = []
    cpu_t: list[float] = []
    clock, cpu = time.perf_counter, time.thread_time
    for _ in range(rounds):
        for q in questions:
            c0 = cpu()
            t0 = clock()
            m.match(q)
            t1 = clock()
            c1 = cpu()
            table.get(compact(q))
            t2 = clock()
            full_t.append((t1 - t0) * 1000)
            dict_t.append((t2 - t1) * 1000)
            cpu_t.append((c1 - c0) * 1000)
    return full_t, dict_t, cpu_t


def evaluate(m: Matcher, entries: list[Entry], items: list[Item]) -> dict[str, Any]:
    """hit@1 of the three matchers, how often the right entry was only suggested, and its rank."""
    out: dict[str, Any] = {
        "questions": len(items),
        "unanswerable": sum(1 for _, e, _ in items if e is None),
        "exact": round(accuracy(exact_baseline(entries), items), 3),
        "contains": round(accuracy(contains_baseline(entries), items), 3),
    }
    answered = suggested = first = top3 = answerable = wrong = off_topic = 0
    for q, e, w in items:
        r = m.match(q, w)
        answered += right(r.entry.id if r.entry else None, e)
        wrong += r.entry is not None and not right(r.entry.id, e)
        off_topic += r.entry is not None and e is None
        ids = expected_ids(e)
        if not ids:
            continue
        answerable += 1
        suggested += not r.entry and any(s.entry.id in ids for s in r.suggestions)
        ranked = [c.entry.id for c in r.candidates[:3]]
        first += bool(ranked) and ranked[0] in ids
        top3 += any(i in ids for i in ranked)
    out["full"] = round(answered / len(items), 3)
    out["wrong"] = round(wrong / len(items), 3)
    out["wrong_count"], out["off_topic_answered"] = wrong, off_topic
    out["full_in_suggestions"] = round(suggested / len(items), 3)
    out["rank1"] = round(first / max(1, answerable), 3)
    out["rank3"] = round(top3 / max(1, answerable), 3)
    return out


def failures(m: Matcher, name: str, items: list[Item], wrong_only: bool = False) -> list[str]:
    """A dev set's misses, one line each (never for the held-out set); ``wrong_only``: only the questions
    answered outright with a wrong entry (not those left to suggestions or "can't answer")."""
    assert name != HELD_OUT, "the held-out set's failures are not looked at"
    lines = []
    for q, e, w in items:
        r = m.match(q, w)
        got = r.entry.id if r.entry else None
        if not right(got, e) and (got is not None or not wrong_only):
            cands = ", ".join(f"{c.entry.id} {c.score:.2f}" for c in r.candidates[:3])
            lines.append(f"{name}: {q}  want {e or 'none'}  got {got or r.mode}  [{cands}]")
    return lines


# The weights --tune searches, and the values it tries for each.
GRID: dict[str, tuple[float, ...]] = {
    "threshold": (0.2, 0.22, 0.25, 0.28, 0.3, 0.33),
    "margin": (0.0, 0.01, 0.02, 0.04),
    "ambiguity_margin": (0.05, 0.1, 0.15, 0.2),
    "char_weight": (0.2, 0.3, 0.4, 0.5, 0.6),
    "query_weight": (0.2, 0.3, 0.4, 0.5, 0.6),
    "entry_weight": (0.0, 0.05, 0.1, 0.2),
    "answer_weight": (0.1, 0.2, 0.3, 0.4),
    "related_weight": (0.5, 0.7, 0.85, 1.0),
    "general_power": (0.5, 1.0, 1.5, 2.0, 2.5),
    "intent_weight": (0.0, 0.03, 0.06, 0.09, 0.12),
    "keyword_bonus": (0.0, 0.03, 0.05, 0.1, 0.15),
    "unknown_weight": (0.3, 0.5, 0.7, 1.0),
    "context_weight": (0.1, 0.25, 0.5, 0.75, 1.0),
    "denied_weight": (0.0, 0.1, 0.2, 0.4, 1.0),
    "min_support": (0.0, 0.1, 0.15, 0.2, 0.3),
}


def settings_from(pairs: list[str]) -> MatchSettings:
    """MatchSettings with ``NAME=VALUE`` overrides (``--set``); an unknown name or a bad value stops the bench."""
    fields = {f.name: f for f in dataclasses.fields(MatchSettings)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        name = name.strip()
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            raise SystemExit(f"--set {pair}: no matcher setting {name!r}"
                             + (f" (did you mean {close[0]}?)" if close else ""))
        kind = type(getattr(MatchSettings(), name))
        try:
            changes[name] = (raw.strip().lower() in ("1", "true", "yes")) if kind is bool else kind(raw)
        except ValueError:
            raise SystemExit(f"--set {pair}: {raw!r} is not a {kind.__name__}") from None
    return dataclasses.replace(MatchSettings(), **changes)


def tune(files: KnowledgeFiles, items: list[Item], rounds: int = 2) -> None:
    """Coordinate search of GRID on the dev sets' hit@1, checked by two-fold cross-validation:
    weights chosen on one half of the dev questions are measured on the other half."""
    analyzer = build_matcher(files.entries, files.synonyms, files.stopwords, MatchSettings()).analyzer

    def score(s: MatchSettings, subset: list[Item]) -> float:
        m = build_matcher(files.entries, files.synonyms, files.stopwords, s, analyzer)
        return accuracy(full(m), subset)

    def search(subset: list[Item], start: MatchSettings) -> tuple[MatchSettings, float]:
        best, best_score = start, score(start, subset)
        for _ in range(rounds):
            improved = False
            for name, values in GRID.items():
                for v in values:
                    if getattr(best, name) == v:
                        continue
                    trial = dataclasses.replace(best, **{name: v})
                    got = score(trial, subset)
                    if got > best_score + 1e-9:
                        best, best_score, improved = trial, got, True
            if not improved:
                break
        return best, best_score

    def changed(s: MatchSettings) -> dict[str, float]:
        return {k: getattr(s, k) for k in GRID if getattr(s, k) != getattr(start, k)}

    start = MatchSettings()
    print(f"current weights: dev hit@1 {score(start, items):.3f}")
    order = list(range(len(items)))
    random.Random(1).shuffle(order)
    halves = [[items[i] for i in order[k::2]] for k in (0, 1)]
    for k in (0, 1):
        chosen, train = search(halves[k], start)
        test = score(chosen, halves[1 - k])
        print(f"fold {k + 1}: chosen on half {k + 1} ({train:.3f}), on the other half {test:.3f}"
              f" (current weights there: {score(start, halves[1 - k]):.3f})  {changed(chosen)}")
    chosen, got = search(items, start)
    print(f"chosen on all dev questions: {got:.3f}  {changed(chosen)}")


def try_phrasings(files: KnowledgeFiles, added: dict[str, list[str]], items: list[Item],
                  held_out: list[str]) -> list[dict[str, int]]:
    """Whether candidate stored phrasings (entry id → questions) would help, measured fairly.

    The dev questions are split in two halves (as ``--tune`` does). For each half, the candidates
    that copy or nearly copy one of its questions or a held-out question are dropped (the held-out
    questions are only compared, never printed), the rest are added to the base, and the half's hit@1
    is counted with and without them: the phrasings a base would gain, measured on questions they were
    not written to match.
    """
    unknown = set(added) - {e.id for e in files.entries}
    if unknown:
        raise SystemExit(f"no such entries: {', '.join(sorted(unknown))}")
    analyzer = build_matcher(files.entries, files.synonyms, files.stopwords, MatchSettings()).analyzer
    mine = sorted({q for qs in added.values() for q in qs})
    near_held = {q for q, _ in near_copies(mine, held_out)}

    def hits(extra: dict[str, list[str]], subset: list[Item]) -> int:
        entries = [dataclasses.replace(e, questions=tuple(dict.fromkeys((*e.questions, *extra.get(e.id, ())))))
                   for e in files.entries]
        answer = full(build_matcher(entries, files.synonyms, files.stopwords, MatchSettings(), analyzer))
        return sum(right(answer(q, w), expect) for q, expect, w in subset)

    order = list(range(len(items)))
    random.Random(1).shuffle(order)
    out = []
    for k in (0, 1):
        half = [items[i] for i in order[k::2]]
        near = near_held | {q for q, _ in near_copies(mine, [q for q, _, _ in half])}
        extra = {e: [q for q in qs if q not in near] for e, qs in added.items()}
        out.append({"questions": len(half), "without": hits({}, half), "with": hits(extra, half),
                    "added": sum(map(len, extra.values())), "dropped_as_copies": len(mine) - len(set(mine) - near)})
    return out


def report(out: dict[str, Any], sets: tuple[str, ...], changed: list[str]) -> None:
    """The bench's figures as text: hit@1 of each question set, chatter replies, wrong answers, latency."""
    lat = out["latency"]
    labels = {HELD_OUT: "held-out eval set", "dev": "dev set (used to choose the weights)",
              "dev_voices": "second dev set, other voices (used to choose the weights)",
              "dev_all": "both dev sets together",
              "chatter_questions": "questions that look like chatter (eval/chatter.yaml)"}
    for name in sets:
        r = out[name]
        print(f"hit@1 on the {labels.get(name, name)}: {r['questions']} questions ({r['unanswerable']} unanswerable)")
        print(f"  exact {r['exact']:.3f}   contains {r['contains']:.3f}   full {r['full']:.3f}"
              f"   (+{r['full_in_suggestions']:.3f} offered as a suggestion)")
        print(f"  full matcher, answerable questions: right entry ranked first {r['rank1']:.3f}, "
              f"in the top three {r['rank3']:.3f}; answered with a wrong entry {r['wrong']:.3f}")
        for line in r.get("failures", ()):
            print("   ", line)
    c = out["chatter"]
    print(f"replies to chatter (eval/chatter.yaml, 1:1): {c['replied']} of {c['lines']} lines = {c['rate']:.2%}"
          f"   (answers {c['answers']}, suggestions {c['suggestions']}, can't answer {c['cannot_answer']};"
          " target ≤ 1%)")
    for line in c.get("failures", ()):
        print("   ", line)
    w = out["wrong_answers"]
    print(f"wrong answers over the question sets above ({w['questions']} questions): {w['rate']:.2%}"
          f"   (target ≤ 2%; {w['wrong_entry']} with the wrong entry, {w['off_topic']} to questions nothing"
          " should answer)")
    if changed:
        print("  matcher settings changed: " + ", ".join(changed))
    print(f"latency over a generated base of {lat['entries']} entries (built in {lat['build_s']} s), "
          f"{lat['questions']} questions:")
    print(f"  full matcher  p50 {lat['full_p50_ms']:.3f} ms   p99 {lat['full_p99_ms']:.3f} ms")
    print(f"  exact dict    p50 {lat['dict_p50_ms']:.4f} ms   p99 {lat['dict_p99_ms']:.4f} ms")
    print(f"  full matcher, CPU time of the matching thread: p50 {lat['full_cpu_p50_ms']:.3f} ms   "
          f"p99 {lat['full_cpu_p99_ms']:.3f} ms")
    print(f"  ratio full/dict: p50 ×{lat['ratio_p50']}   p99 ×{lat['ratio_p99']}"
          f"   (generated questions answered: {lat['generated_answered']:.3f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=5000, help="size of the generated base (default 5000)")
    ap.add_argument("--queries", type=int, default=2000, help="questions timed per round (default 2000)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--dev", action="store_true", help="measure the dev sets only (the held-out set is not read)")
    ap.add_argument("--failures", action="store_true", help="with --dev: list every dev question the matcher misses")
    ap.add_argument("--show-wrong", action="store_true",
                    help="with --dev: list only the dev questions answered outright with a wrong entry")
    ap.add_argument("--chatter-failures", action="store_true",
                    help="list every chatter line the bot would reply to, and the chatter-like questions it misses")
    ap.add_argument("--tune", action="store_true", help="search the weights on the dev sets and print the choice")
    ap.add_argument("--check-dev", action="store_true",
                    help="list dev questions that copy or nearly copy a held-out or a stored question")
    ap.add_argument("--try-phrasings", metavar="FILE",
                    help="YAML mapping entry id → candidate questions: would adding them help? (two-fold, dev sets)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="measure with this matcher setting changed (bot.knowledge.matcher.MatchSettings; repeatable)")
    args = ap.parse_args()
    out: dict[str, Any] = {}

    files = KnowledgeFiles(REPO / "knowledge_base")
    files.refresh()
    entries = files.entries
    dev_items = {name: load_eval(EVAL / f"{name}.yaml") for name in DEV_SETS}
    if args.check_dev:
        held = [q for q, _, _ in load_eval(EVAL / f"{HELD_OUT}.yaml")]
        stored = [q for e in entries for q in e.questions]
        found = 0
        for name, items in dev_items.items():
            qs = [q for q, _, _ in items]
            for q, sim in near_copies(qs, held):
                print(f"{name}: {q}  (held-out similarity {sim})")
                found += 1
            stored_keys = {compact(s) for s in stored}
            for q in qs:
                if compact(q) in stored_keys:
                    print(f"{name}: {q}  (a stored question)")
                    found += 1
        print(f"{found} dev questions to drop")
        return 1 if found else 0
    if args.try_phrasings:
        added = yaml.safe_load(Path(args.try_phrasings).read_text(encoding="utf-8")) or {}
        held = [q for q, _, _ in load_eval(EVAL / f"{HELD_OUT}.yaml")]
        for k, r in enumerate(try_phrasings(files, added, [i for items in dev_items.values() for i in items], held)):
            print(f"half {k + 1} of the dev questions ({r['questions']}): {r['without']} right without, "
                  f"{r['with']} with {r['added']} phrasings added ({r['dropped_as_copies']} dropped as near copies "
                  "of its or held-out questions)")
        return 0
    if args.tune:
        tune(files, [i for items in dev_items.values() for i in items])
        return 0

    settings = settings_from(args.set)
    m = build_matcher(entries, files.synonyms, files.stopwords, settings, chatter=files.chatter)
    names = DEV_SETS if args.dev else (HELD_OUT, *DEV_SETS)
    for name in names:
        items = dev_items.get(name) or load_eval(EVAL / f"{name}.yaml")
        out[name] = evaluate(m, entries, items)
        if args.dev and (args.failures or args.show_wrong):
            out[name]["failures"] = failures(m, name, items, wrong_only=not args.failures)
    if args.dev:
        all_dev = [i for items in dev_items.values() for i in items]
        out["dev_all"] = evaluate(m, entries, all_dev)
    chatter_lines, chatter_questions = load_chatter(EVAL / f"{CHATTER}.yaml")
    out["chatter"] = chatter_replies(m, chatter_lines)
    out["chatter_questions"] = evaluate(m, entries, chatter_questions)
    if args.chatter_failures or args.show_wrong:
        out["chatter_questions"]["failures"] = failures(m, "chatter_questions", chatter_questions,
                                                        wrong_only=not args.chatter_failures)
    else:
        out["chatter"].pop("failures")
    question_sets = [out[n] for n in (*names, "chatter_questions")]
    asked = sum(r["questions"] for r in question_sets)
    out["wrong_answers"] = {"questions": asked,
                            "rate": round(sum(r["wrong_count"] for r in question_sets) / asked, 4),
                            "off_topic": sum(r["off_topic_answered"] for r in question_sets),
                            "wrong_entry": sum(r["wrong_count"] - r["off_topic_answered"] for r in question_sets)}

    entries_g, queries = generated(args.entries)
    t0 = time.perf_counter()
    big = build_matcher(entries_g, Synonyms(), [], settings)
    build_s = time.perf_counter() - t0
    # Real questions (the held-out ones; the dev ones with --dev) mixed with the generated ones.
    real = [q for q, _, _ in (dev_items["dev"] if args.dev else load_eval(EVAL / f"{HELD_OUT}.yaml"))]
    questions = (queries + real) * (1 + args.queries // max(1, len(queries) + len(real)))
    questions = questions[: args.queries]
    for q in questions[:50]:
        big.match(q)  # warm caches
    full_t, dict_t, cpu_t = latency(big, questions)
    hits = sum(1 for q in queries if big.match(q).entry is not None)
    out["latency"] = {
        "entries": len(entries_g), "questions": len(full_t), "build_s": round(build_s, 2),
        "full_p50_ms": round(statistics.median(full_t), 3), "full_p99_ms": round(percentile(full_t, 99), 3),
        "dict_p50_ms": round(statistics.median(dict_t), 4), "dict_p99_ms": round(percentile(dict_t, 99), 4),
        "full_cpu_p50_ms": round(statistics.median(cpu_t), 3), "full_cpu_p99_ms": round(percentile(cpu_t, 99), 3),
        "generated_answered": round(hits / len(queries), 3),
    }
    lat = out["latency"]
    lat["ratio_p50"] = round(lat["full_p50_ms"] / max(lat["dict_p50_ms"], 1e-6), 1)
    lat["ratio_p99"] = round(lat["full_p99_ms"] / max(lat["dict_p99_ms"], 1e-6), 1)

    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    report(out, (*names, *(("dev_all",) if args.dev else ()), "chatter_questions"), args.set)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
