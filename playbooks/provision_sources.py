"""The Kubernetes package source on a new host: pkgs.k8s.io's repository for the cluster's
minor (one repository per minor), with its signing key, as the kubeadm install guide sets it up
("Installing kubeadm, kubelet and kubectl": apt keyring + sources.list.d, or the dnf repo file).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from playbooks.base import Step, StepContext, StepOutcome, StepResult
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover

PKGS_K8S_IO = "https://pkgs.k8s.io/core:/stable:"
APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
DNF_REPO = "/etc/yum.repos.d/kubernetes.repo"

# Fixed scripts; the URL, paths and lines arrive as $1…, never spliced into the script.
# A failed download stops here (set -e on the assignment), never leaves an empty keyring.
FETCH_KEYRING = (
    "set -e; "
    'mkdir -p -m 755 "$(dirname "$2")"; '
    'key=$(curl -fsSL "$1"); '
    'printf \'%s\\n\' "$key" | gpg --batch --yes --dearmor -o "$2"; '
    'chmod 644 "$2"'
)
WRITE_FILE = 'set -e; printf \'%s\\n\' "$2" > "$1"; chmod 644 "$1"'


def apt_source_line(minor_line: str) -> str:
    return f"deb [signed-by={APT_KEYRING}] {PKGS_K8S_IO}/{minor_line}/deb/ /"


def dnf_repo_text(minor_line: str) -> str:
    url = f"{PKGS_K8S_IO}/{minor_line}/rpm/"
    return (
        f"[kubernetes]\nname=Kubernetes\nbaseurl={url}\nenabled=1\ngpgcheck=1\n"
        f"gpgkey={url}repodata/repomd.xml.key\n"
        "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni"
    )


def source_commands(manager: Literal["apt", "dnf"], minor_line: str) -> list[RemoteCommand]:
    if manager == "dnf":
        # dnf fetches and checks the key itself (gpgkey=); exclude= is its hold.
        return [
            RemoteCommand.script(
                f"write {DNF_REPO} for {minor_line}",
                WRITE_FILE,
                DNF_REPO,
                dnf_repo_text(minor_line),
            )
        ]
    key_url = f"{PKGS_K8S_IO}/{minor_line}/deb/Release.key"
    return [
        RemoteCommand.script(
            f"fetch pkgs.k8s.io's signing key into {APT_KEYRING}",
            FETCH_KEYRING,
            key_url,
            APT_KEYRING,
        ),
        RemoteCommand.script(
            f"write {APT_SOURCE} for {minor_line}",
            WRITE_FILE,
            APT_SOURCE,
            apt_source_line(minor_line),
        ),
    ]


class PackageSourceParams(StepParams):
    step: Literal["package-source"] = "package-source"
    host: NodeRef
    minor_line: str  # `v1.31`: the cluster's minor, as pkgs.k8s.io names its repositories


class SourceAdded(StepOutcome):
    commands: list[str]


class PackageSource(Step[PackageSourceParams]):
    """Rewrites the source and key whole each time: running it again is harmless."""

    name: ClassVar[str] = "package-source"
    params_model: ClassVar[type[StepParams]] = PackageSourceParams

    async def run(self, ctx: StepContext) -> StepResult:
        host, minor_line = self.params.host, self.params.minor_line
        manager = ctx.cluster.inventory.package_manager_of(host.name)
        remote = await Remote.open(ctx, host)
        commands = source_commands(manager, minor_line)
        ran = await remote.run_in_order(commands, running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        return StepResult.done(
            f"pkgs.k8s.io {minor_line} is {host.name}'s Kubernetes package source ({manager})",
            SourceAdded(commands=ran),
        )

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        # Harmless again, but not at once: two downloads writing one keyring.
        await wait_for_leftover(ctx, self.params.host, self.name)
