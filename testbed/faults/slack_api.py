"""Faults of Slack itself: every Web API call kubegate makes answers 500 (or 429 with
Retry-After), as during a Slack incident (https://status.slack.com/ lists such outages)."""

from __future__ import annotations

from testbed.faults.base import Ending, Fault, FaultError, World
from testbed.slack.web_api import Outage

SLACK_ERROR_CODES = (429, 500, 502, 503)


async def slack_error(world: World, args: list[str]) -> str:
    if not args[0].isdigit() or int(args[0]) not in SLACK_ERROR_CODES:
        codes = ", ".join(map(str, SLACK_ERROR_CODES))
        raise FaultError(f"slack-error takes one of {codes}")
    world.slack_api().outage = Outage(status=int(args[0]))
    return f"every Slack Web API call answers {args[0]}"


async def slack_ok(world: World, _args: list[str]) -> str:
    world.slack_api().outage = None
    return "Slack Web API calls are answered normally again"


FAULTS = {
    "slack-error": Fault(
        "every Slack Web API call answers CODE (429 with Retry-After, 500, 502 or 503)",
        slack_error,
        ("CODE",),
        ending=Ending(slack_ok),
    ),
}
