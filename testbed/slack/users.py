"""A workspace member who types slash commands and clicks buttons, as tests drive them."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from testbed.slack.delivery import AppResponse
from testbed.slack.payloads import block_actions_body, find_action, find_button, slash_command_form
from testbed.slack.responses import ResponseTarget
from testbed.slack.transcript import JsonDict, Message

if TYPE_CHECKING:
    from testbed.slack.emulator import SlackEmulator


class SlackUser:
    """One member of the emulated workspace; every request it sends is signed like Slack's.

    The knobs on each call exist for failure tests: `timestamp` (e.g. ten minutes ago),
    `signing_secret` (a wrong one), `retry_num`/`retry_reason` (Slack's redelivery headers).
    """

    def __init__(self, emulator: SlackEmulator, user_id: str, name: str) -> None:
        self.emulator = emulator
        self.id = user_id
        self.name = name

    def __repr__(self) -> str:
        return f"SlackUser({self.id!r}, {self.name!r})"

    async def slash(
        self,
        command_line: str,
        *,
        channel: str,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> AppResponse:
        """Type `command_line` (e.g. "/kube cordon worker-2") in `channel`.

        A 200 answer with a body is recorded as Slack shows it: an ephemeral to this user,
        or a channel message when it says `response_type: in_channel`.
        """
        emu = self.emulator
        target = ResponseTarget(channel=channel, user=self.id)
        body = slash_command_form(
            workspace=emu.workspace,
            command_line=command_line,
            user_id=self.id,
            user_name=self.name,
            channel_id=channel,
            channel_name=emu.channel_name(channel),
            response_url=emu.responses.issue(emu.url, target),
        )
        response = await emu.delivery.send_signed(
            body,
            timestamp=timestamp,
            signing_secret=signing_secret,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )
        if response.status == 200 and response.body:
            emu.responses.apply(target, ack_as_message(response), via="ack")
        return response

    async def click(
        self,
        *,
        channel: str,
        message_ts: str,
        label: str,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> AppResponse:
        """Click the button showing `label` in the message as it reads now."""
        message = self.visible_message(channel, message_ts)
        block_id, button = find_button(message.blocks, label)
        return await self._send_click(
            message,
            block_id or _random_block_id(),
            button,
            timestamp=timestamp,
            signing_secret=signing_secret,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    async def click_action(
        self,
        *,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> AppResponse:
        """Send a click on `action_id` even if the message no longer shows that button.

        That is what a client with a stale view of an updated message does.
        """
        message = self.visible_message(channel, message_ts)
        found = find_action(message.blocks, action_id)
        found_block_id, button = found if found else (None, {"action_id": action_id})
        button = {"type": "button", "text": {"type": "plain_text", "text": action_id}, **button}
        if value is not None:
            button["value"] = value
        return await self._send_click(
            message,
            block_id or found_block_id or _random_block_id(),
            button,
            timestamp=timestamp,
            signing_secret=signing_secret,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    def visible_message(self, channel: str, ts: str) -> Message:
        """The message with `ts` in `channel` that this user can see, ephemerals included."""
        transcript = self.emulator.transcript
        message = transcript.message(channel, ts)
        if message is None or message.deleted:
            message = transcript.ephemeral(channel, ts, user=self.id)
        if message is None or message.deleted:
            raise LookupError(f"{self.name} sees no message {ts} in {channel}")
        return message

    async def _send_click(
        self,
        message: Message,
        block_id: str,
        button: JsonDict,
        *,
        timestamp: int | None,
        signing_secret: str | None,
        retry_num: int | None,
        retry_reason: str,
    ) -> AppResponse:
        emu = self.emulator
        target = ResponseTarget(channel=message.channel, user=self.id, message=message)
        body = block_actions_body(
            workspace=emu.workspace,
            user_id=self.id,
            user_name=self.name,
            message=message,
            channel_name=emu.channel_name(message.channel),
            block_id=block_id,
            button=button,
            response_url=emu.responses.issue(emu.url, target),
        )
        return await emu.delivery.send_signed(
            body,
            timestamp=timestamp,
            signing_secret=signing_secret,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )


def ack_as_message(response: AppResponse) -> JsonDict:
    """An app's synchronous answer as a message body; plain text becomes the message text."""
    parsed = response.json
    if isinstance(parsed, dict):
        return parsed
    return {"text": response.body}


def _random_block_id() -> str:
    # Slack assigns a random block_id when the app set none.
    return secrets.token_urlsafe(4)
