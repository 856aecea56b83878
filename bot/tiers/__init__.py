"""Member tiers: the points ledger and the 量型 → 质型 → VIP → 种子用户 ladder."""
