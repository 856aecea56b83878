"""The features, in the order they are installed: each a router (here) and a service package (under bot/).

Included explicitly (no discovery). The dispatcher orders handlers by priority,
not by this list; the list decides only the order of ``install`` (services a
later feature looks up must be provided by an earlier one).
"""

from bot.access import feature as access_feature
from bot.campaigns import feature as campaigns_feature
from bot.compliance import feature as compliance_feature
from bot.feature import Feature, Setup
from bot.handoff import feature as handoff_feature
from bot.insights import feature as insights_feature
from bot.knowledge import feature as knowledge_feature
from bot.sop import feature as sop_feature
from bot.tiers import feature as tiers_feature
from handlers import access, admin, campaigns, handoff, insights, knowledge, moderation, moments, sop, tiers

BY_NAME: dict[str, Feature | Setup] = {
    "moderation": Feature("moderation", routers=[moderation.router], install=compliance_feature.install,
                          about="compliance: watched messages, /alerts, /word, POST /archive/import"),
    "admin": Feature("admin", routers=[admin.router], about="/help, /whoami, /role, /confirm, /status"),
    "handoff": Feature("handoff", routers=[handoff.router], install=handoff_feature.install,
                       about="转人工: a person for a customer who asks or is angry; /handoff list|take|close"),
    "knowledge": Feature("knowledge", routers=[knowledge.router], install=knowledge_feature.install,
                         about="members' questions answered from the knowledge base; /ask, /kb"),
    "tiers": Feature("tiers", routers=[tiers.router], install=tiers_feature.install,
                     about="member tiers: points ledger, ladder, groups, tags; the member directory"),
    "sop": Feature("sop", routers=[sop.router], install=sop_feature.install_sop,
                   about="SOP scripts: runs started and stopped by events, /sop"),
    "moments": Feature("moments", routers=[moments.router], install=sop_feature.install_moments,
                       about="the Moments (朋友圈) calendar: publishing, /moments"),
    "access": Feature("access", routers=[access.router], install=access_feature.install,
                      about="the web console's sign-in links (/console invite)"),
    "campaigns": Feature("campaigns", routers=[campaigns.router], install=campaigns_feature.install,
                         about="segment sends (/send, /sends) and channel codes (/channel add|list)"),
    "insights": Feature("insights", routers=[insights.router], install=insights_feature.install,
                        about="the report: users, conversion, behaviour, referral, deals; /stats (needs tiers)"),
}
FEATURES: list[Feature | Setup] = list(BY_NAME.values())


def feature(name: str) -> Feature | Setup:
    """One feature by name (tests and benches build a bot with a few of them)."""
    return BY_NAME[name]
