"""Inbound channels: parsing WeCom app XML, 智能机器人 JSON and generic webhooks; enriching events."""
