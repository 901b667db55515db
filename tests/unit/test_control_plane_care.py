"""The pieces that keep a rotation safe, without a host: what etcdctl's health answer means,
when kubegate's kubeconfig counts as a control plane's admin.conf and what replaces it, and
that a restart of the only API server is waited through rather than failed."""

from __future__ import annotations

from typing import Any

from playbooks.base import ClusterHandle
from playbooks.control_plane_health import etcd_problem
from playbooks.kubeconfig_refresh import came_from, renewed_kubeconfig
from playbooks.ssh import CommandResult
from playbooks.static_pods import StaticPod, wait_until_ready_again
from tests.fakes.kube import FakeKube, pod


def etcdctl(exit_status: int, stdout: str, stderr: str = "") -> CommandResult:
    return CommandResult(
        "cp-1", "etcdctl endpoint health --cluster", exit_status, stdout, stderr, 0.1
    )


def test_every_member_healthy_is_no_problem() -> None:
    healthy = "\n".join(
        f"https://127.0.10.{i}:2379 is healthy: successfully committed proposal: took = 2ms"
        for i in (1, 2, 3)
    )
    assert etcd_problem(etcdctl(0, healthy)) is None


def test_a_member_down_is_named_in_the_problem() -> None:
    problem = etcd_problem(
        etcdctl(
            1,
            "https://127.0.10.1:2379 is healthy: successfully committed proposal: took = 2ms\n",
            "https://127.0.10.2:2379 is unhealthy: failed to commit proposal: "
            "context deadline exceeded\nError: unhealthy cluster\n",
        )
    )
    assert problem is not None
    assert "not healthy with every member up" in problem and "127.0.10.2:2379" in problem


def test_no_etcdctl_and_no_etcd_container_is_a_problem_too() -> None:
    problem = etcd_problem(etcdctl(127, "", "no etcdctl on the PATH and no running etcd container"))
    assert problem is not None and "exit 127" in problem


def kubeconfig(user: dict[str, str], server: str = "https://lb:6443") -> dict[str, Any]:
    return {
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": dict(user)}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }


def test_a_kubeconfig_with_the_admin_confs_certificate_came_from_it() -> None:
    admin = kubeconfig({"client-certificate-data": "OLD", "client-key-data": "K"})
    ours = kubeconfig({"client-certificate-data": "OLD", "client-key-data": "K"})
    other = kubeconfig({"token": "someone-elses"})
    assert came_from(ours, admin) and not came_from(other, admin)


def test_the_renewed_credentials_replace_ours_and_our_server_stays() -> None:
    ours = kubeconfig({"client-certificate-data": "OLD", "client-key-data": "K"})
    admin = kubeconfig({"client-certificate-data": "NEW", "client-key-data": "K2"}, "https://cp-1")
    fresh = renewed_kubeconfig(ours, admin, None)
    assert fresh["users"] == [
        {"name": "u", "user": {"client-certificate-data": "NEW", "client-key-data": "K2"}}
    ]
    assert fresh["clusters"] == ours["clusters"]
    assert ours["users"][0]["user"]["client-certificate-data"] == "OLD"


async def test_the_only_api_server_restarting_is_waited_through_and_said_once() -> None:
    mirror = pod("kube-apiserver-cp-1", node="cp-1", namespace="kube-system", owner=None)
    kube = FakeKube(mirror)
    kube.fail("get_pod", 503, times=3)  # the API server is the one that restarts
    cluster = ClusterHandle(name="prod", kube=kube)
    static = StaticPod("kube-apiserver", "cp-1", "/etc/kubernetes/held")
    said: list[str] = []

    async def say(line: str) -> None:
        said.append(line)

    took = await wait_until_ready_again(
        cluster, static, old_uid="the-old-mirror", timeout=10, say=say
    )
    assert took > 0
    assert [call for call in kube.calls if call[0] == "get_pod"][3:]  # asked again after
    assert len(said) == 1
    assert said[0].startswith(
        "cp-1: waiting for the API server to come back after the kube-apiserver restart"
    )
