"""Provisioning's steps on the fake tier: the token is a secret from the moment it is printed,
only a plain worker join command kubegate can read is used, the JoinConfiguration that carries
it is removed and the token deleted whatever the join did, and leftovers are found by name."""

from __future__ import annotations

import pytest

from commands import ProvisionNodeCommand
from playbooks import remote as remote_module
from playbooks.base import Step
from playbooks.join import JOIN_CONFIG, REMOVE_CONFIG, WRITE_TEMP, token_create
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from playbooks.remote import LEFTOVER, running_file
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
PRINTED = f"kubeadm join 10.0.0.1:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"
CREATE = token_create("worker-9").argv
DELETE = ("kubeadm", "token", "delete", "abcdef")
JOIN = ("kubeadm", "join", "--config", JOIN_CONFIG)


async def provisioning(shell: FakeShell, **options: object) -> tuple[Run, list[str]]:
    kube = FakeKube(node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"))
    handle = cluster_of(kube, shell)
    seen = ProvisionSnapshot(handle.name, handle.inventory, await kube.list_nodes(), kube.version)
    command = ProvisionNodeCommand.model_validate(
        {"node": "worker-9", "address": "10.0.0.9", **options}
    )
    run = Run(decide_provision(command, seen), handle)
    secrets: list[str] = []
    run.ctx.secret = secrets.append
    return run, secrets


def step(run: Run, name: str) -> Step:
    return next(each for each in run.steps if each.name == name)


async def test_the_join_token_is_secret_before_anything_shows_it_and_is_deleted_after() -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    run, secrets = await provisioning(shell, taints=["dedicated=batch:NoSchedule"])
    result = await step(run, "join").run(run.ctx)
    assert result.ok and TOKEN not in result.summary
    assert TOKEN in secrets and "0123456789abcdef" in secrets
    write, place, join, remove = shell.ran("worker-9")
    assert write[:2] == ("sh", "-c") and TOKEN in write[-1]
    assert '"name": "worker-9"' in write[-1] and '"key": "dedicated"' in write[-1]
    # Into place by path: the token is never on the command line sudo runs (and logs).
    assert write[2] == WRITE_TEMP and place[-1] == JOIN_CONFIG and TOKEN not in " ".join(place)
    assert (join, remove) == (JOIN, REMOVE_CONFIG.argv)
    assert shell.ran("cp-1") == [CREATE, DELETE]


async def test_a_failed_join_still_removes_the_file_and_deletes_the_token() -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    shell.reply(JOIN, Reply(exit_status=1, stderr="[ERROR Swap]: running with swap on"))
    run, _ = await provisioning(shell)
    result = await step(run, "join").run(run.ctx)
    assert not result.ok and "exit 1" in result.summary
    assert shell.ran("worker-9")[-1] == REMOVE_CONFIG.argv
    assert shell.ran("cp-1")[-1] == DELETE


async def test_a_printed_line_that_is_not_a_plain_worker_join_is_never_run() -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED.strip() + " --control-plane\n"))
    run, secrets = await provisioning(shell)
    result = await step(run, "join").run(run.ctx)
    assert not result.ok and "printed no join command kubegate can read" in result.summary
    assert shell.ran("worker-9") == [] and TOKEN in secrets


async def test_tokens_left_by_an_interrupted_join_are_found_by_description_and_deleted() -> None:
    shell = FakeShell()
    listed = (
        "TOKEN                     TTL  EXPIRES  USAGES   DESCRIPTION\n"
        f"{TOKEN}   59m  2026-11-30T06:00:00Z  authentication,signing   "
        "kubegate provision worker-9\n"
        "zzzzzz.0123456789abcdef   59m  2026-11-30T06:00:00Z  authentication,signing   <none>\n"
    )
    shell.reply(("kubeadm", "token", "list"), Reply(stdout=listed), node="cp-1")
    run, secrets = await provisioning(shell)
    result = await step(run, "delete-join-tokens").run(run.ctx)
    assert result.ok and "1 left over, deleted" in result.summary
    assert shell.ran("cp-1")[-1] == DELETE
    assert TOKEN in secrets and "zzzzzz.0123456789abcdef" in secrets
    assert TOKEN not in result.summary


async def test_the_new_host_gets_swap_turned_off_now_and_in_fstab_before_it_is_a_node() -> None:
    shell = FakeShell()
    run, _ = await provisioning(shell)
    assert (await step(run, "swap-off").run(run.ctx)).ok
    [call, fstab] = shell.calls
    assert (call.node, call.argv) == ("worker-9", ("swapoff", "-a"))
    assert fstab.argv[-1] == "/etc/fstab"


# The leftover check of the join's running file on the new host (job 1, step `join`).
JOIN_LEFTOVER = ("sh", "-c", LEFTOVER, "sh", running_file(1, "join"))


async def test_after_a_restart_a_join_still_running_is_awaited_then_judged_by_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote_module, "LEFTOVER_POLL_S", 0.0)
    shell = FakeShell()
    running = Reply(stdout=f"running 4242 kubeadm join --config {JOIN_CONFIG}\n")
    shell.reply(JOIN_LEFTOVER, running, Reply(stdout="none\n"))
    run, _ = await provisioning(shell)
    assert isinstance(run.cluster.kube, FakeKube)
    run.cluster.kube.add(node("worker-9", internal_ip="10.0.0.9"))
    join = step(run, "join")
    await join.wait_for_leftovers(run.ctx)
    done = await join.already_done(run.ctx)
    assert done is not None and done.ok and "had already joined" in done.summary
    assert shell.ran("worker-9") == [JOIN_LEFTOVER, JOIN_LEFTOVER, REMOVE_CONFIG.argv]
    assert f"`kubeadm join --config {JOIN_CONFIG}` kubegate started" in run.said[0]


async def test_after_a_restart_a_join_that_never_took_effect_runs_again_without_its_file() -> None:
    shell = FakeShell()
    shell.reply(JOIN_LEFTOVER, Reply(stdout="none\n"))
    run, _ = await provisioning(shell)
    join = step(run, "join")
    await join.wait_for_leftovers(run.ctx)
    assert await join.already_done(run.ctx) is None
    assert shell.ran("worker-9") == [JOIN_LEFTOVER, REMOVE_CONFIG.argv]
    assert run.said == []
