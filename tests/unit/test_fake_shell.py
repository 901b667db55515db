"""The in-memory SSH executor answers as the real one does, reached the way steps reach it:
through the cluster handle, at the address the Node reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.ssh import SshError, SshTarget
from tests.fakes import FakeKube, FakeShell, Reply, cluster_of, node

RESTART = ("systemctl", "restart", "kubelet")


async def test_a_step_reaches_the_node_at_its_internal_ip_and_its_command_is_recorded() -> None:
    shell = FakeShell()
    shell.reply(["kubelet", "--version"], Reply(stdout="Kubernetes v1.31.2\n"), node="worker-1")
    cluster = cluster_of(FakeKube(node("worker-1", internal_ip="10.0.0.21")), shell)
    target = await cluster.ssh_target("worker-1")
    result = await (await cluster.ssh()).run(target, ["kubelet", "--version"])
    assert target.host == "10.0.0.21" and result.ok and result.stdout == "Kubernetes v1.31.2\n"
    assert shell.ran("worker-1") == [("kubelet", "--version")]


async def test_a_failing_command_is_a_result_with_its_exit_code_not_an_error() -> None:
    shell = FakeShell()
    shell.reply(RESTART, Reply(exit_status=5, stderr="Unit kubelet.service not found.\n"))
    result = await shell.run(SshTarget("worker-1", "10.0.0.21"), RESTART)
    assert not result.ok and result.exit_status == 5
    assert result.tail().strip() == "Unit kubelet.service not found."


async def test_scripted_replies_come_in_order_and_the_last_one_repeats() -> None:
    shell = FakeShell()
    shell.reply(RESTART, Reply(exit_status=1), Reply(exit_status=0))
    target = SshTarget("worker-1", "10.0.0.21")
    statuses = [(await shell.run(target, RESTART)).exit_status for _ in range(3)]
    assert statuses == [1, 0, 0]


async def test_a_sudo_target_runs_the_command_line_the_real_executor_would() -> None:
    shell = FakeShell()
    await shell.run(SshTarget("worker-1", "10.0.0.21", sudo=True), ["cat", "/etc/a b"])
    assert shell.calls[0].command == "sudo -n -- cat '/etc/a b'"


async def test_an_unreachable_node_is_an_ssh_error_and_run_many_reports_it_among_the_results() -> (
    None
):
    shell = FakeShell(unreachable={"worker-2"})
    targets = [SshTarget("worker-1", "10.0.0.21"), SshTarget("worker-2", "10.0.0.22")]
    first, second = await shell.run_many(targets, ["true"])
    assert not isinstance(first, SshError) and first.ok
    assert isinstance(second, SshError) and second.node == "worker-2"


async def test_a_strict_shell_fails_the_test_on_a_command_nobody_scripted() -> None:
    with pytest.raises(AssertionError, match="unscripted command on worker-1: rm -rf /"):
        await FakeShell(strict=True).run(SshTarget("worker-1", "10.0.0.21"), ["rm", "-rf", "/"])


async def test_files_are_copied_off_the_node_as_sftp_would(tmp_path: Path) -> None:
    shell = FakeShell(files={("cp-1", "/var/lib/etcd/snap.db"): b"snapshot"})
    local = tmp_path / "snap.db"
    await shell.sftp_get(SshTarget("cp-1", "10.0.0.11"), "/var/lib/etcd/snap.db", str(local))
    assert local.read_bytes() == b"snapshot"
    with pytest.raises(SshError):
        await shell.sftp_get(SshTarget("cp-1", "10.0.0.11"), "/nope", str(local))
