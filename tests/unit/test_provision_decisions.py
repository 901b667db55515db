"""What provision and upgrade decide without a host: the join command they trust, the package
commands they send."""

from __future__ import annotations

from playbooks.packages import install_commands
from playbooks.provision import parse_join_command
from playbooks.versions import Version

HASH = "sha256:" + "ab" * 32
PRINTED = f"kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"


def test_the_printed_join_command_is_read_value_by_value() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None
    assert (join.endpoint, join.token, join.ca_hash) == (
        "10.0.0.1:6443",
        "abcdef.0123456789abcdef",
        HASH,
    )
    assert join.command.argv[:3] == ("kubeadm", "join", "10.0.0.1:6443")


def test_the_join_commands_label_never_carries_the_token() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None and "0123456789abcdef" not in join.command.label


def test_anything_but_a_plain_worker_join_command_is_not_trusted() -> None:
    assert parse_join_command("") is None
    assert parse_join_command(PRINTED.replace("10.0.0.1:6443", "$(reboot):6443")) is None
    assert parse_join_command(PRINTED + " --control-plane") is None
    assert parse_join_command(PRINTED.replace("--token", "--tokens")) is None
    assert parse_join_command(PRINTED.replace(HASH, "sha256:nothex")) is None


def test_apt_unholds_installs_the_pkgs_k8s_io_revision_and_holds_again() -> None:
    argv = [c.argv for c in install_commands("apt", ("kubelet", "kubectl"), Version(1, 31, 3))]
    assert argv == [
        ("apt-mark", "unhold", "kubelet", "kubectl"),
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "kubelet=1.31.3-*", "kubectl=1.31.3-*"),
        ("apt-mark", "hold", "kubelet", "kubectl"),
    ]


def test_dnf_lifts_the_kubernetes_repos_exclude_for_this_install_only() -> None:
    [command] = install_commands("dnf", ("kubeadm",), Version(1, 31, 3))
    assert command.argv == (
        "dnf",
        "install",
        "-y",
        "kubeadm-1.31.3",
        "--disableexcludes=kubernetes",
    )
