"""The web console under /console: pages for operators and reviewers (see bot.pages.app)."""
