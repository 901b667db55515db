"""Which Node a host says it is, from kubegate's one identity probe (pure)."""

from __future__ import annotations

from playbooks.ssh_identity import HostIdentity, host_identity, wrong_host

FLAGS = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/c.sock{extra}"'


def answer(*, flags: str = "", subject: str = "", hostname: str = "") -> str:
    return "\n".join(
        ["## kubeadm-flags", flags, "## kubelet-client", subject, "## hostname", hostname]
    )


def test_the_kubelets_hostname_override_names_the_node_first() -> None:
    said = answer(
        flags=FLAGS.format(extra=" --hostname-override=Worker-9"),
        subject="subject=CN=system:node:worker-7,O=system:nodes",
        hostname="ip-10-0-0-9",
    )
    assert host_identity(said) == HostIdentity(
        "worker-9", "its kubelet's --hostname-override in /var/lib/kubelet/kubeadm-flags.env"
    )


def test_without_an_override_the_kubelet_client_certificate_names_the_node() -> None:
    for subject in (
        "subject=CN=system:node:worker-3,O=system:nodes",  # openssl -nameopt RFC2253
        "subject=O = system:nodes, CN = system:node:worker-3",  # openssl 3 default
        "subject= /O=system:nodes/CN=system:node:worker-3",  # openssl 1.0
    ):
        said = answer(flags=FLAGS.format(extra=""), subject=subject, hostname="ip-10-0-0-3")
        assert host_identity(said) == HostIdentity("worker-3", "its kubelet client certificate")


def test_a_host_without_a_kubelet_identity_is_its_hostname_lowercased() -> None:
    assert host_identity(answer(hostname="Worker-3\n")) == HostIdentity("worker-3", "its hostname")


def test_a_host_that_said_nothing_has_no_identity() -> None:
    assert host_identity("") is None
    assert host_identity(answer()) is None


def test_the_refusal_names_the_address_the_host_and_the_node_asked_for() -> None:
    said = wrong_host("worker-3", "10.0.0.13", HostIdentity("worker-4", "its hostname"))
    assert said.startswith("refusing to run on 10.0.0.13: it is worker-4, not worker-3")
    assert "Nothing was run there" in said
