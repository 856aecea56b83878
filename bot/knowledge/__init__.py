"""The knowledge base: entries from files and chat, matched to members' questions.

``entry`` (the contract), ``loader`` (YAML with file/line problems), ``text``
(normalisation, synonyms, jieba), ``matcher`` (exact / triggers / meaning),
``files`` and ``base`` (live reloading), ``store`` and ``models`` (database),
``chatform`` (the /kb add and /kb edit forms), ``misses`` (grouping unanswered
questions), ``cli`` (``python -m bot kb …``). The chat side is handlers/knowledge.py.
"""

from bot.knowledge.base import KnowledgeBase
from bot.services import ServiceKey

KNOWLEDGE: ServiceKey[KnowledgeBase] = ServiceKey("knowledge")

__all__ = ["KNOWLEDGE", "KnowledgeBase"]
