"""A local Slack for tests, the demo and benchmarks: the Web API kubegate calls, and signed
slash commands and button clicks sent to the app as any user."""

from testbed.slack.delivery import AppResponse, SignedRequest
from testbed.slack.emulator import SlackEmulator
from testbed.slack.payloads import ButtonNotFoundError, Workspace
from testbed.slack.signing import SlackSecrets, generate_secrets, signature
from testbed.slack.transcript import Message, MessageVersion, SlackFile
from testbed.slack.users import SlackUser

__all__ = [
    "AppResponse",
    "ButtonNotFoundError",
    "Message",
    "MessageVersion",
    "SignedRequest",
    "SlackEmulator",
    "SlackFile",
    "SlackSecrets",
    "SlackUser",
    "Workspace",
    "generate_secrets",
    "signature",
]
