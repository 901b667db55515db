"""Response URLs: where an app answers a slash command or a click after the fact.

Each request the emulator sends gets its own URL; what the app posts there lands in the
transcript as Slack would show it (ephemeral, in channel, or replacing the clicked message).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from testbed.slack.transcript import JsonDict, Message, Transcript

# Slack lets an app use a response_url five times.
MAX_USES = 5


@dataclass
class ResponseTarget:
    """Who asked, where, and (for clicks) which message the click came from."""

    channel: str
    user: str
    message: Message | None = None
    uses: int = 0


class ResponseUrls:
    """Issues response URLs and applies what apps post to them."""

    def __init__(self, *, transcript: Transcript, bot_user_id: str) -> None:
        self.transcript = transcript
        self.bot_user_id = bot_user_id
        self._targets: dict[str, ResponseTarget] = {}

    def issue(self, base_url: str, target: ResponseTarget) -> str:
        token = secrets.token_urlsafe(12)
        self._targets[token] = target
        return f"{base_url}/emulator/response/{token}"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/emulator/response/{token}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        target = self._targets.get(request.match_info["token"])
        if target is None:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if target.uses >= MAX_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        target.uses += 1
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self.apply(target, body, via="response_url")
        return web.json_response({"ok": True})

    def apply(self, target: ResponseTarget, body: JsonDict, *, via: str) -> None:
        """Show an app's answer the way the Slack client would."""
        original = target.message
        if body.get("delete_original") and original is not None:
            original.deleted = True
            self.transcript.changed()
            return
        text = str(body.get("text") or "")
        blocks = body.get("blocks")
        if body.get("replace_original") and original is not None:
            original.replace(text=text, blocks=blocks if isinstance(blocks, list) else [])
            self.transcript.changed()
            return
        if not text and not blocks:
            return
        in_channel = body.get("response_type") == "in_channel"
        self.transcript.post(
            channel=target.channel,
            user=self.bot_user_id,
            text=text,
            blocks=blocks if isinstance(blocks, list) else [],
            thread_ts=body.get("thread_ts"),
            visible_to=None if in_channel else target.user,
            via=via,
        )
