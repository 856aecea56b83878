"""Contact details: phone numbers, QQ and WeChat ids, URLs, e-mail addresses.

Digits count in every form of ``data/digits.yaml`` (一三八…, ①③⑧…, full-width)
and may be split by spaces, dashes, dots or emoji (138 0013 8000, 1-3-8…). The
patterns run on the original text, so offsets need no mapping.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
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
_TLD = (r"(?:com|cn|net|org|top|xyz|vip|cc|me|io|co|shop|site|link|info|biz|club|online|fun|ltd|wang|ink|pub|"
        r"live|store|tech|asia|hk|tw|app)")


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str
    start: int
    end: int
    value: str  # the number, id or address, normalised


@functools.lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], dict[str, str]]:
    digits = default_digits()
    cls = "[0-9" + "".join(re.escape(f) for f in digits if not f.isascii()) + "]"
    num = f"{cls}(?:{_SPLIT}{{0,3}}{cls}){{4,}}"
    # Cheap first look: most messages have no run of digits, no @ and no domain-like text.
    pre = re.compile(rf"{num}|{_WX_WORD}|{_QQ_WORD}|[@＠]|https?:|www\.|\(at\)|（at）"
                     rf"|[a-zA-Z0-9]\s*(?:\.|点|。|dot)\s*[a-zA-Z]{{2}}", re.IGNORECASE)
    rx = re.compile(
        rf"(?P<qq>{_QQ_WORD}\s*(?:号|号码)?\s*[:：是为]?\s*(?P<qqnum>{num}))"
        rf"|(?P<wx>{_WX_WORD}\s*(?P<wxlabel>(?:号|号码|id)?\s*[:：是为]?)\s*(?P<wxid>[a-z][-_a-z0-9]{{5,19}})(?![-_a-z0-9]))"
        rf"|(?P<email>[a-z0-9][a-z0-9._%+-]*\s*(?:@|＠|\(at\)|（at）)\s*[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{{2,10}})"
        rf"|(?P<url>(?:https?://|www\.)[^\s<>\"'，。！？；、）)]+"
        rf"|(?<![a-z0-9@.])[a-z0-9][-a-z0-9]{{0,62}}(?:\.[a-z0-9][-a-z0-9]{{0,62}})*"
        rf"\s*(?:\.|点|。|dot)\s*{_TLD}(?![a-z0-9])(?:/[^\s，。！？；、]*)?)"
        rf"|(?P<num>(?:\+|＋)?{num})",
        re.IGNORECASE)
    return rx, pre, digits


def _digits_of(s: str, table: dict[str, str]) -> str:
    return "".join(c if c.isascii() and c.isdigit() else table.get(c, "") for c in s)


def _host(url: str) -> str:
    u = re.sub(r"^(?:https?://)", "", url.lower())
    u = re.sub(r"\s*(?:点|。|dot)\s*", ".", u)
    return u.split("/", 1)[0].split(":", 1)[0]


def detect(text: str, allowed_domains: Iterable[str] = ()) -> list[Detection]:
    rx, pre, table = _patterns()
    if pre.search(text) is None:
        return []
    allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
    out: list[Detection] = []
    for m in rx.finditer(text):
        if m.group("qq"):
            value = _digits_of(m.group("qqnum"), table)
            if 5 <= len(value) <= 11 and value[0] != "0":
                out.append(Detection("qq", m.start(), m.end(), value))
            continue
        if m.group("wx"):
            wxid = m.group("wxid")
            if not (m.group("wxlabel").strip() or re.search(r"[0-9_-]", wxid)):
                continue  # "微信 welcome" is a word, not an id
            out.append(Detection("wechat_id", m.start(), m.end(), m.group("wxid").lower()))
            continue
        if m.group("email"):
            value = re.sub(r"\s*(?:＠|\(at\)|（at）)\s*", "@", m.group("email").lower()).replace(" ", "")
            out.append(Detection("email", m.start(), m.end(), value))
            continue
        if m.group("url"):
            host = _host(m.group("url"))
            if any(host == d or host.endswith("." + d) for d in allowed):
                continue
            out.append(Detection("url", m.start(), m.end(), m.group("url")))
            continue
        raw = m.group("num")
        value = _digits_of(raw, table)
        if value.startswith("86") and len(value) == 13:
            value = value[2:]
        if len(value) == 11 and value[0] == "1" and value[1] in "3456789":
            out.append(Detection("phone", m.start(), m.end(), value))
    return out
