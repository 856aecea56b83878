"""Evaluation sets for the sensitive-word engine (run ``python -m moderation.eval``)."""
