"""Contact details: phone numbers, QQ and WeChat ids, URLs, e-mail addresses.

Digits count in every form of ``data/digits.yaml`` (一三八…, ①③⑧…, full-width)
and may be split by spaces, dashes, dots or emoji (138 0013 8000, 1-3-8…). The
patterns run on the original text, so offsets need no mapping.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from moderation.variants import default_digits

KINDS = {"phone": "手机号", "qq": "QQ号", "wechat_id": "微信号", "url": "链接", "email": "邮箱"}
CONTACT_CATEGORY = "联系方式"
LINK_CATEGORY = "链接"
CATEGORY_OF = {"phone": CONTACT_CATEGORY, "qq": CONTACT_CATEGORY, "wechat_id": CONTACT_CATEGORY,
               "email": CONTACT_CATEGORY, "url": LINK_CATEGORY}

_SPLIT = r"[\s\-_.·,，、|/*~()（）\u200b-\u200f\u2060\ufeff\U0001F300-\U0001FAFF\u2600-\u27BF]"
_QQ_WORD = r"(?:qq|ｑｑ|扣扣|叩叩|企鹅|q号|Q号|球球)"
_WX_WORD = r"(?:微信|vx|wx|v信|weixin|wechat|薇信|威信|维信|微x|威x)"
# Written for 微信 only in front of an id (v：tea_lover2024, 威：tea_lover2024, V tea_lover2024): alone
# they are a letter or an ordinary word, so a Chinese one needs a colon and v a colon or an id with a
# digit, "_" or "-" (and no letter or digit before it).
_WX_WEAK = r"(?:(?<![a-z0-9])v|威|薇|卫星|魏|维)"
_TLD = (r"(?:com|cn|net|org|top|xyz|vip|cc|me|io|co|shop|site|link|info|biz|club|online|fun|ltd|wang|ink|pub|"
        r"live|store|tech|asia|hk|tw|app)")


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str
    start: int
    end: int
    value: str  # the number, id or address, normalised


# What IGNORECASE lets [a-z] match besides ASCII (the ``re`` documentation): İ ı ſ K.
_CASE_EXTRA = "\u0130\u0131\u017f\u212a"
LEAD = "".join(map(chr, [*range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x61, 0x7B)])) + _CASE_EXTRA


@dataclass(frozen=True, slots=True)
class _Patterns:
    words: re.Pattern[str]   # QQ numbers, WeChat ids, e-mail addresses, links
    words_no_email: re.Pattern[str]  # the same for a text without an at sign (_AT_SIGN)
    number: re.Pattern[str]  # a run of digits (a phone number when it reads as one)
    gate: re.Pattern[str]
    has_words: tuple[re.Pattern[str], re.Pattern[str]]
    pre: re.Pattern[str]     # what a text must hold for any detail to count (see detect)
    digits: dict[str, str]


@functools.lru_cache(maxsize=1)
def _patterns() -> _Patterns:
    digits = default_digits()
    cls = "[0-9" + "".join(re.escape(f) for f in digits if not f.isascii()) + "]"
    num = f"{cls}(?:{_SPLIT}{{0,3}}{cls}){{4,}}"
    # A detail counts only in a text this finds something in: a run of digits, a WeChat or QQ word,
    # @, a scheme, www. or a letter or digit before a dot (a host label ending in "-" does not count).
    pre = re.compile(rf"{num}|{_WX_WORD}|{_WX_WEAK}|{_QQ_WORD}|[@＠]|https?:|www\.|\(at\)|（at）"
                     rf"|[a-zA-Z0-9]\s*(?:\.|点|。|dot)\s*[a-zA-Z]{{2}}", re.IGNORECASE)
    # Every detail found holds a letter or digit of LEAD (an id, an address) or five digit-like
    # characters (a number). Without IGNORECASE and starting with a character class, this skips at
    # C speed through a message of Chinese text.
    digit = re.escape(digit_chars())
    gate = re.compile(f"[{re.escape(LEAD)}{digit}](?:(?<=[{re.escape(LEAD)}])|(?:{_SPLIT}{{0,3}}[{digit}]){{4}})")
    ids = (rf"(?P<qq>{_QQ_WORD}\s*(?:号|号码)?\s*[:：是为]?\s*(?P<qqnum>{num}))"
           rf"|(?P<wx>{_WX_WORD}\s*(?P<wxlabel>(?:号|号码|id)?\s*[:：是为]?)\s*(?P<wxid>[a-z][-_a-z0-9]{{5,19}})(?![-_a-z0-9]))"
           rf"|(?P<wxw>{_WX_WEAK}\s*(?P<wxwlabel>(?:号|号码|id)?\s*[:：是]?)\s*(?P<wxwid>[a-z][-_a-z0-9]{{5,19}})(?![-_a-z0-9]))")
    # an e-mail address's local part is at most 64 characters: each place is tried in bounded time
    email = (r"|(?P<email>[a-z0-9][a-z0-9._%+-]{0,63}\s*(?:@|＠|\(at\)|（at）)\s*[a-z0-9-]+(?:\.[a-z0-9-]+)*"
             r"\.[a-z]{2,10})")
    url = (rf"|(?P<url>(?:https?://|www\.)[^\s<>\"'，。！？；、）)]+"
           rf"|(?<![a-z0-9@.])[a-z0-9][-a-z0-9]{{0,62}}(?:\.[a-z0-9][-a-z0-9]{{0,62}})*"
           rf"\s*(?:\.|点|。|dot)\s*{_TLD}(?![a-z0-9])(?:/[^\s，。！？；、]*)?)")
    words = re.compile(ids + email + url, re.IGNORECASE)
    # the same without the e-mail branch, for a text without an at sign (its costliest branch: every
    # letter or digit starts an attempt), which finds the same
    words_no_email = re.compile(ids + url, re.IGNORECASE)
    # the digits of a number (a + before them is taken by ``_matches``); digits have no case, and
    # starting with a character class this skips through Chinese text at C speed
    number = re.compile(f"[{digit}](?:{_SPLIT}{{0,3}}[{digit}]){{4,}}")
    # ``words`` finds nothing without a letter (an id, an address, a TLD, "qq") or a QQ word written
    # otherwise (扣扣: then followed by a number)
    others = [w for w in _QQ_WORD[3:-1].split("|") if not w[0].isascii()]
    has_words = (re.compile(f"[a-zA-Z{_CASE_EXTRA}]"), re.compile("|".join(map(re.escape, others)), re.IGNORECASE))
    return _Patterns(words, words_no_email, number, gate, has_words, pre, digits)


def gate() -> re.Pattern[str]:
    """A regex that finds something in every text where ``detect`` could find a contact detail:
    a character of LEAD, or five characters of ``digit_chars()`` with at most three separators
    between each two."""
    return _patterns().gate


@functools.lru_cache(maxsize=1)
def digit_chars() -> str:
    """Every character ``rx`` reads as a digit, in either case (0-9 and the forms of digits.yaml)."""
    forms = {f for f in default_digits() if not f.isascii()}
    forms |= {v for f in forms for v in (f.lower(), f.upper()) if len(v) == 1}
    return "0123456789" + "".join(sorted(forms))


def _digits_of(s: str, table: dict[str, str]) -> str:
    return "".join(c if c.isascii() and c.isdigit() else table.get(c, "") for c in s)


_SCHEME = re.compile(r"^(?:https?://)")
_DOT = re.compile(r"\s*(?:点|。|dot)\s*")
_AT = re.compile(r"\s*(?:＠|\(at\)|（at）)\s*")
_ID_MARK = re.compile(r"[0-9_-]")
_AT_SIGN = re.compile(r"[@＠]|[(（]at[)）]", re.IGNORECASE)  # what an e-mail address holds


def _host(url: str) -> str:
    u = _SCHEME.sub("", url.lower())
    u = _DOT.sub(".", u)
    return u.split("/", 1)[0].split(":", 1)[0]


def _matches(text: str, p: _Patterns) -> Iterator[tuple[str, int, int, re.Match[str]]]:
    """(kind, start, end, match) as one alternation ``words|[+＋]?number`` would find them: leftmost
    first, ``words`` first where both start at one place, each search going on after the last match."""
    letters, qq_words = p.has_words
    words: re.Pattern[str] | None = None
    if letters.search(text) or qq_words.search(text):
        words = p.words if _AT_SIGN.search(text) else p.words_no_email
    number: re.Pattern[str] | None = p.number
    mw = mn = None
    pos = ns = 0
    while True:
        # a match found from an earlier position still stands if it starts at pos or later; a search that
        # found nothing is not repeated (each would read to the end of the text again)
        if words is not None and (mw is None or mw.start() < pos):
            mw = words.search(text, pos)
            if mw is None:
                words = None
        if number is not None and (mn is None or ns < pos):
            mn = number.search(text, pos)
            if mn is None:
                number = None
            else:
                ns = mn.start()
                if ns > pos and text[ns - 1] in "+＋":
                    ns -= 1
        if mw is not None and (mn is None or mw.start() <= ns):
            kind = mw.lastgroup
            assert kind is not None
            yield kind, mw.start(), mw.end(), mw
            pos = mw.end()
        elif mn is not None:
            yield "num", ns, mn.end(), mn
            pos = mn.end()
        else:
            return


def detect(text: str, allowed_domains: Iterable[str] = ()) -> list[Detection]:
    p = _patterns()
    if p.gate.search(text) is None:
        return []
    table = p.digits
    allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
    out: list[Detection] = []
    for kind, start, end, m in _matches(text, p):
        if kind == "qq":
            value = _digits_of(m.group("qqnum"), table)
            if 5 <= len(value) <= 11 and value[0] != "0":
                out.append(Detection("qq", start, end, value))
            continue
        if kind == "wx":
            wxid = m.group("wxid")
            if not (m.group("wxlabel").strip() or _ID_MARK.search(wxid)):
                continue  # "微信 welcome" is a word, not an id
            out.append(Detection("wechat_id", start, end, m.group("wxid").lower()))
            continue
        if kind == "wxw":
            wxid, label = m.group("wxwid"), m.group("wxwlabel")
            if label.strip() or (m.group(0)[0] in "vV" and re.search(r"[0-9_-]", wxid)):
                out.append(Detection("wechat_id", start, end, wxid.lower()))
            continue
        if kind == "email":
            value = _AT.sub("@", m.group("email").lower()).replace(" ", "")
            out.append(Detection("email", start, end, value))
            continue
        if kind == "url":
            host = _host(m.group("url"))
            if any(host == d or host.endswith("." + d) for d in allowed):
                continue
            out.append(Detection("url", start, end, m.group("url")))
            continue
        value = _digits_of(text[start:end], table)
        if value.startswith("86") and len(value) == 13:
            value = value[2:]
        if len(value) == 11 and value[0] == "1" and value[1] in "3456789":
            out.append(Detection("phone", start, end, value))
    if out and all(d.kind == "url" for d in out) and p.pre.search(text) is None:
        # looked for last, and only for links: it is slower than the search (6.6 µs a message), and a
        # number, a WeChat id or an e-mail address holds what it looks for (digits, 微信 / vx, @)
        return []
    return out
