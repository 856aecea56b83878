"""Do two versions of the matcher give the same hits? Record them once, compare later.

    python bench/moderation_same_hits.py --write /tmp/hits.jsonl.gz      # before a change
    python bench/moderation_same_hits.py --compare /tmp/hits.jsonl.gz    # after it: 0 differences expected

The messages: those of ``bench/moderation.py`` (its 10,000-term lexicon, ``--mb`` megabytes of chat with
terms and evasions) and the generated evasions of ``tests/test_moderation_batch.py`` (separators, repeats,
variants, traditional characters, contact details, characters beyond the BMP) and strings of the starter
terms' characters written once to three times each, under the starter lexicons,
with several matcher settings. Every message is scanned by ``Matcher.scan_many`` and by ``Matcher.scan``;
the two must agree, and each hit is stored with all its fields.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.lexicon import lexicon_from_dir  # noqa: E402
from moderation.matcher import Matcher  # noqa: E402

SETTINGS: list[dict[str, object]] = [{}, {"max_gap": 1}, {"max_gap": 5}, {"allowed_domains": ["example.com"]},
                                     {"detect": False}]


def repeats(n: int, starter: Path) -> list[str]:
    """Messages made to exercise reading a repeat once: the characters of the starter terms, sound-alikes
    and reduplicated words, each written one to three times, now and then with a separator."""
    lexicon = lexicon_from_dir(starter)[0]
    chars = sorted({c for t in [*lexicon.terms, *lexicon.allow] for c in t.text}) + list("威薇唯为一实时事施妈谢哈天")
    rng = random.Random(11)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(2, 12)):
            parts.append(rng.choice(chars) * rng.choice((1, 1, 2, 3)))
            if rng.random() < 0.1:
                parts.append(rng.choice((" ", "，", "...", "😀", "     ")))
        out.append("".join(parts))
    return out


def runs(mb: float, evasions: int) -> Iterator[tuple[str, Matcher, list[str]]]:
    from tests.test_moderation_batch import STARTER, messages

    # bench/moderation.py by its path: its module name is the engine package's
    spec = importlib.util.spec_from_file_location("moderation_bench", ROOT / "bench" / "moderation.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    build_lexicon, build_messages, dictionary_words = bench.build_lexicon, bench.build_messages, bench.dictionary_words

    rng = random.Random(7)
    words = dictionary_words(rng)
    lexicon = build_lexicon(10_000, words, rng)
    bench_msgs = build_messages(mb, words, lexicon, rng)
    generated = messages(evasions) + repeats(evasions, STARTER)
    yield "bench lexicon, bench messages", Matcher(lexicon), bench_msgs
    yield "bench lexicon, generated evasions", Matcher(lexicon), generated
    starter = lexicon_from_dir(STARTER)[0]
    for kw in SETTINGS:
        yield f"starter lexicons {kw}, generated evasions", Matcher(starter, **kw), generated  # type: ignore[arg-type]
        yield f"starter lexicons {kw}, bench messages", Matcher(starter, **kw), bench_msgs  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", help="store the hits in this file (gzip, one JSON line per message)")
    group.add_argument("--compare", help="compare the hits with those stored in this file")
    ap.add_argument("--mb", type=float, default=5.0, help="megabytes of bench messages (default 5)")
    ap.add_argument("--evasions", type=int, default=20_000, help="generated evasion messages (default 20000)")
    args = ap.parse_args()
    lines: list[str] = []
    batch_vs_one = 0
    for label, matcher, msgs in runs(args.mb, args.evasions):
        batch = matcher.scan_many(msgs)
        one = [matcher.scan(m) for m in msgs]
        differ = sum(1 for a, b in zip(batch, one, strict=True) if a != b)
        batch_vs_one += differ
        count = sum(len(h) for h in batch)
        print(f"{label}: {len(msgs):,} messages, {count:,} hits, batch vs one by one: {differ} differences")
        lines += [json.dumps([label, i, [h.to_json() for h in hits]])
                  for i, hits in enumerate(batch)]
    if args.write:
        with gzip.open(args.write, "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{len(lines):,} messages' hits written to {args.write}")
    else:
        with gzip.open(args.compare, "rt", encoding="utf-8") as f:
            stored = f.read().splitlines()
        differ = sum(1 for a, b in zip(stored, lines, strict=False) if a != b) + abs(len(stored) - len(lines))
        for a, b in zip(stored, lines, strict=False):
            if a != b and differ:
                print(f"first difference:\n  stored {a}\n  now    {b}")
                break
        print(f"compared with {args.compare}: {len(lines):,} messages, {differ} differences")
    if batch_vs_one or (args.compare and differ):
        sys.exit(1)


if __name__ == "__main__":
    main()
