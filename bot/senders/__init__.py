"""Senders deliver outbox rows: the console (default), WeCom's API, group robots."""
