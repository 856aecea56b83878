"""Recall over evasions.yaml and the false-positive rate over the clean set, with the starter lexicons.

    python -m moderation.eval [--lexicon DIR] [--verbose]

A case counts as caught when a hit with its term and category is reported at an
alerting level (reject or review). The clean set is clean.yaml (everyday brand and
customer-service lines) plus the texts the shipped example content makes the bot
send (knowledge-base answers, SOP texts and templates, the Moments calendar:
``shipped.py``). A clean message is a false positive when it gives any alerting hit;
``info`` hits (recorded, never sent) are counted apart. The engine runs as the bot
runs it by default (``[moderation] in_app_contact``: 私信我 inside WeCom is allowed).
Targets: recall ≥ 0.97, false-positive rate ≤ 0.005.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from moderation.eval.shipped import shipped_texts
from moderation.lexicon import DEFAULT_IN_APP_CONTACT, lexicon_from_dir, with_allow
from moderation.matcher import Matcher

HERE = Path(__file__).resolve().parent
ALERTING = ("reject", "review")
RECALL_TARGET = 0.97
FP_TARGET = 0.005


def evaluate(lexicon_dir: Path, verbose: bool = False) -> dict[str, float]:
    lexicon, problems = lexicon_from_dir(lexicon_dir)
    if problems:
        raise SystemExit("\n".join(str(p) for p in problems))
    matcher = Matcher(with_allow(lexicon, DEFAULT_IN_APP_CONTACT))
    cases = yaml.safe_load((HERE / "evasions.yaml").read_text("utf-8"))
    written = yaml.safe_load((HERE / "clean.yaml").read_text("utf-8"))
    shipped = [text for _where, text in shipped_texts()]
    caught = 0
    for c in cases:
        hits = matcher.scan(c["text"])
        ok = any(h.term == c["term"] and h.category == c["category"] and h.level in ALERTING for h in hits)
        caught += ok
        if verbose and not ok:
            print(f"MISSED {c['text']!r}: want {c['term']} / {c['category']}, got "
                  f"{[(h.term, h.category, h.level, h.stage) for h in hits]}")
    false_pos = info = shipped_fp = 0
    for i, text in enumerate([*written, *shipped]):
        hits = matcher.scan(text)
        if any(h.level in ALERTING for h in hits):
            false_pos += 1
            shipped_fp += i >= len(written)
            if verbose:
                print(f"FALSE POSITIVE {text!r}: {[(h.term, h.category, h.level, h.stage) for h in hits]}")
        elif hits:
            info += 1
    clean = len(written) + len(shipped)
    return {"cases": len(cases), "caught": caught, "recall": caught / len(cases), "clean": clean,
            "written": len(written), "shipped": len(shipped), "shipped_false_positives": shipped_fp,
            "false_positives": false_pos, "fp_rate": false_pos / clean, "info_only": info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lexicon", default=str(HERE.parent / "lexicons"), help="lexicon directory")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every miss and false positive")
    args = ap.parse_args()
    r = evaluate(Path(args.lexicon), args.verbose)
    print(f"recall {r['recall']:.3f} ({r['caught']}/{r['cases']} evasions caught, target ≥ {RECALL_TARGET}); "
          f"false-positive rate {r['fp_rate']:.3f} ({r['false_positives']}/{r['clean']} clean messages: "
          f"{r['written']} written, {r['shipped']} from the shipped example content with "
          f"{r['shipped_false_positives']} false positive(s); target ≤ {FP_TARGET}); "
          f"{r['info_only']} clean message(s) with info-only hits")


if __name__ == "__main__":
    main()
