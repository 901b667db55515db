"""Provisioning's join on the fake tier: the token is a secret from the moment it is printed,
and only a plain worker join command kubegate can read is ever run on the new host."""

from __future__ import annotations

from commands import ProvisionNodeCommand
from playbooks.base import Step
from playbooks.join import TOKEN_CREATE
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
PRINTED = f"kubeadm join 10.0.0.1:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"


async def provisioning(shell: FakeShell) -> tuple[Run, list[str]]:
    kube = FakeKube(node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"))
    handle = cluster_of(kube, shell)
    seen = ProvisionSnapshot(handle.name, handle.inventory, await kube.list_nodes(), kube.version)
    command = ProvisionNodeCommand.model_validate({"node": "worker-9", "address": "10.0.0.9"})
    run = Run(decide_provision(command, seen), handle)
    secrets: list[str] = []
    run.ctx.secret = secrets.append
    return run, secrets


def step(run: Run, name: str) -> Step:
    return next(each for each in run.steps if each.name == name)


async def test_the_join_token_is_secret_before_anything_shows_it_and_joins_the_new_host() -> None:
    shell = FakeShell()
    shell.reply(TOKEN_CREATE.argv, Reply(stdout=PRINTED), node="cp-1")
    run, secrets = await provisioning(shell)
    result = await step(run, "join").run(run.ctx)
    assert result.ok and TOKEN not in result.summary
    assert TOKEN in secrets and "0123456789abcdef" in secrets
    joined = ("kubeadm", "join", "10.0.0.1:6443", "--token", TOKEN)
    assert [argv[:5] for argv in shell.ran("worker-9")] == [joined]
    assert [call.node for call in shell.calls] == ["cp-1", "worker-9"]


async def test_a_printed_line_that_is_not_a_plain_worker_join_is_never_run() -> None:
    shell = FakeShell()
    shell.reply(TOKEN_CREATE.argv, Reply(stdout=PRINTED.strip() + " --control-plane\n"))
    run, secrets = await provisioning(shell)
    result = await step(run, "join").run(run.ctx)
    assert not result.ok and "printed no join command kubegate can read" in result.summary
    assert shell.ran("worker-9") == [] and TOKEN in secrets


async def test_the_new_host_gets_swap_turned_off_now_and_in_fstab_before_it_is_a_node() -> None:
    shell = FakeShell()
    run, _ = await provisioning(shell)
    assert (await step(run, "swap-off").run(run.ctx)).ok
    [call, fstab] = shell.calls
    assert (call.node, call.argv) == ("worker-9", ("swapoff", "-a"))
    assert fstab.argv[-1] == "/etc/fstab"
