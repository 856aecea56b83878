"""The report's keys as operators read them, in chat (``/stats``) and on the console's charts alike."""

from __future__ import annotations

CHANNELS = {"contact": "员工添加", "group:invite": "群邀请", "group:qrcode": "扫码入群", "group:other": "群内发言",
            "unknown": "未知"}


def channel_label(channel: str) -> str:
    """``users.by_channel``'s key in Chinese: 「渠道 618直播」 for ``channel:618直播``, 「渠道码 douyin」 for a
    contact way's ``state:douyin``, 「扫码入群」 for ``group:qrcode`` …; an unknown key as it is."""
    if channel.startswith("channel:"):
        return f"渠道 {channel[8:]}"
    if channel.startswith("state:"):
        return f"渠道码 {channel[6:]}"
    return CHANNELS.get(channel, channel)
