"""What every fault is made of: the world it acts on, its arguments, and `--for DURATION`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from testbed.apiserver import FakeApiServer
from testbed.controlplanes import ControlPlanes
from testbed.fleet import Fleet
from testbed.slack.web_api import WebApi
from testbed.vault import FakeVault

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


class FaultError(ValueError):
    """A fault asked for wrongly: the message says what to ask instead."""


@dataclass
class World:
    """What faults act on; the machines are absent from an API-only (--no-fleet) testbed."""

    apiserver: FakeApiServer
    control_planes: ControlPlanes
    fleet: Fleet | None = None
    vault: FakeVault | None = None
    slack: WebApi | None = None  # the Slack emulator's Web API, for the slack-error fault

    def machines(self) -> Fleet:
        if self.fleet is None:
            raise FaultError("this testbed has no machines (it was started with --no-fleet)")
        return self.fleet

    def node(self, name: str) -> str:
        fleet = self.machines()
        if name not in fleet.nodes:
            raise FaultError(f"no node {name!r} in this testbed (nodes: {', '.join(fleet.nodes)})")
        return name

    def slack_api(self) -> WebApi:
        if self.slack is None:
            raise FaultError("this testbed's fault switches were started without Slack")
        return self.slack

    def secrets(self) -> FakeVault:
        if self.vault is None:
            raise FaultError("this testbed has no Vault (it was started with --no-fleet)")
        return self.vault


# A fault's doing: given the world and its positional arguments, do it and say what was done.
Switch = Callable[[World, list[str]], Awaitable[str]]


@dataclass(frozen=True)
class Ending:
    """How a lasting fault ends: its own command (`<fault>-clear` unless named), or `--for`."""

    switch: Switch
    name: str | None = None
    arguments: tuple[str, ...] = ()  # the first of the fault's own, when it has any
    help: str = ""


@dataclass(frozen=True)
class Fault:
    help: str
    switch_on: Switch
    arguments: tuple[str, ...] = ()  # names of its positional arguments, for its usage
    more_arguments: bool = False  # the last one may be several words (a command line)
    ending: Ending | None = None  # with one, it may be given `--for DURATION`

    def usage(self, name: str) -> str:
        words = [name, *self.arguments]
        if self.more_arguments:
            words[-1] += "..."
        if self.ending is not None:
            words.append("[--for DURATION]")
        return " ".join(words)


def parse_duration(text: str) -> float:
    """`20s`, `500ms`, `2m` -> seconds."""
    match = DURATION.match(text)
    if match is None:
        raise FaultError(f"{text!r} is not a duration (like 20s, 500ms or 2m)")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def parse_arguments(name: str, fault: Fault, args: list[str]) -> tuple[list[str], float | None]:
    """Its positional arguments and the `--for DURATION`, if any, or FaultError with usage."""
    usage = f"usage: {fault.usage(name)}"
    positional: list[str] = []
    duration: float | None = None
    words = iter(args)
    for word in words:
        if word == "--for" and fault.ending is not None:
            value = next(words, None)
            if value is None:
                raise FaultError(f"--for needs a duration; {usage}")
            duration = parse_duration(value)
        elif word.startswith("--for=") and fault.ending is not None:
            duration = parse_duration(word.removeprefix("--for="))
        elif word.startswith("-") and not (fault.more_arguments and positional):
            raise FaultError(f"unknown option {word}; {usage}")
        else:
            positional.append(word)
    wanted = len(fault.arguments)
    if len(positional) < wanted or (len(positional) > wanted and not fault.more_arguments):
        raise FaultError(usage)
    return positional, duration
