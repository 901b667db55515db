"""The Slack Web API methods kubegate calls, served over aiohttp at `/api/<method>`.

Answers the way slack.com does (HTTP 200 with `ok: false` for API errors, 429 with
`Retry-After` for rate limits) so that slack_sdk runs against it unmodified.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from testbed.slack.payloads import Workspace
from testbed.slack.transcript import JsonDict, SlackFile, Transcript

# Fields slack_sdk sends as JSON strings inside form or query parameters.
_JSON_FIELDS = ("blocks", "attachments", "files")


class ApiError(Exception):
    """An `ok: false` answer; the code is Slack's own error string."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class RateLimit:
    remaining: int
    retry_after: int


@dataclass
class Outage:
    """Every Web API call fails the way slack.com does when it is in trouble: 5xx with an HTML
    body (no JSON), or 429 `ratelimited` with `Retry-After` for all methods
    (https://api.slack.com/apis/rate-limits, "Responding to rate limiting conditions")."""

    status: int
    retry_after: int = 2

    def answer(self) -> web.Response:
        if self.status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        return web.Response(
            status=self.status,
            text="<html><body>Slack is having trouble. Please try again.</body></html>",
            content_type="text/html",
        )


class WebApi:
    """State and handlers behind the emulated Web API."""

    def __init__(
        self,
        *,
        transcript: Transcript,
        workspace: Workspace,
        bot_token: str,
        bot_user_id: str,
        users: dict[str, str],
        usergroups: dict[str, list[str]],
        base_url: Callable[[], str],
    ) -> None:
        self.transcript = transcript
        self.workspace = workspace
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.users = users
        self.usergroups = usergroups
        self.calls: Counter[str] = Counter()
        self._base_url = base_url
        self._rate_limits: dict[str, RateLimit] = {}
        self.outage: Outage | None = None
        self._uploads: dict[str, SlackFile] = {}
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "files.getUploadURLExternal": self.files_get_upload_url_external,
            "files.completeUploadExternal": self.files_complete_upload_external,
            "usergroups.users.list": self.usergroups_users_list,
            "users.info": self.users_info,
        }

    def rate_limit(self, method: str, times: int, retry_after: int = 1) -> None:
        self._rate_limits[method] = RateLimit(remaining=times, retry_after=retry_after)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/{method}", self.handle),
            web.get("/api/{method}", self.handle),
            web.post("/emulator/upload/{file_id}", self.upload),
        ]

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] += 1
        if self.outage is not None:
            return self.outage.answer()
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        limit = self._rate_limits.get(method)
        if limit is not None and limit.remaining > 0:
            limit.remaining -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(limit.retry_after)},
            )
        implementation = self._methods.get(method)
        if implementation is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            answer = implementation(await request_params(request))
        except ApiError as error:
            return web.json_response({"ok": False, "error": error.code})
        return web.json_response({"ok": True, **answer})

    async def upload(self, request: web.Request) -> web.Response:
        """Step 2 of files.uploadV2: the raw bytes, posted to the URL step 1 handed out."""
        pending = self._uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="file_not_found", content_type="text/plain")
        pending.content = await request.read()
        return web.Response(text=f"OK - {len(pending.content)}", content_type="text/plain")

    # --- methods -----------------------------------------------------------------------------

    def auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.workspace.team_domain}.slack.com/",
            "team": self.workspace.team_domain,
            "user": self.users.get(self.bot_user_id, "kubegate"),
            "team_id": self.workspace.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.workspace.bot_id,
            "is_enterprise_install": False,
        }

    def chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = required(params, "channel", "channel_not_found")
        text, blocks = message_content(params)
        message = self.transcript.post(
            channel=channel,
            user=self.bot_user_id,
            text=text,
            blocks=blocks,
            thread_ts=params.get("thread_ts") or None,
        )
        seen = {"type": "message", "bot_id": self.workspace.bot_id, **message.to_json()}
        return {"channel": channel, "ts": message.ts, "message": seen}

    def chat_update(self, params: JsonDict) -> JsonDict:
        channel = required(params, "channel", "channel_not_found")
        ts = required(params, "ts", "message_not_found")
        message = self.transcript.message(channel, ts)
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        # Slack keeps the blocks (and text) a chat.update leaves out.
        message.replace(text=params.get("text"), blocks=params.get("blocks"))
        self.transcript.changed()
        return {"channel": channel, "ts": ts, "text": message.text, "message": message.to_json()}

    def chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = required(params, "channel", "channel_not_found")
        user = required(params, "user", "user_not_found")
        text, blocks = message_content(params)
        message = self.transcript.post(
            channel=channel,
            user=self.bot_user_id,
            text=text,
            blocks=blocks,
            thread_ts=params.get("thread_ts") or None,
            visible_to=user,
        )
        return {"message_ts": message.ts}

    def files_get_upload_url_external(self, params: JsonDict) -> JsonDict:
        filename = required(params, "filename", "invalid_arguments")
        file_id = "F" + secrets.token_hex(5).upper()
        self._uploads[file_id] = SlackFile(id=file_id, filename=filename, title=filename)
        return {"upload_url": f"{self._base_url()}/emulator/upload/{file_id}", "file_id": file_id}

    def files_complete_upload_external(self, params: JsonDict) -> JsonDict:
        described = params.get("files")
        if not isinstance(described, list) or not described:
            raise ApiError("invalid_arguments")
        shared: list[SlackFile] = []
        for entry in described:
            uploaded = self._uploads.pop(str(entry.get("id")), None)
            if uploaded is None:
                raise ApiError("file_not_found")
            uploaded.title = entry.get("title") or uploaded.filename
            shared.append(uploaded)
        channel = params.get("channel_id") or params.get("channels", "").split(",")[0]
        if channel:
            # Slack shows shared files as a message by the bot, in the thread when one is given.
            thread_ts = params.get("thread_ts") or None
            for uploaded in shared:
                uploaded.channel, uploaded.thread_ts = channel, thread_ts
            self.transcript.post(
                channel=channel,
                user=self.bot_user_id,
                text=params.get("initial_comment") or "",
                thread_ts=thread_ts,
                files=shared,
            )
        return {"files": [{"id": f.id, "name": f.filename, "title": f.title} for f in shared]}

    def usergroups_users_list(self, params: JsonDict) -> JsonDict:
        group = required(params, "usergroup", "no_such_subteam")
        if group not in self.usergroups:
            raise ApiError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def users_info(self, params: JsonDict) -> JsonDict:
        user_id = required(params, "user", "user_not_found")
        if user_id not in self.users:
            raise ApiError("user_not_found")
        return {"user": self.user_profile(user_id)}

    def user_profile(self, user_id: str) -> JsonDict:
        name = self.users[user_id]
        real_name = name.replace(".", " ").title()
        return {
            "id": user_id,
            "team_id": self.workspace.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": user_id == self.bot_user_id,
            "tz": "Etc/UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": {"real_name": real_name, "display_name": name},
        }


async def request_params(request: web.Request) -> JsonDict:
    """Query, form, multipart and JSON parameters merged, as Slack accepts any of them."""
    params: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        body: Any = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for name in _JSON_FIELDS:
        if isinstance(params.get(name), str) and params[name]:
            try:
                params[name] = json.loads(params[name])
            except json.JSONDecodeError as error:
                raise ApiError(f"invalid_{name}") from error
    return params


def required(params: JsonDict, name: str, error: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(error)
    return str(value)


def message_content(params: JsonDict) -> tuple[str, list[JsonDict]]:
    text = str(params.get("text") or "")
    blocks = params.get("blocks") or []
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks")
    if not text and not blocks:
        raise ApiError("no_text")
    return text, blocks
