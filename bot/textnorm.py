"""Text normalisation shared by matching features: NFKC, case folding, traditional → simplified.

``fold_char`` maps one character to one character (or keeps it), so callers that
need offsets back into the original text (moderation) can fold character by
character; ``fold`` handles whole strings for the knowledge base.
"""

from __future__ import annotations

import functools
import unicodedata

import opencc

_T2S = opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _T2S.convert(text)


@functools.lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    """NFKC + casefold + t2s of a single character; keeps length 1 where the result is one character."""
    n = unicodedata.normalize("NFKC", ch).casefold()
    if len(n) == 1:
        s = _T2S.convert(n)
        return s if len(s) == 1 else n
    return n


def fold(text: str) -> str:
    """Full-width → half-width, circled/compat forms → plain, lower case, traditional → simplified."""
    return to_simplified(unicodedata.normalize("NFKC", text).casefold())
