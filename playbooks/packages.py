"""kubeadm, kubelet and kubectl packages at one version, held, with apt or dnf as pkgs.k8s.io
expects: apt unholds, installs `=1.x.y-*` and holds again; dnf lifts the repo's exclude.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from playbooks.base import Step, StepContext, StepResult
from playbooks.remote import NodeRef, Remote, RemoteCommand
from playbooks.versions import Version

PackageManager = Literal["apt", "dnf"]


def install_commands(
    manager: PackageManager, packages: tuple[str, ...], version: Version
) -> list[RemoteCommand]:
    if manager == "dnf":
        # The kubernetes repo file carries exclude=kubelet kubeadm kubectl: that is dnf's hold.
        wanted = [f"{name}-{version.package}" for name in packages]
        return [RemoteCommand.of("dnf", "install", "-y", *wanted, "--disableexcludes=kubernetes")]
    wanted = [f"{name}={version.package}-*" for name in packages]
    return [
        RemoteCommand.of("apt-mark", "unhold", *packages),
        RemoteCommand.of("apt-get", "update"),
        RemoteCommand.of("apt-get", "install", "-y", *wanted),
        RemoteCommand.of("apt-mark", "hold", *packages),
    ]


def reported_version(text: str | None) -> Version | None:
    """The version in `kubeadm version -o short` or `kubelet --version` output."""
    if not text:
        return None
    return Version.parse(text.split()[-1])


class InstallPackages(Step):
    """Install `packages` at the version, held; the probe's binary answers whether it is done."""

    name: ClassVar[str] = "packages"
    packages: ClassVar[tuple[str, ...]] = ("kubeadm", "kubelet", "kubectl")
    # Prints the installed version of the package the others are installed with in one go.
    probe: ClassVar[RemoteCommand] = RemoteCommand.of("kubelet", "--version")
    # Run after the packages are in place (e.g. enabling the kubelet on a new host).
    after: ClassVar[tuple[RemoteCommand, ...]] = ()

    def __init__(self, title: str, *, node: NodeRef, version: Version) -> None:
        super().__init__(title)
        self.node = node
        self.version = version

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, self.node)
        manager = ctx.cluster.inventory.package_manager_of(self.node.name)
        commands = install_commands(manager, self.packages, self.version) + list(self.after)
        ran = await remote.run_in_order(commands)
        if isinstance(ran, StepResult):
            return ran
        held = " (held)" if manager == "apt" else ""
        return StepResult(
            ok=True,
            summary=f"{', '.join(self.packages)} {self.version.package}{held} on {self.node.name} with {manager}",
            data={"version": str(self.version), "commands": ran},
        )

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        remote = await Remote.open(ctx, self.node)
        if reported_version(await remote.answer(self.probe)) != self.version:
            return None
        if ctx.cluster.inventory.package_manager_of(self.node.name) == "apt":
            holds = (await remote.answer(RemoteCommand.of("apt-mark", "showhold"))) or ""
            if not set(self.packages) <= set(holds.split()):
                return None  # installed but not held: run again, it re-holds them
        return StepResult(
            ok=True,
            summary=f"{', '.join(self.packages)} were already at {self.version.package} before the restart",
            data={"version": str(self.version), "commands": []},
        )


class UpgradeKubeadm(InstallPackages):
    name: ClassVar[str] = "kubeadm-package"
    packages: ClassVar[tuple[str, ...]] = ("kubeadm",)
    probe: ClassVar[RemoteCommand] = RemoteCommand.of("kubeadm", "version", "-o", "short")


class UpgradeKubelet(InstallPackages):
    # Installed in one transaction, so the kubelet's version answers for kubectl too.
    name: ClassVar[str] = "kubelet-packages"
    packages: ClassVar[tuple[str, ...]] = ("kubelet", "kubectl")
