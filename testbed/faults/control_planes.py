"""Faults of the control planes: an API server or an etcd member down, every API request
answering an error or hanging."""

from __future__ import annotations

from testbed.faults.base import Ending, Fault, FaultError, Switch, World

ERROR_CODES = (429, 500, 502, 503, 504)
COMPONENTS = {"apiserver": "kube-apiserver", "etcd": "etcd member"}


def hold_down(component: str) -> Switch:
    async def switch(world: World, args: list[str]) -> str:
        await world.control_planes.hold_down(args[0], component)
        fault = "apiserver" if component == "apiserver" else "etcd-member"
        return f"{COMPONENTS[component]} on {args[0]} stopped; down until `{fault}-up {args[0]}`"

    return switch


def release(component: str) -> Switch:
    async def switch(world: World, args: list[str]) -> str:
        await world.control_planes.release(args[0], component)
        return f"{COMPONENTS[component]} on {args[0]} may run again (its kubelet starts it)"

    return switch


async def answer_with_error(world: World, args: list[str]) -> str:
    if not args[0].isdigit() or int(args[0]) not in ERROR_CODES:
        raise FaultError(f"apiserver-error takes one of {', '.join(map(str, ERROR_CODES))}")
    world.apiserver.fail_status = int(args[0])
    return f"every API request (health checks aside) answers {args[0]}"


async def answer_normally(world: World, _args: list[str]) -> str:
    world.apiserver.fail_status = None
    return "API requests are answered normally again"


async def hang(world: World, _args: list[str]) -> str:
    world.apiserver.hang = True
    return "every API request (health checks aside) waits without an answer"


async def stop_hanging(world: World, _args: list[str]) -> str:
    world.apiserver.hang = False
    return "API requests are answered again"


FAULTS = {
    "etcd-member-down": Fault(
        "stop that control plane's etcd member and keep it stopped",
        hold_down("etcd"),
        ("NODE",),
        ending=Ending(release("etcd"), "etcd-member-up", ("NODE",), "let that member run again"),
    ),
    "apiserver-down": Fault(
        "stop that control plane's kube-apiserver (connection refused), keep it stopped",
        hold_down("apiserver"),
        ("NODE",),
        ending=Ending(
            release("apiserver"),
            "apiserver-up",
            ("NODE",),
            "let that kube-apiserver start again (serving after its startup time)",
        ),
    ),
    "apiserver-error": Fault(
        "every API request answers CODE (429, 500, 502, 503 or 504)",
        answer_with_error,
        ("CODE",),
        ending=Ending(answer_normally),
    ),
    "apiserver-hang": Fault(
        "every API request waits without an answer", hang, ending=Ending(stop_hanging)
    ),
}
