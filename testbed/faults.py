"""Fault switches of a running testbed: `python -m testbed fault --dir DIR NAME [ARGS]`.

The testbed serves them on a loopback control endpoint (URL and token in testbed.json under
`faults`); the command posts `{"name": ..., "args": [...]}` there. Each fault is one entry in
`FAULTS`: a name, its usage, and what it does to the world; adding one is adding an entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import re
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from testbed.apiserver import FakeApiServer
from testbed.controlplanes import ControlPlaneError, ControlPlanes

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
ERROR_CODES = (429, 500, 502, 503, 504)


class FaultError(ValueError):
    """A fault asked for wrongly: the message says what to ask instead."""


@dataclass
class World:
    """What faults act on."""

    apiserver: FakeApiServer
    control_planes: ControlPlanes


Action = Callable[["FaultSwitches", list[str]], Awaitable[str]]


@dataclass(frozen=True)
class Fault:
    usage: str
    help: str
    action: Action


def parse_duration(text: str) -> float:
    """`20s`, `500ms`, `2m` -> seconds."""
    match = DURATION.match(text)
    if match is None:
        raise FaultError(f"{text!r} is not a duration (like 20s, 500ms or 2m)")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _options(args: list[str], usage: str) -> tuple[list[str], float | None]:
    """Positional arguments and the `--for DURATION`, if any."""
    positional: list[str] = []
    duration: float | None = None
    words = iter(args)
    for word in words:
        if word == "--for":
            value = next(words, None)
            if value is None:
                raise FaultError(f"--for needs a duration; usage: {usage}")
            duration = parse_duration(value)
        elif word.startswith("--for="):
            duration = parse_duration(word.removeprefix("--for="))
        elif word.startswith("-"):
            raise FaultError(f"unknown option {word}; usage: {usage}")
        else:
            positional.append(word)
    return positional, duration


def _one_node(name: str, args: list[str]) -> str:
    usage = FAULTS[name].usage
    positional, duration = _options(args, usage)
    if len(positional) != 1 or duration is not None:
        raise FaultError(f"usage: {usage}")
    return positional[0]


def _component_switch(component: str, *, down: bool) -> Action:
    async def switch(switches: FaultSwitches, args: list[str]) -> str:
        name = ("apiserver" if component == "apiserver" else "etcd-member") + (
            "-down" if down else "-up"
        )
        node = _one_node(name, args)
        planes = switches.world.control_planes
        if down:
            await planes.hold_down(node, component)
            what = "stopped; it stays down until"
        else:
            await planes.release(node, component)
            what = "may run again (its kubelet starts it) after"
        other = name.replace("-down", "-up") if down else name
        what_name = "kube-apiserver" if component == "apiserver" else "etcd member"
        return f"{what_name} on {node} {what} `{other} {node}`"

    return switch


async def _apiserver_error(switches: FaultSwitches, args: list[str]) -> str:
    usage = FAULTS["apiserver-error"].usage
    positional, duration = _options(args, usage)
    if len(positional) != 1 or not positional[0].isdigit():
        raise FaultError(f"usage: {usage}")
    code = int(positional[0])
    if code not in ERROR_CODES:
        raise FaultError(f"apiserver-error takes one of {', '.join(map(str, ERROR_CODES))}")
    apiserver = switches.world.apiserver
    apiserver.fail_status = code

    def clear() -> None:
        apiserver.fail_status = None

    switches.schedule_clear("apiserver-error", duration, clear)
    return f"every API server answers {code}" + _until(duration, "apiserver-error-clear")


async def _apiserver_error_clear(switches: FaultSwitches, args: list[str]) -> str:
    _options(args, FAULTS["apiserver-error-clear"].usage)
    switches.world.apiserver.fail_status = None
    switches.cancel_clear("apiserver-error")
    return "API servers answer normally"


async def _apiserver_hang(switches: FaultSwitches, args: list[str]) -> str:
    usage = FAULTS["apiserver-hang"].usage
    positional, duration = _options(args, usage)
    if positional:
        raise FaultError(f"usage: {usage}")
    apiserver = switches.world.apiserver
    apiserver.hang = True

    def clear() -> None:
        apiserver.hang = False

    switches.schedule_clear("apiserver-hang", duration, clear)
    return "every API request waits" + _until(duration, "apiserver-hang-clear")


async def _apiserver_hang_clear(switches: FaultSwitches, args: list[str]) -> str:
    _options(args, FAULTS["apiserver-hang-clear"].usage)
    switches.world.apiserver.hang = False
    switches.cancel_clear("apiserver-hang")
    return "API requests are answered again"


def _until(duration: float | None, clear: str) -> str:
    return f" for {duration:g} s" if duration is not None else f" until `{clear}`"


FAULTS: dict[str, Fault] = {
    "etcd-member-down": Fault(
        "etcd-member-down NODE",
        "stop that control plane's etcd member and keep it stopped",
        _component_switch("etcd", down=True),
    ),
    "etcd-member-up": Fault(
        "etcd-member-up NODE",
        "let that etcd member run again",
        _component_switch("etcd", down=False),
    ),
    "apiserver-down": Fault(
        "apiserver-down NODE",
        "stop that control plane's kube-apiserver (connection refused) and keep it stopped",
        _component_switch("apiserver", down=True),
    ),
    "apiserver-up": Fault(
        "apiserver-up NODE",
        "let that kube-apiserver start again (serving after its startup time)",
        _component_switch("apiserver", down=False),
    ),
    "apiserver-error": Fault(
        "apiserver-error CODE [--for DURATION]",
        "every API request (not health checks) answers CODE (429, 500, 502, 503 or 504)",
        _apiserver_error,
    ),
    "apiserver-error-clear": Fault(
        "apiserver-error-clear", "end apiserver-error", _apiserver_error_clear
    ),
    "apiserver-hang": Fault(
        "apiserver-hang [--for DURATION]",
        "every API request (not health checks) waits without an answer",
        _apiserver_hang,
    ),
    "apiserver-hang-clear": Fault(
        "apiserver-hang-clear", "end apiserver-hang", _apiserver_hang_clear
    ),
}


def fault_list() -> str:
    return "\n".join(f"  {f.usage:<40} {f.help}" for f in FAULTS.values())


class FaultSwitches:
    """The control endpoint in the testbed's process."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.token = secrets.token_urlsafe(24)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._clears: dict[str, asyncio.Task[None]] = {}

    def description(self) -> dict[str, Any]:
        return {"url": self.url, "token": self.token, "names": sorted(FAULTS)}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/faults", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        for task in self._clears.values():
            task.cancel()
        await asyncio.gather(*self._clears.values(), return_exceptions=True)
        self._clears.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def apply(self, name: str, args: list[str]) -> str:
        fault = FAULTS.get(name)
        if fault is None:
            raise FaultError(f"no fault named {name!r}; the faults are:\n{fault_list()}")
        try:
            return await fault.action(self, args)
        except ControlPlaneError as error:
            raise FaultError(str(error)) from None

    def schedule_clear(self, key: str, duration: float | None, clear: Callable[[], None]) -> None:
        """Clear the fault after `duration` seconds (never when None); a newer one replaces."""
        self.cancel_clear(key)
        if duration is None:
            return

        async def later() -> None:
            await asyncio.sleep(duration)
            clear()
            self._clears.pop(key, None)

        self._clears[key] = asyncio.create_task(later(), name=f"clear-{key}")

    def cancel_clear(self, key: str) -> None:
        task = self._clears.pop(key, None)
        if task is not None:
            task.cancel()

    async def _post(self, request: web.Request) -> web.Response:
        presented = request.headers.get("X-Testbed-Token", "")
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            return web.json_response({"error": "bad token"}, status=401)
        with contextlib.suppress(ValueError):
            body = await request.json()
            name, args = body.get("name"), body.get("args", [])
            if isinstance(name, str) and isinstance(args, list):
                try:
                    message = await self.apply(name, [str(a) for a in args])
                except FaultError as error:
                    return web.json_response({"error": str(error)}, status=400)
                return web.json_response({"fault": name, "message": message})
        return web.json_response({"error": 'expected {"name": NAME, "args": [...]}'}, status=400)


def send_fault(directory: Path, name: str, args: list[str]) -> str:
    """Ask the running testbed in `directory` for a fault; its answer, or FaultError."""
    description = directory / "testbed.json"
    try:
        endpoint = json.loads(description.read_text())["faults"]
    except (OSError, ValueError, KeyError):
        raise FaultError(f"no running testbed described in {description}") from None
    request = urllib.request.Request(
        endpoint["url"] + "/faults",
        data=json.dumps({"name": name, "args": args}).encode(),
        headers={"Content-Type": "application/json", "X-Testbed-Token": endpoint["token"]},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise FaultError(json.loads(error.read() or b"{}").get("error", str(error))) from None
    except OSError as error:
        raise FaultError(f"the testbed at {endpoint['url']} does not answer: {error}") from None
    return str(answer["message"])


def add_command(sub: Any) -> None:
    """The `fault` subcommand of `python -m testbed`."""
    fault = sub.add_parser(
        "fault",
        help="switch a fault on or off in a running testbed",
        description="faults:\n" + fault_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("--dir", required=True, help="the directory given to `up`")
    fault.add_argument("name", help="the fault, e.g. etcd-member-down")
    fault.add_argument("args", nargs=argparse.REMAINDER, help="its arguments, e.g. cp-2")


def run_command(args: argparse.Namespace) -> None:
    try:
        print(send_fault(Path(args.dir).resolve(), args.name, list(args.args)))
    except FaultError as error:
        print(f"testbed fault: {error}", file=sys.stderr)
        sys.exit(2)
