"""The texts the shipped example content makes the bot send: knowledge-base answers (``knowledge_base/``),
SOP step texts and their templates (``sop_templates/``) and the Moments calendar (``moments.yaml``).
They are brand lines, so the evaluation counts them with the clean set. Template markup (``{{ … }}``,
``{% … %}``) is cut out, leaving the words around it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
_MARKUP = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _texts(data: Any) -> Iterator[str]:
    """Every ``answer`` and ``text`` value in a parsed YAML document, at any depth."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("answer", "text") and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(data, list):
        for item in data:
            yield from _texts(item)


def shipped_texts(root: Path = REPO) -> list[tuple[str, str]]:
    """(where, text) for each text of the example content under ``root`` (none when it is not there, as
    in an installed package)."""
    out: list[tuple[str, str]] = []
    for folder in ("knowledge_base", "sop_templates"):
        for path in sorted((root / folder).glob("*.yaml")):
            for i, text in enumerate(_texts(yaml.safe_load(path.read_text("utf-8")))):
                out.append((f"{folder}/{path.name}#{i + 1}", text.strip()))
        for path in sorted((root / folder).rglob("*.j2")):
            text = _MARKUP.sub(" ", path.read_text("utf-8")).strip()
            if text:
                out.append((str(path.relative_to(root)), text))
    return [(where, text) for where, text in out if text]
