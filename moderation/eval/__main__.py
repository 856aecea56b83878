"""Recall over evasions.yaml and the false-positive rate over clean.yaml, with the starter lexicons.

    python -m moderation.eval [--lexicon DIR] [--verbose]

A case counts as caught when a hit with its term and category is reported at an
alerting level (reject or review). A clean message is a false positive when it
gives any alerting hit; ``info`` hits (recorded, never sent) are counted apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from moderation.lexicon import lexicon_from_dir
from moderation.matcher import Matcher

HERE = Path(__file__).resolve().parent
ALERTING = ("reject", "review")


def evaluate(lexicon_dir: Path, verbose: bool = False) -> dict[str, float]:
    lexicon, problems = lexicon_from_dir(lexicon_dir)
    if problems:
        raise SystemExit("\n".join(str(p) for p in problems))
    matcher = Matcher(lexicon)
    cases = yaml.safe_load((HERE / "evasions.yaml").read_text("utf-8"))
    clean = yaml.safe_load((HERE / "clean.yaml").read_text("utf-8"))
    caught = 0
    for c in cases:
        hits = matcher.scan(c["text"])
        ok = any(h.term == c["term"] and h.category == c["category"] and h.level in ALERTING for h in hits)
        caught += ok
        if verbose and not ok:
            print(f"MISSED {c['text']!r}: want {c['term']} / {c['category']}, got "
                  f"{[(h.term, h.category, h.level, h.stage) for h in hits]}")
    false_pos = info = 0
    for text in clean:
        hits = matcher.scan(text)
        if any(h.level in ALERTING for h in hits):
            false_pos += 1
            if verbose:
                print(f"FALSE POSITIVE {text!r}: {[(h.term, h.category, h.level, h.stage) for h in hits]}")
        elif hits:
            info += 1
    return {"cases": len(cases), "caught": caught, "recall": caught / len(cases), "clean": len(clean),
            "false_positives": false_pos, "fp_rate": false_pos / len(clean), "info_only": info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lexicon", default=str(HERE.parent / "lexicons"), help="lexicon directory")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every miss and false positive")
    args = ap.parse_args()
    r = evaluate(Path(args.lexicon), args.verbose)
    print(f"recall {r['recall']:.3f} ({r['caught']}/{r['cases']} evasions caught, target ≥ 0.95); "
          f"false-positive rate {r['fp_rate']:.3f} ({r['false_positives']}/{r['clean']} clean messages, "
          f"target ≤ 0.01); {r['info_only']} clean message(s) with info-only hits")


if __name__ == "__main__":
    main()
