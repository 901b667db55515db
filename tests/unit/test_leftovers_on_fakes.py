"""Running files on the fake tier, beyond the upgrade: every provisioning step that changes the
new host runs its commands with the running file that a resume then checks on that host, and
an etcd snapshot begun before a restart is kept when etcdctl finished it, taken again when not,
and a restore's `etcdutl snapshot restore` on each member is waited for there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from commands import ProvisionNodeCommand
from playbooks.base import Step, StepContext, StepResult
from playbooks.etcd_backup import BackupSnapshot, SavedSnapshot, decide_backup, plain_copy
from playbooks.etcd_restore_steps import RestoreMembers, RestoreMembersParams
from playbooks.etcd_tools import FIND_ETCD_CONTAINER
from playbooks.plan import Plan
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from playbooks.remote import LEFTOVER, running_file
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node
from tests.unit.test_provision_steps_on_fakes import CREATE, PRINTED
from tests.unit.test_restore_decisions import members

CHANGES_THE_HOST = ("swap-off", "kernel-modules", "sysctls", "containerd", "package-source")


def sent(shell: FakeShell) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """What ran on which host, and under which running file: (node, running file, argv)."""
    return [(call.node, call.running, call.argv) for call in shell.calls]


def leftover_check(step: str) -> tuple[str, ...]:
    return ("sh", "-c", LEFTOVER, "sh", running_file(1, step))


async def provisioning(shell: FakeShell) -> Run:
    kube = FakeKube(node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"))
    handle = cluster_of(kube, shell)
    seen = ProvisionSnapshot(handle.name, handle.inventory, await kube.list_nodes(), kube.version)
    command = ProvisionNodeCommand.model_validate({"node": "worker-9", "address": "10.0.0.9"})
    return Run(decide_provision(command, seen), handle)


def step_named(run: Run, name: str) -> Step:
    return next(each for each in run.steps if each.name == name)


@pytest.mark.parametrize("name", [*CHANGES_THE_HOST, "packages", "join"])
async def test_a_provisioning_step_that_changes_the_host_is_waited_for_there_after_a_restart(
    name: str,
) -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    run = await provisioning(shell)
    step = step_named(run, name)
    assert (await step.run(run.ctx)).ok

    changing = [argv for host, running, argv in sent(shell) if host == "worker-9" and running]
    assert changing, f"{name} ran nothing with a running file on the host"
    assert {running for host, running, _ in sent(shell) if running} == {running_file(1, name)}
    shell.calls.clear()
    await step.wait_for_leftovers(run.ctx)
    assert sent(shell) == [("worker-9", None, leftover_check(name))]


async def test_the_join_keeps_its_token_out_of_the_running_file() -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    run = await provisioning(shell)
    assert (await step_named(run, "join").run(run.ctx)).ok
    [join] = [argv for _, running, argv in sent(shell) if running]
    assert join[:2] == ("kubeadm", "join") and not any("abcdef." in word for word in join)


CONTAINER = "0f3c9a1e2b4d" + "0" * 52


async def snapshot_resumed(*, finished: bool) -> tuple[StepResult | None, FakeShell, Run]:
    """The backup's snapshot step resumed with the checkpoint its first run left, the node
    answering whether the snapshot file is there."""
    shell = FakeShell()
    shell.reply(FIND_ETCD_CONTAINER, Reply(stdout=CONTAINER + "\n"))
    kube = FakeKube(node("cp-1", roles=("control-plane",)))
    handle = cluster_of(kube, shell)
    seen = BackupSnapshot(
        handle.name, handle.inventory, await kube.list_nodes(), handle.backup_dir, 3
    )
    first = Run(decide_backup(seen), handle)
    first.ctx.checkpoint = first.ctx.partial.update
    assert (await first.steps[0].run(first.ctx)).ok
    taken = SavedSnapshot.model_validate(first.ctx.partial)
    shell.reply(("test", "-s", taken.remote), Reply(exit_status=0 if finished else 1))

    resumed = Run(decide_backup(seen), handle)
    resumed.ctx.partial = dict(first.ctx.partial)
    shell.calls.clear()
    await resumed.steps[0].wait_for_leftovers(resumed.ctx)
    return await resumed.steps[0].already_done(resumed.ctx), shell, resumed


async def test_a_snapshot_etcdctl_finished_before_the_restart_is_kept_not_taken_again() -> None:
    done, shell, resumed = await snapshot_resumed(finished=True)
    assert done is not None and done.ok
    assert "the snapshot begun before the restart was finished on cp-1" in done.summary
    assert done.outcome(SavedSnapshot) == SavedSnapshot.model_validate(resumed.ctx.partial)
    assert sent(shell)[0] == ("cp-1", None, leftover_check("snapshot"))
    assert not any("save" in argv for _, _, argv in sent(shell))


async def test_a_snapshot_the_restart_cut_short_is_taken_again() -> None:
    done, _, _ = await snapshot_resumed(finished=False)
    assert done is None


async def _quiet(text: str) -> None:
    return None


async def test_each_members_restore_runs_with_its_running_file_and_a_resume_waits_on_every_host() -> (
    None
):
    shell = FakeShell()
    shell.reply(FIND_ETCD_CONTAINER, Reply(stdout=CONTAINER + "\n"))
    handle = cluster_of(FakeKube(node("cp-1", roles=("control-plane",))), shell)
    plan = Plan(verb="restore", cluster="test", target="etcd", title="", steps=[])
    ctx = StepContext(cluster=handle, plan=plan, job_id=1, results={}, say=_quiet)
    step = RestoreMembers(
        "Restore the snapshot on every member",
        RestoreMembersParams(members=members(), backup="etcd-20261130T120000Z"),
    )
    assert (await step.run(ctx)).ok

    restores = [(host, running) for host, running, argv in sent(shell) if "restore" in argv]
    assert restores == [(m.node, running_file(1, "restore-members")) for m in members()]
    shell.calls.clear()
    await step.wait_for_leftovers(ctx)
    assert sent(shell) == [(m.node, None, leftover_check("restore-members")) for m in members()]


async def test_a_snapshot_the_restart_cut_short_leaves_nothing_beside_the_new_one() -> None:
    done, shell, resumed = await snapshot_resumed(finished=False)
    assert done is None
    earlier = SavedSnapshot.model_validate(resumed.ctx.partial).remote
    shell.calls.clear()
    assert (await resumed.steps[0].run(resumed.ctx)).ok
    argvs = [argv for _, _, argv in sent(shell)]
    removal = ("rm", "-f", "--", earlier, earlier + ".part")
    assert removal in argvs
    assert argvs.index(removal) < next(i for i, a in enumerate(argvs) if "save" in a)


@pytest.mark.parametrize("still_there", [True, False])
async def test_an_aborted_backup_leaves_no_copy_of_the_snapshot_on_the_node_or_here(
    still_there: bool, tmp_path: Path
) -> None:
    shell = FakeShell()
    shell.reply(FIND_ETCD_CONTAINER, Reply(stdout=CONTAINER + "\n"))
    kube = FakeKube(node("cp-1", roles=("control-plane",)))
    handle = replace(cluster_of(kube, shell), backup_dir=tmp_path / "backups")
    seen = BackupSnapshot(
        handle.name, handle.inventory, await kube.list_nodes(), handle.backup_dir, 3
    )
    run = Run(decide_backup(seen), handle)
    saved = await run.steps[0].run(run.ctx)
    remote = saved.outcome(SavedSnapshot).remote
    half_fetched = plain_copy(handle.backup_dir, remote)
    half_fetched.parent.mkdir()
    half_fetched.write_bytes(b"every secret of the cluster")
    look = ("sh", "-c", '[ -e "$1" ] || [ -e "$1.part" ]', "sh", remote)
    shell.reply(look, Reply(exit_status=0 if still_there else 1))
    shell.calls.clear()

    said = await run.steps[0].compensate(run.ctx, saved)

    assert not half_fetched.exists()
    removed = ("cp-1", None, ("rm", "-f", "--", remote, remote + ".part"))
    if still_there:
        assert said == f"removed the snapshot {remote} from cp-1"
        assert removed in sent(shell)
    else:
        assert said is None
        assert removed not in sent(shell)
