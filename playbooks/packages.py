"""kubeadm, kubelet and kubectl packages at one version, held, with apt or dnf as pkgs.k8s.io
expects: apt unholds, installs `=1.x.y-*` and holds again; dnf lifts the repo's exclude.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from playbooks.base import ParamsT, Step, StepContext, StepOutcome, StepResult
from playbooks.errors import OperationError
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover
from playbooks.versions import Version

PackageManager = Literal["apt", "dnf"]


APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
DNF_REPO = "/etc/yum.repos.d/kubernetes.repo"
WRITE_FILE = 'set -e; mkdir -p "$(dirname "$1")"; printf \'%s\\n\' "$2" > "$1"'


def source_commands(manager: PackageManager, source: str, keyring: str) -> list[RemoteCommand]:
    """Point the node at `source`, one minor's repository, as the kubeadm upgrade guide's
    "Changing the package repository" does (its `sed` of the minor, written whole here so a
    mirror's URL works too); apt reads it only after `apt-get update`, dnf on its next run."""
    if manager == "dnf":
        text = "\n".join(
            (
                "[kubernetes]",
                "name=Kubernetes",
                f"baseurl={source}",
                "enabled=1",
                "gpgcheck=1",
                f"gpgkey={source}repodata/repomd.xml.key",
                "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni",
            )
        )
        return [
            RemoteCommand.script(f"write {DNF_REPO} (baseurl={source})", WRITE_FILE, DNF_REPO, text)
        ]
    line = f"deb [signed-by={keyring}] {source} /"
    return [RemoteCommand.script(f"write {APT_SOURCE} ({source})", WRITE_FILE, APT_SOURCE, line)]


def install_commands(
    manager: PackageManager,
    packages: tuple[str, ...],
    version: Version,
    *,
    source: str | None = None,
    keyring: str = "",
) -> list[RemoteCommand]:
    switch = [] if source is None else source_commands(manager, source, keyring)
    if manager == "dnf":
        # The kubernetes repo file carries exclude=kubelet kubeadm kubectl: that is dnf's hold.
        wanted = [f"{name}-{version.package}" for name in packages]
        install = ("dnf", "install", "-y", *wanted, "--disableexcludes=kubernetes")
        return [*switch, RemoteCommand.of(*install)]
    wanted = [f"{name}={version.package}-*" for name in packages]
    return [
        *switch,
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


class PackagesAt(BaseModel):
    """Which host gets the packages, and at which version (`v1.31.3`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: NodeRef
    version: str
    # The repository to switch the node to first (a new minor's), as the plan showed it;
    # None leaves the node's package source as it is.
    source: str | None = None

    @property
    def wanted(self) -> Version:
        version = Version.parse(self.version)
        if version is None:
            raise OperationError(f"`{self.version}` is not a Kubernetes version")
        return version


class PackagesInstalled(StepOutcome):
    version: str
    commands: list[str]


class InstallPackages(Step[ParamsT]):
    """Install `packages` at the version, held; the probe's binary answers whether it is done.

    Each kind names its own parameters model; they all say where and which version (`at`)."""

    packages: ClassVar[tuple[str, ...]] = ("kubeadm", "kubelet", "kubectl")
    # Prints the installed version of the package the others are installed with in one go.
    probe: ClassVar[RemoteCommand] = RemoteCommand.of("kubelet", "--version")
    # Run after the packages are in place (e.g. enabling the kubelet on a new host).
    after: ClassVar[tuple[RemoteCommand, ...]] = ()

    @property
    @abstractmethod
    def at(self) -> PackagesAt: ...

    async def run(self, ctx: StepContext) -> StepResult:
        host, version = self.at.host, self.at.wanted
        remote = await Remote.open(ctx, host)
        manager = ctx.cluster.inventory.package_manager_of(host.name)
        keyring = ctx.cluster.inventory.package_repository.apt_keyring
        commands = install_commands(
            manager, self.packages, version, source=self.at.source, keyring=keyring
        ) + list(self.after)
        ran = await remote.run_in_order(commands, running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        held = " (held)" if manager == "apt" else ""
        switched = f", from {self.at.source}" if self.at.source else ""
        return StepResult.done(
            f"{', '.join(self.packages)} {version.package}{held} on {host.name} with "
            f"{manager}{switched}",
            PackagesInstalled(version=str(version), commands=ran),
        )

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, self.at.host, self.name)  # apt's lock would refuse it

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        host, version = self.at.host, self.at.wanted
        remote = await Remote.open(ctx, host)
        if reported_version(await remote.answer(self.probe)) != version:
            return None
        if ctx.cluster.inventory.package_manager_of(host.name) == "apt":
            holds = (await remote.answer(RemoteCommand.of("apt-mark", "showhold"))) or ""
            if not set(self.packages) <= set(holds.split()):
                return None  # installed but not held: run again, it re-holds them
        return StepResult.done(
            f"{', '.join(self.packages)} were already at {version.package} before the restart",
            PackagesInstalled(version=str(version), commands=[]),
        )


class UpgradeKubeadmParams(StepParams):
    step: Literal["kubeadm-package"] = "kubeadm-package"
    at: PackagesAt


class UpgradeKubeadm(InstallPackages[UpgradeKubeadmParams]):
    name: ClassVar[str] = "kubeadm-package"
    params_model: ClassVar[type[StepParams]] = UpgradeKubeadmParams
    packages: ClassVar[tuple[str, ...]] = ("kubeadm",)
    probe: ClassVar[RemoteCommand] = RemoteCommand.of("kubeadm", "version", "-o", "short")

    @property
    def at(self) -> PackagesAt:
        return self.params.at


class UpgradeKubeletParams(StepParams):
    step: Literal["kubelet-packages"] = "kubelet-packages"
    at: PackagesAt


class UpgradeKubelet(InstallPackages[UpgradeKubeletParams]):
    # Installed in one transaction, so the kubelet's version answers for kubectl too.
    name: ClassVar[str] = "kubelet-packages"
    params_model: ClassVar[type[StepParams]] = UpgradeKubeletParams
    packages: ClassVar[tuple[str, ...]] = ("kubelet", "kubectl")

    @property
    def at(self) -> PackagesAt:
        return self.params.at
