"""siyu (私域): a chat-ops bot for WeCom groups and 1:1 chats."""

__version__ = "0.1.0"
