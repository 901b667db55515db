"""Preparing a bare host for kubeadm: swap off, kernel modules, sysctls, containerd with the
systemd cgroup driver, each persisted across reboots. Every step is safe to run again.
"""

from __future__ import annotations

from typing import ClassVar

from playbooks.base import Step, StepContext, StepResult
from playbooks.remote import NodeRef, Remote, RemoteCommand

MODULES = ("overlay", "br_netfilter")
SYSCTLS = ("net.bridge.bridge-nf-call-iptables = 1", "net.ipv4.ip_forward = 1")

# Fixed scripts: the paths and values come in as $1…, never spliced into the script text.
WRITE_LINES = 'set -e; path="$1"; shift; printf \'%s\\n\' "$@" > "$path"'
COMMENT_OUT_SWAP = (
    "set -e; "
    "kept=$(sed -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1/' \"$1\"); "
    'printf \'%s\\n\' "$kept" > "$1"'
)
CONTAINERD_CONFIG = (
    "set -e; "
    'mkdir -p "$(dirname "$1")"; '
    "config=$(containerd config default); "
    "printf '%s\\n' \"$config\" | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > \"$1\""
)


class PrepareHost(Step):
    """Run this step's fixed commands on the new host, in order."""

    commands: ClassVar[tuple[RemoteCommand, ...]]
    done: ClassVar[str]

    def __init__(self, title: str, *, node: NodeRef) -> None:
        super().__init__(title)
        self.node = node

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, self.node)
        ran = await remote.run_in_order(self.commands)
        if isinstance(ran, StepResult):
            return ran
        return StepResult(
            ok=True, summary=f"{self.done} on {self.node.name}", data={"commands": ran}
        )


class SwapOff(PrepareHost):
    name: ClassVar[str] = "swap-off"
    done: ClassVar[str] = "swap off, and commented out in /etc/fstab"
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("swapoff", "-a"),
        RemoteCommand.script("comment out swap in /etc/fstab", COMMENT_OUT_SWAP, "/etc/fstab"),
    )


class KernelModules(PrepareHost):
    name: ClassVar[str] = "kernel-modules"
    done: ClassVar[str] = (
        "overlay and br_netfilter loaded and listed in /etc/modules-load.d/k8s.conf"
    )
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        *(RemoteCommand.of("modprobe", module) for module in MODULES),
        RemoteCommand.script(
            "write /etc/modules-load.d/k8s.conf",
            WRITE_LINES,
            "/etc/modules-load.d/k8s.conf",
            *MODULES,
        ),
    )


class Sysctls(PrepareHost):
    name: ClassVar[str] = "sysctls"
    done: ClassVar[str] = "bridge-nf-call-iptables and ip_forward on, in /etc/sysctl.d/k8s.conf"
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.script(
            "write /etc/sysctl.d/k8s.conf", WRITE_LINES, "/etc/sysctl.d/k8s.conf", *SYSCTLS
        ),
        RemoteCommand.of("sysctl", "--system"),
    )


class Containerd(PrepareHost):
    name: ClassVar[str] = "containerd"
    done: ClassVar[str] = "containerd restarted with the systemd cgroup driver"
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("containerd", "--version"),  # a clear failure if it is not installed
        RemoteCommand.script(
            "write /etc/containerd/config.toml with SystemdCgroup = true",
            CONTAINERD_CONFIG,
            "/etc/containerd/config.toml",
        ),
        RemoteCommand.of("systemctl", "restart", "containerd"),
    )


HOST_PREPARATION: tuple[tuple[type[PrepareHost], str], ...] = (
    (SwapOff, "Turn swap off (now and in /etc/fstab)"),
    (KernelModules, "Load kernel modules overlay and br_netfilter (and at boot)"),
    (Sysctls, "Set net.bridge.bridge-nf-call-iptables=1 and net.ipv4.ip_forward=1 (persisted)"),
    (Containerd, "Configure containerd with the systemd cgroup driver and restart it"),
)
