"""The bodies Slack sends to an app: slash command forms and block_actions payloads.

Pure functions over the transcript's messages; signing and sending live in `users.py`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

from testbed.slack.transcript import JsonDict, Message


@dataclass(frozen=True)
class Workspace:
    """The fixed identity of the emulated team and the app installed in it."""

    team_id: str
    team_domain: str
    api_app_id: str
    verification_token: str
    bot_id: str


class ButtonNotFoundError(LookupError):
    """A test asked to click a button the message does not show."""


def trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def slash_command_form(
    *,
    workspace: Workspace,
    command_line: str,
    user_id: str,
    user_name: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
) -> bytes:
    """`/kube cordon worker-2` as the form Slack posts, split into command and text."""
    command, _, text = command_line.strip().partition(" ")
    if not command.startswith("/"):
        raise ValueError(f"a slash command starts with '/': {command_line!r}")
    form = {
        "token": workspace.verification_token,
        "team_id": workspace.team_id,
        "team_domain": workspace.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text.strip(),
        "api_app_id": workspace.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(),
    }
    return urlencode(form).encode()


def buttons(blocks: list[JsonDict]) -> Iterator[tuple[str | None, JsonDict]]:
    """Every button in the blocks with its block_id, in display order."""
    for block in blocks:
        candidates = [*block.get("elements", []), block.get("accessory") or {}]
        for element in candidates:
            if isinstance(element, dict) and element.get("type") == "button":
                yield block.get("block_id"), element


def find_button(blocks: list[JsonDict], label: str) -> tuple[str | None, JsonDict]:
    """The button whose visible text is `label`; the error lists what is there instead."""
    found = list(buttons(blocks))
    for block_id, button in found:
        if button.get("text", {}).get("text") == label:
            return block_id, button
    shown = [b.get("text", {}).get("text") for _, b in found]
    raise ButtonNotFoundError(f"no button labelled {label!r}; the message shows {shown}")


def find_action(blocks: list[JsonDict], action_id: str) -> tuple[str | None, JsonDict] | None:
    for block_id, button in buttons(blocks):
        if button.get("action_id") == action_id:
            return block_id, button
    return None


def block_actions_body(
    *,
    workspace: Workspace,
    user_id: str,
    user_name: str,
    message: Message,
    channel_name: str,
    block_id: str,
    button: JsonDict,
    response_url: str,
) -> bytes:
    """A button click as the `payload` form field Slack posts to the interactivity URL."""
    is_ephemeral = message.visible_to is not None
    action: JsonDict = {
        "action_id": button["action_id"],
        "block_id": block_id,
        "text": {
            "type": "plain_text",
            "text": button.get("text", {}).get("text", ""),
            "emoji": True,
        },
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    for optional in ("value", "style"):
        if optional in button:
            action[optional] = button[optional]
    payload: JsonDict = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_name,
            "name": user_name,
            "team_id": workspace.team_id,
        },
        "api_app_id": workspace.api_app_id,
        "token": workspace.verification_token,
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id(),
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel_name},
        "response_url": response_url,
        "actions": [action],
    }
    # Slack leaves the message out of clicks on ephemerals: the app never sees their content.
    if not is_ephemeral:
        payload["message"] = message_as_seen(message, workspace.bot_id)
        payload["state"] = {"values": {}}
    return urlencode({"payload": json.dumps(payload)}).encode()


def message_as_seen(message: Message, bot_id: str) -> JsonDict:
    """A message in the shape Slack embeds it in interaction payloads."""
    seen: JsonDict = {
        "type": "message",
        "bot_id": bot_id,
        "user": message.user,
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks,
    }
    if message.thread_ts is not None:
        seen["thread_ts"] = message.thread_ts
    return seen
