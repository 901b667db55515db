"""Faults of the machines around the cluster: a node's sshd down, Vault sealed or hanging, a
shimmed command that hangs on a node."""

from __future__ import annotations

from testbed.faults.base import Ending, Fault, World


async def sshd_down(world: World, args: list[str]) -> str:
    node = world.node(args[0])
    await world.machines().kill_sshd(node)
    return f"sshd on {node} killed with its sessions; connections refused until `sshd-up {node}`"


async def sshd_up(world: World, args: list[str]) -> str:
    node = world.node(args[0])
    await world.machines().restart_sshd(node)
    return f"sshd on {node} serves again, on its old port and host key"


async def seal(world: World, _args: list[str]) -> str:
    world.secrets().sealed = True
    return "Vault is sealed: 503 to every request but sys/health and sys/seal-status"


async def unseal(world: World, _args: list[str]) -> str:
    world.secrets().sealed = False
    return "Vault is unsealed"


async def vault_hang(world: World, _args: list[str]) -> str:
    world.secrets().hang()
    return "Vault hangs: it takes every request but sys/health and sys/seal-status and answers none"


async def vault_answer(world: World, _args: list[str]) -> str:
    world.secrets().stop_hanging()
    return "Vault answers again, the held requests first"


async def hang_command(world: World, args: list[str]) -> str:
    node, command = world.node(args[0]), " ".join(args[1:])
    world.machines().hang(node, command)
    return f"`{command}` on {node} hangs (argv prefix) until `shim-hang-clear {node}`"


async def clear_hangs(world: World, args: list[str]) -> str:
    node = world.node(args[0])
    world.machines().clear_faults(node)
    return f"commands on {node} run again"


FAULTS = {
    "sshd-down": Fault(
        "kill that node's sshd and its sessions",
        sshd_down,
        ("NODE",),
        ending=Ending(sshd_up, "sshd-up", ("NODE",), "start that node's sshd again"),
    ),
    "vault-seal": Fault(
        "seal Vault (503 to everything)", seal, ending=Ending(unseal, "vault-unseal")
    ),
    "vault-hang": Fault(
        "Vault takes requests and answers none (its storage hangs)",
        vault_hang,
        ending=Ending(vault_answer, help="let Vault answer again"),
    ),
    "shim-hang": Fault(
        "a command on that node (matched by argv prefix, e.g. `kubeadm upgrade`) hangs",
        hang_command,
        ("NODE", "COMMAND"),
        more_arguments=True,
        ending=Ending(clear_hangs, arguments=("NODE",), help="let that node's commands run"),
    ),
}
