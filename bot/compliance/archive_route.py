"""``POST /archive/import``: a signed batch of message-archive records (JSONL), refused whole if a line is bad."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.compliance import archive
from bot.signing import signed_by

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.compliance.service import Moderation

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def archive_import(app: BotApp, service: Moderation) -> Handler:
    """The aiohttp handler of the route (``feature.install`` adds it to ``app.http_routes``)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        secret = app.config.moderation.archive_secret.get_secret_value()
        if not secret:
            return web.json_response({"error": "archive import is not configured (moderation.archive_secret)"},
                                     status=404)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"body larger than {app.config.server.max_body_bytes} bytes "
                                               "(server.max_body_bytes); send smaller batches"}, status=413)
        if not signed_by(secret, body, request.headers.get("X-Siyu-Signature", "")):
            app.metrics.rejected.labels("archive", "signature").inc()
            return web.json_response({"error": "missing or wrong X-Siyu-Signature (sha256=<hex of HMAC-SHA256>)"},
                                     status=401)
        records, problems = archive.parse_lines(body.splitlines())
        if problems:
            return web.json_response({"error": "the batch was refused: fix these lines and send it again; "
                                               "nothing was stored",
                                      "problems": [p.to_json() for p in problems[:100]]}, status=400)
        if not records:
            return web.json_response({"error": "no records: send one JSON record per line"}, status=400)
        report = await archive.import_records(app, service, records)
        return web.json_response(report.to_json())

    return handle
