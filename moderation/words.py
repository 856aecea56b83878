"""Word boundaries (jieba) for grading hits, proposing allow terms and the keyword analysis.

A private ``jieba.Tokenizer`` with the default dictionary only: lexicon terms are
not added, so a term that cuts through an ordinary word (加微 in 参加微博) shows up
as a dictionary word running across the hit's start. (Looking up the few words
that could cross one position is ~20× cheaper than segmenting the sentence, and
stricter: any dictionary word counts, not only jieba's best path.) Loaded on
first use (about a second).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterable

import jieba

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None

STOPWORDS = frozenset("""
的 了 是 在 我 你 他 她 它 们 我们 你们 他们 这 那 这个 那个 就 都 也 还 和 与 及 或 把 被 给 让 对 吧 吗 呢 啊 呀 哦 嗯
哈 哈哈 啦 嘛 么 个 一 一个 一下 有 没有 没 不 很 太 再 又 要 会 能 可以 好 好的 什么 怎么 为什么 如果 因为 所以 但是
然后 已经 现在 今天 明天 这里 那里 哪里 自己 大家 亲 您 请 谢谢 收到 知道 可能 应该 需要 就是 还是 或者 以及 等 等等
""".split())


def tokenizer() -> jieba.Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import logging

                logging.getLogger("jieba").setLevel(logging.WARNING)
                tk = jieba.Tokenizer()
                tk.initialize()
                _tokenizer = tk
    return _tokenizer


def load() -> None:
    """Load the dictionary and the tables drawn from it now (about 1.5 s), not on the first scan."""
    pairs()


def is_word(text: str) -> bool:
    """A word of the dictionary (威信, 饲料) — written on purpose, not a sound-alike of a term."""
    return len(text) > 1 and tokenizer().FREQ.get(text, 0) > 0


def other_word(chars: str, form: str) -> bool:
    """Whether characters that sound like ``form`` hold a dictionary word where they differ from it
    (私下练习 for 私下联系: 练习 is a word of its own, not a way of writing 联系)."""
    if len(chars) != len(form):
        return False
    size = len(chars)
    return any(chars[i:j] != form[i:j] and is_word(chars[i:j])
               for i in range(size - 1) for j in range(i + 2, min(size, i + 4) + 1))


def spans(text: str) -> list[tuple[int, int]]:
    return [(s, e) for _w, s, e in tokenizer().tokenize(text, HMM=False)]


@functools.lru_cache(maxsize=1)
def pairs() -> frozenset[str]:
    """Every two characters in a row within a dictionary word of 2-4 characters."""
    return frozenset({w[k:k + 2] for w, f in tokenizer().FREQ.items() if f and 2 <= len(w) <= 4
                      for k in range(len(w) - 1)})


def crossed(text: str, pos: int) -> bool:
    """True if a dictionary word of 2-4 characters runs across position ``pos`` (参加|微博)."""
    if pos <= 0 or pos >= len(text) or text[pos - 1:pos + 1] not in pairs():
        return False  # a word across pos holds the two characters either side of it
    lo = max(0, pos - 3)
    return _crossed(text[lo:pos + 3], pos - lo)  # the only characters a word across pos can hold


@functools.lru_cache(maxsize=65536)
def _crossed(text: str, pos: int) -> bool:
    freq = tokenizer().FREQ
    size = len(text)
    for i in range(pos):
        for j in range(i + 2, min(size, i + 4) + 1):
            f = freq.get(text[i:j])
            if f is None:
                break  # jieba's dictionary holds every prefix of its words: nothing longer starts here
            if f > 0 and j > pos:
                return True
    return False


def propose_allow(text: str, a: int, b: int, term_form: str) -> str:
    """The smallest run of whole words around ``[a, b)`` that is longer than the term (微信 → 微信支付)."""
    toks = spans(text)
    lo = next((s for s, e in toks if s <= a < e), a)
    hi = next((e for s, e in toks if s < b <= e), b)
    cand = text[lo:hi]
    if cand == term_form or len(cand) <= len(term_form):
        # extend by the adjacent next word, else the adjacent previous one (punctuation ends a phrase)
        nxt = next(((s, e) for s, e in toks if s == hi and any(c.isalnum() for c in text[s:e])), None)
        prv = next(((s, e) for s, e in toks if e == lo and any(c.isalnum() for c in text[s:e])), None)
        if nxt is not None:
            cand = text[lo:nxt[1]]
        elif prv is not None:
            cand = text[prv[0]:hi]
    return cand.strip()


def keywords(texts: Iterable[str], top: int = 10) -> list[tuple[str, int]]:
    """The most frequent content words (two characters or more, stop words left out)."""
    counts: Counter[str] = Counter()
    tk = tokenizer()
    for t in texts:
        for w in tk.cut(t, HMM=False):
            w = w.strip()
            if len(w) >= 2 and w not in STOPWORDS and not w.isdigit() and any(c.isalnum() for c in w):
                counts[w] += 1
    return counts.most_common(top)
