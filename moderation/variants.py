"""Variant tables (``data/variants.yaml``, ``data/digits.yaml``): the forms written instead of a word.

A form that reads differently from its word once normalised (vx, v信, 扣扣, 拼夕夕) is
matched by extra patterns built from each term that contains the word (加我微信 →
加我vx …). A form that sounds the same (薇信, 威信) already shares the term's pinyin
code; the table only tells the matcher it is a known variant, so the hit keeps
the term's level instead of the pinyin pass's ``review``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.yamldoc import FileProblems, Lines, Problem, load_yaml_file
from moderation.normalize import DATA, fold1, fold_text, is_separator, normalise

MAX_EXPANSIONS = 48  # patterns per term, so a term with several variant words stays bounded


@dataclass(slots=True)
class Variants:
    """canonical (folded) → forms (folded), split by how they differ."""

    letter: dict[str, list[str]] = field(default_factory=dict)
    homophone: dict[str, list[str]] = field(default_factory=dict)
    # forms that code differently from their canonical word, by canonical
    spelled: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # forms that stand for their word only inside a longer term (加v, 加薇), never alone: by canonical
    within: dict[str, list[str]] = field(default_factory=dict)
    # homophone form → canonical, longest first, for telling a known variant from a pinyin guess
    sound_alike: list[tuple[str, str]] = field(default_factory=list)

    def expansions(self, form: str) -> list[tuple[str, str]]:
        """Other spellings of a folded term: (folded form, "letter" | "homophone")."""
        slots: list[tuple[int, int, list[tuple[str, str]]]] = []
        for canon, alts in self.spelled.items():
            start = form.find(canon)
            while start >= 0:
                slots.append((start, start + len(canon), alts))
                start = form.find(canon, start + 1)
        if not slots:
            return []
        slots.sort()
        chosen: list[tuple[int, int, list[tuple[str, str]]]] = []
        for s in slots:  # non-overlapping, longest word first at each position
            if chosen and s[0] < chosen[-1][1]:
                if s[1] - s[0] > chosen[-1][1] - chosen[-1][0] and s[0] == chosen[-1][0]:
                    chosen[-1] = s
                continue
            chosen.append(s)
        out: list[tuple[str, str]] = []
        seen = {form}
        alone_not = self.within.get(form, ()) if len(chosen) == 1 and chosen[0][:2] == (0, len(form)) else ()
        options = [[(form[a:b], ""), *(x for x in alts if x[0] not in alone_not)] for a, b, alts in chosen]
        for combo in itertools.product(*options):
            if all(kind == "" for _, kind in combo):
                continue
            pieces, last = [], 0
            for (a, b, _), (text, _kind) in zip(chosen, combo, strict=True):
                pieces.append(form[last:a])
                pieces.append(text)
                last = b
            pieces.append(form[last:])
            new = "".join(pieces)
            if new in seen:
                continue
            seen.add(new)
            kind = "letter" if any(k == "letter" for _, k in combo) else "homophone"
            out.append((new, kind))
            if len(out) >= MAX_EXPANSIONS:
                break
        return out

    def known_sound_alike(self, slice_: str, form: str) -> bool:
        """True if replacing listed homophone forms in ``slice_`` gives ``form``."""
        s = slice_
        for alt, canon in self.sound_alike:
            if alt in s:
                s = s.replace(alt, canon)
        return s == form


def _forms(data: Any, lines: Lines, where: tuple[Any, ...], problems: list[Problem]) -> list[str]:
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append(lines.problem("应是列表", *where))
        return []
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
            problems.append(lines.problem("变体应是非空文字", *where, i))
            continue
        folded = fold_text(str(item))
        if not folded:
            problems.append(lines.problem(f"变体 {item!r} 规范化后为空（只有标点或符号）", *where, i))
            continue
        if len(folded) == 1 and sum(1 for c in str(item) if not is_separator(fold1(c))) > 1:
            # 扣扣 read as 扣 would be found in 折扣: a doubled word must be listed as one
            problems.append(lines.problem(f"变体 {item!r} 按重复字读作「{folded}」，会命中所有含「{folded}」的文字；"
                                          f"请把 {folded * 2} 加入 reduplication.txt", *where, i))
            continue
        out.append(folded)
    return out


def load_variants(path: Path | None = None) -> Variants:
    path = path or DATA / "variants.yaml"
    data, lines = load_yaml_file(path, str(path))
    problems: list[Problem] = []
    v = Variants()
    if not isinstance(data, dict):
        raise FileProblems([Problem(str(path), 0, "应是“词: {letter: [...], homophone: [...]}”的映射")])
    for canon_raw, spec in data.items():
        canon = fold_text(str(canon_raw))
        if not canon:
            problems.append(lines.problem("词规范化后为空", canon_raw))
            continue
        if not isinstance(spec, dict):
            problems.append(lines.problem("应是 {letter: [...], homophone: [...]}", canon_raw))
            continue
        for key in spec:
            if key not in ("letter", "homophone", "within"):
                problems.append(lines.problem(f"未知字段 {key}（应是 letter、homophone 或 within）", canon_raw, key))
        letter = _forms(spec.get("letter"), lines, (canon_raw, "letter"), problems)
        homophone = _forms(spec.get("homophone"), lines, (canon_raw, "homophone"), problems)
        within = _forms(spec.get("within"), lines, (canon_raw, "within"), problems)
        v.letter[canon], v.homophone[canon] = letter, homophone
        canon_code = normalise(canon).compact
        spelled = [(f, "letter") for f in letter if f != canon]
        spelled += [(f, "homophone") for f in homophone if normalise(f).compact != canon_code]
        spelled += [(f, "letter" if f.isascii() else "homophone") for f in within
                    if f != canon and f not in letter and f not in homophone]
        if within:
            v.within[canon] = within
        if spelled:
            v.spelled[canon] = spelled
        v.sound_alike += [(f, canon) for f in homophone if normalise(f).compact == canon_code and f != canon]
    if problems:
        raise FileProblems(problems)
    v.sound_alike.sort(key=lambda p: -len(p[0]))
    return v


@functools.lru_cache(maxsize=1)
def default_variants() -> Variants:
    return load_variants()


def load_digits(path: Path | None = None) -> dict[str, str]:
    """form → ASCII digit, from ``data/digits.yaml``."""
    path = path or DATA / "digits.yaml"
    data, lines = load_yaml_file(path, str(path))
    problems: list[Problem] = []
    out: dict[str, str] = {}
    if not isinstance(data, dict):
        raise FileProblems([Problem(str(path), 0, "应是“数字: [写法, …]”的映射")])
    for digit, forms in data.items():
        d = str(digit)
        if len(d) != 1 or not d.isdigit():
            problems.append(lines.problem(f"{digit!r} 不是 0-9 的数字", digit))
            continue
        if not isinstance(forms, list):
            problems.append(lines.problem("应是写法列表", digit))
            continue
        for i, f in enumerate(forms):
            f = str(f)
            if len(f) != 1:
                problems.append(lines.problem(f"写法 {f!r} 应是单个字符", digit, i))
                continue
            out[f] = d
    if problems:
        raise FileProblems(problems)
    return out


@functools.lru_cache(maxsize=1)
def default_digits() -> dict[str, str]:
    return load_digits()


def load_meanings(path: Path | None = None) -> dict[str, list[str]]:
    """``data/meanings.yaml``: word (folded) → the phrases (folded) in which it means something else
    (滚开 → 滚开的水, 水滚开). A phrase must hold its word."""
    path = path or DATA / "meanings.yaml"
    data, lines = load_yaml_file(path, str(path))
    problems: list[Problem] = []
    out: dict[str, list[str]] = {}
    if not isinstance(data, dict):
        raise FileProblems([Problem(str(path), 0, "应是“词: [另有含义的词组, …]”的映射")])
    for word_raw, phrases in data.items():
        word = fold_text(str(word_raw))
        if not word:
            problems.append(lines.problem("词规范化后为空", word_raw))
            continue
        if not isinstance(phrases, list) or not phrases:
            problems.append(lines.problem("应是非空的词组列表", word_raw))
            continue
        for i, p in enumerate(phrases):
            folded = fold_text(str(p)) if isinstance(p, str | int) and not isinstance(p, bool) else ""
            if word not in folded or folded == word:
                problems.append(lines.problem(f"词组 {p!r} 应包含「{word_raw}」且比它长", word_raw, i))
                continue
            out.setdefault(word, []).append(folded)
    if problems:
        raise FileProblems(problems)
    return out


@functools.lru_cache(maxsize=1)
def default_meanings() -> dict[str, list[str]]:
    return load_meanings()
