"""`FaultSwitches`: the control endpoint in the testbed's process that applies faults, and ends
the lasting ones when told or when their `--for` is up."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from typing import Any

from aiohttp import web

from testbed.controlplanes import ControlPlaneError
from testbed.faults import control_planes, machines, slack_api
from testbed.faults.base import Ending, Fault, FaultError, World, parse_arguments

DECLARED: dict[str, Fault] = {**control_planes.FAULTS, **machines.FAULTS, **slack_api.FAULTS}


def ending_name(name: str, ending: Ending) -> str:
    return ending.name or f"{name}-clear"


def all_faults() -> dict[str, Fault]:
    """Every fault by name, the commands that end lasting ones included."""
    faults: dict[str, Fault] = {}
    for name, fault in DECLARED.items():
        faults[name] = fault
        if fault.ending is not None:
            help_text = fault.ending.help or f"end {name}"
            ending = Fault(help_text, fault.ending.switch, fault.ending.arguments)
            faults[ending_name(name, fault.ending)] = ending
    return faults


FAULTS = all_faults()


def fault_list() -> str:
    return "\n".join(f"  {fault.usage(name):<40} {fault.help}" for name, fault in FAULTS.items())


class FaultSwitches:
    def __init__(self, world: World) -> None:
        self.world = world
        self.token = secrets.token_urlsafe(24)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._endings: dict[str, asyncio.Task[None]] = {}  # "<fault> <args>" -> its timer
        self._ended_by = {
            ending_name(name, fault.ending): name
            for name, fault in DECLARED.items()
            if fault.ending is not None
        }

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
        for timer in self._endings.values():
            timer.cancel()
        await asyncio.gather(*self._endings.values(), return_exceptions=True)
        self._endings.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def apply(self, name: str, args: list[str]) -> str:
        fault = FAULTS.get(name)
        if fault is None:
            raise FaultError(f"no fault named {name!r}; the faults are:\n{fault_list()}")
        positional, duration = parse_arguments(name, fault, args)
        started_by = self._ended_by.get(name)
        if started_by is not None:  # an ending: its timer has nothing left to do
            self._cancel_timer(started_by, positional)
        try:
            message = await fault.switch_on(self.world, positional)
        except ControlPlaneError as error:
            raise FaultError(str(error)) from None
        if fault.ending is not None:
            self._cancel_timer(name, positional)
            if duration is not None:
                self._end_later(name, fault.ending, positional, duration)
                return f"{message} (it ends by itself in {duration:g} s)"
        return message

    def _timer_key(self, name: str, positional: list[str]) -> str:
        ending = DECLARED[name].ending
        kept = len(ending.arguments) if ending is not None else 0
        return " ".join([name, *positional[:kept]])

    def _cancel_timer(self, name: str, positional: list[str]) -> None:
        timer = self._endings.pop(self._timer_key(name, positional), None)
        if timer is not None:
            timer.cancel()

    def _end_later(self, name: str, ending: Ending, positional: list[str], after: float) -> None:
        key = self._timer_key(name, positional)

        async def end() -> None:
            await asyncio.sleep(after)
            self._endings.pop(key, None)
            await ending.switch(self.world, positional[: len(ending.arguments)])

        self._endings[key] = asyncio.create_task(end(), name=f"end {key}")

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
