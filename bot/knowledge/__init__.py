"""The knowledge base: entries from files and chat, matched to members' questions.

``contract`` (the entry contract, declared) and ``loader`` (YAML with file/line
problems), ``entry`` (the entry itself), ``text`` (normalisation, synonyms,
jieba), ``matcher`` (exact / triggers / meaning), ``files`` and ``base`` (live
reloading), ``answering`` (where it decides to answer a member), ``service``
(the /kb use cases), ``store`` and ``models`` (database), ``chatform`` (the
/kb add and /kb edit forms), ``misses`` (grouping unanswered questions),
``config`` (the ``[knowledge]`` section), ``feature`` (assembling it all),
``cli`` (``python -m bot kb …``). The chat side is handlers/knowledge.py.

This package itself holds only the service key, so that importing one of its
modules (``bot.knowledge.text``) loads only what that module needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import ServiceKey

if TYPE_CHECKING:
    from bot.knowledge.service import KnowledgeService

KNOWLEDGE: ServiceKey[KnowledgeService] = ServiceKey("knowledge")

__all__ = ["KNOWLEDGE"]
