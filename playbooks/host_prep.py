"""Preparing a bare host for kubeadm: swap off, kernel modules, sysctls, containerd with the
systemd cgroup driver, each persisted across reboots. Every step is safe to run again, but
never twice at once: its commands run with a running file on the host, and a resume waits
for one left running (two `sed -i` of one config at once, or a containerd restart racing the
next step, would leave the host half-prepared).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from playbooks.base import ParamsT, Step, StepContext, StepOutcome, StepResult
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover

MODULES = ("overlay", "br_netfilter")
SYSCTLS = ("net.bridge.bridge-nf-call-iptables = 1", "net.ipv4.ip_forward = 1")

# Fixed scripts: the paths and values come in as $1…, never spliced into the script text.
WRITE_LINES = 'set -e; path="$1"; shift; printf \'%s\\n\' "$@" > "$path"'
COMMENT_OUT_SWAP = (
    "set -e; "
    "kept=$(sed -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1/' \"$1\"); "
    'printf \'%s\\n\' "$kept" > "$1"'
)
# Merge, never replace: the host's own config (made from `containerd config default` if there
# is none) keeps every setting its operator added; only runc's cgroup driver and the sandbox
# image change, and the first original is kept beside it. $1 the config, $2 the sandbox image.
CONTAINERD_MERGE = (
    "set -e; "
    'mkdir -p "$(dirname "$1")"; '
    'if [ ! -s "$1" ]; then containerd config default > "$1"; fi; '
    'if [ ! -e "$1.before-kubegate" ]; then cp -p "$1" "$1.before-kubegate"; fi; '
    "sed -i -E "
    "-e 's/^([[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*).*$/\\1true/' "
    '-e "s#^([[:space:]]*sandbox_image[[:space:]]*=[[:space:]]*).*\\$#\\1\\"$2\\"#" "$1"; '
    "grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' \"$1\" || "
    '{ echo "$1 has no runc SystemdCgroup setting to turn on: set it by hand" >&2; exit 3; }; '
    'grep -Fq "\\"$2\\"" "$1" || '
    '{ echo "$1 has no sandbox_image setting to point at $2: set it by hand" >&2; exit 3; }'
)
# The pause image kubeadm pre-pulls and expects the runtime to use, by minor
# (cmd/kubeadm/app/constants/constants.go, PauseVersion).
PAUSE_VERSIONS = {27: "3.9", 28: "3.9", 29: "3.9", 30: "3.9", 31: "3.10", 32: "3.10", 33: "3.10"}


def sandbox_image(minor: int) -> str:
    newest = max(PAUSE_VERSIONS)
    return f"registry.k8s.io/pause:{PAUSE_VERSIONS.get(min(minor, newest), '3.9')}"


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
        ran = await remote.run_in_order(self.commands, running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        return StepResult.done(f"{self.done} on {self.host.name}", PreparedHost(commands=ran))

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, self.host, self.name)


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
    sandbox_image: str = "registry.k8s.io/pause:3.10"


class Containerd(Step[ContainerdParams]):
    name: ClassVar[str] = "containerd"
    params_model: ClassVar[type[StepParams]] = ContainerdParams

    async def run(self, ctx: StepContext) -> StepResult:
        host, image = self.params.host, self.params.sandbox_image
        commands = (
            RemoteCommand.of("containerd", "--version"),  # a clear failure if it is missing
            RemoteCommand.script(
                "set SystemdCgroup = true and sandbox_image in /etc/containerd/config.toml",
                CONTAINERD_MERGE,
                "/etc/containerd/config.toml",
                image,
            ),
            RemoteCommand.of("systemctl", "restart", "containerd"),
        )
        remote = await Remote.open(ctx, host)
        ran = await remote.run_in_order(commands, running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        return StepResult.done(
            f"containerd on {host.name} restarted with the systemd cgroup driver and {image}, "
            "its other settings kept (the original is config.toml.before-kubegate)",
            PreparedHost(commands=ran),
        )

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, self.params.host, self.name)


def host_preparation(host: NodeRef, *, minor: int) -> list[tuple[StepParams, str]]:
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
            ContainerdParams(host=host, sandbox_image=sandbox_image(minor)),
            f"Set containerd's cgroup driver to systemd and its sandbox image to "
            f"{sandbox_image(minor)}, keeping its other settings; restart it",
        ),
    ]
