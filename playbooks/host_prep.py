"""Preparing a bare host for kubeadm: swap off, kernel modules, sysctls, containerd with the
systemd cgroup driver, each persisted across reboots. Every step is safe to run again.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from playbooks.base import ParamsT, Step, StepContext, StepOutcome, StepResult
from playbooks.plan import StepParams
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


class PreparedHost(StepOutcome):
    commands: list[str]


class PrepareHost(Step[ParamsT]):
    """Run this step's fixed commands on the new host, in order."""

    commands: ClassVar[tuple[RemoteCommand, ...]]
    done: ClassVar[str]

    @property
    @abstractmethod
    def host(self) -> NodeRef: ...

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, self.host)
        ran = await remote.run_in_order(self.commands)
        if isinstance(ran, StepResult):
            return ran
        return StepResult.done(f"{self.done} on {self.host.name}", PreparedHost(commands=ran))


class SwapOffParams(StepParams):
    step: Literal["swap-off"] = "swap-off"
    host: NodeRef


class SwapOff(PrepareHost[SwapOffParams]):
    name: ClassVar[str] = "swap-off"
    params_model: ClassVar[type[StepParams]] = SwapOffParams
    done: ClassVar[str] = "swap off, and commented out in /etc/fstab"
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("swapoff", "-a"),
        RemoteCommand.script("comment out swap in /etc/fstab", COMMENT_OUT_SWAP, "/etc/fstab"),
    )

    @property
    def host(self) -> NodeRef:
        return self.params.host


class KernelModulesParams(StepParams):
    step: Literal["kernel-modules"] = "kernel-modules"
    host: NodeRef


class KernelModules(PrepareHost[KernelModulesParams]):
    name: ClassVar[str] = "kernel-modules"
    params_model: ClassVar[type[StepParams]] = KernelModulesParams
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

    @property
    def host(self) -> NodeRef:
        return self.params.host


class SysctlsParams(StepParams):
    step: Literal["sysctls"] = "sysctls"
    host: NodeRef


class Sysctls(PrepareHost[SysctlsParams]):
    name: ClassVar[str] = "sysctls"
    params_model: ClassVar[type[StepParams]] = SysctlsParams
    done: ClassVar[str] = "bridge-nf-call-iptables and ip_forward on, in /etc/sysctl.d/k8s.conf"
    commands: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.script(
            "write /etc/sysctl.d/k8s.conf", WRITE_LINES, "/etc/sysctl.d/k8s.conf", *SYSCTLS
        ),
        RemoteCommand.of("sysctl", "--system"),
    )

    @property
    def host(self) -> NodeRef:
        return self.params.host


class ContainerdParams(StepParams):
    step: Literal["containerd"] = "containerd"
    host: NodeRef


class Containerd(PrepareHost[ContainerdParams]):
    name: ClassVar[str] = "containerd"
    params_model: ClassVar[type[StepParams]] = ContainerdParams
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

    @property
    def host(self) -> NodeRef:
        return self.params.host


def host_preparation(host: NodeRef) -> list[tuple[StepParams, str]]:
    """The preparation steps for a bare host, in order, as planned: parameters and titles."""
    return [
        (SwapOffParams(host=host), "Turn swap off (now and in /etc/fstab)"),
        (
            KernelModulesParams(host=host),
            "Load kernel modules overlay and br_netfilter (and at boot)",
        ),
        (
            SysctlsParams(host=host),
            "Set net.bridge.bridge-nf-call-iptables=1 and net.ipv4.ip_forward=1 (persisted)",
        ),
        (
            ContainerdParams(host=host),
            "Configure containerd with the systemd cgroup driver and restart it",
        ),
    ]
