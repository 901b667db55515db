"""What provisioning a control plane adds to a worker's: the cluster must have a stable
controlPlaneEndpoint (a load balancer) and etcd healthy with every member up (never add a member
while one is unhealthy: a 2-member cluster with one down has no quorum); the shared CA material
comes from Vault (placed root's, keys 0600, certificates 0644, nothing left anywhere else) or,
without the PKI in Vault, through kubeadm's certificate key; after the join, the new member
healthy and the new API server ready, on its own and through the load balancer.

As kubernetes.io "Creating Highly Available Clusters with kubeadm" (stacked etcd; "Manual
certificate distribution" or `kubeadm init phase upload-certs --upload-certs`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import ClassVar, Literal

from commands import NewNodeTaint
from playbooks.base import ClusterHandle, PlanError, Step, StepContext, StepResult
from playbooks.control_plane_health import ControlPlaneNode, ControlPlaneUnhealthy
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.pki_backup import CLUSTER_PKI_FILES, pki_vault_path
from playbooks.plan import StepParams
from playbooks.remote import (
    NodeRef,
    Remote,
    RemoteCommand,
    failed,
    running_file,
    wait_for_leftover,
)
from playbooks.ssh import SshError
from playbooks.upgrade_etcd import EtcdHealthyParams, etcd_problem

PKI_DIR = "/etc/kubernetes/pki"
CONTROL_PLANE_TAINT = NewNodeTaint(key="node-role.kubernetes.io/control-plane", effect="NoSchedule")
READ_CLUSTER_CONFIGURATION = RemoteCommand.of(
    "kubectl",
    "--kubeconfig",
    "/etc/kubernetes/admin.conf",
    "-n",
    "kube-system",
    "get",
    "configmap",
    "kubeadm-config",
    "-o",
    "jsonpath={.data.ClusterConfiguration}",
)
_ENDPOINT = re.compile(r"^controlPlaneEndpoint:\s*(\S*)\s*$", re.MULTILINE)
WHOLE_TIMEOUT_S = 180.0

# The login user writes the files into a private temp dir (their contents arrive as $3, $5…,
# never through sudo's logged command line); root installs each into place and the dir goes.
WRITE_TEMP_FILES = (
    "set -e; umask 077; dir=$(mktemp -d); "
    'while [ "$#" -ge 2 ]; do printf \'%s\\n\' "$2" > "$dir/$1"; shift 2; done; echo "$dir"'
)
INSTALL_FILES = (
    'set -e; dir="$1"; pki="$2"; shift 2; '
    "trap 'rm -rf \"$dir\"' EXIT; "
    'for name; do flat=$(printf %s "$name" | tr / -); '
    'case "$name" in *.key) mode=0600;; *) mode=0644;; esac; '
    'install -D -o root -g root -m "$mode" "$dir/$flat" "$pki/$name"; done'
)
REMOVE_TEMP = 'rm -rf "$1"'


def control_plane_endpoint(cluster_configuration: str) -> str | None:
    """ClusterConfiguration's controlPlaneEndpoint; None when unset (`kubeadm init` without
    --control-plane-endpoint). Pure."""
    found = _ENDPOINT.search(cluster_configuration)
    value = found[1].strip("\"'") if found else ""
    return value or None


async def read_control_plane_endpoint(cluster: ClusterHandle, source: NodeView) -> str | None:
    """Read from the kubeadm-config ConfigMap with the control plane's admin.conf, as kubeadm
    reads it."""
    target = cluster.inventory.target(source)
    if target is None:
        raise PlanError(f"kubegate has no address for {source.name} to read kubeadm-config on.")
    answer = await (await cluster.ssh()).run(target, list(READ_CLUSTER_CONFIGURATION.argv))
    if not answer.ok:
        raise PlanError(
            f"kubegate could not read kube-system/kubeadm-config on {source.name} "
            f"(`kubectl get configmap`, exit {answer.exit_status}): {answer.tail(3)}"
        )
    return control_plane_endpoint(answer.stdout)


async def observe_control_plane(
    cluster: ClusterHandle, source: NodeView, nodes: list[NodeView]
) -> tuple[str | None, str | None]:
    """(controlPlaneEndpoint, why etcd is not whole or None), with the upgrade's etcd check."""
    endpoint = await read_control_plane_endpoint(cluster, source)
    try:
        problem = await etcd_problem(cluster, nodes)
    except OperationError as error:
        problem = error.message
    return endpoint, problem


async def pki_missing_from_vault(cluster: ClusterHandle) -> bool:
    """Whether the cluster keeps its PKI in Vault but nothing is stored there yet: the join
    would halt after the host was prepared, so the request is refused before."""
    if not cluster.inventory.pki_in_vault or cluster.vault is None:
        return False
    return await cluster.vault.version(pki_vault_path(cluster.inventory, cluster.name)) == 0


def control_plane_refusal(
    *,
    cluster: str,
    endpoint: str | None,
    etcd_problem: str | None,
    inventory: Inventory,
    vault_configured: bool,
    pki_missing_from_vault: bool = False,
) -> str | None:
    """Why this cluster cannot take a new control plane now; None when it can. Pure."""
    if endpoint is None:
        return (
            f"Cluster {cluster} has no controlPlaneEndpoint (kube-system/kubeadm-config): "
            "every control plane must be reached through one stable address, a load balancer "
            "in front of the API servers. Set that up first (kubeadm's HA guide); nothing was "
            "changed."
        )
    if etcd_problem is not None:
        return (
            "Refusing to add a control plane; nothing was changed. etcd must be healthy with "
            f"every member up before a member is added, and it is not: {etcd_problem}. Bring "
            "the member back (`etcdctl endpoint health --cluster` answers for all), then ask "
            "again."
        )
    if inventory.pki_in_vault and not vault_configured:
        return (
            f"Cluster {cluster} keeps its PKI in Vault, but kubegate has no Vault configured: "
            "configure it, or set `pki_in_vault: false` to join with kubeadm's certificate key."
        )
    if pki_missing_from_vault:
        return (
            f"Cluster {cluster} keeps its PKI in Vault, but Vault has none at "
            f"{pki_vault_path(inventory, cluster)} yet: run `/kube backup pki` first, then ask "
            "again (or set `pki_in_vault: false` to join with kubeadm's certificate key); "
            "nothing was changed."
        )
    return None


class PlaceClusterPkiParams(StepParams):
    step: Literal["place-cluster-pki"] = "place-cluster-pki"
    host: NodeRef
    vault_path: str


class PlaceClusterPki(Step[PlaceClusterPkiParams]):
    """The cluster's CAs and sa keys from Vault onto the new control plane, before its join.
    Writing them again is harmless (same contents, same owners and modes)."""

    name: ClassVar[str] = "place-cluster-pki"
    params_model: ClassVar[type[StepParams]] = PlaceClusterPkiParams

    async def run(self, ctx: StepContext) -> StepResult:
        vault, host = ctx.cluster.vault, self.params.host
        if vault is None:
            return StepResult.failed("kubegate has no Vault configured")
        if await vault.version(self.params.vault_path) == 0:  # removed since it was planned
            return StepResult.failed(
                f"Vault has nothing at {self.params.vault_path}: run `/kube backup pki` first"
            )
        stored, version = await vault.read(self.params.vault_path)
        files = {name: str(stored.get(name) or "") for name in CLUSTER_PKI_FILES}
        missing = [name for name, text in files.items() if not text.strip()]
        if missing:
            return StepResult.failed(
                f"Vault has no {', '.join(missing)} at {self.params.vault_path}: run "
                "`/kube backup pki` first"
            )
        for text in files.values():
            ctx.secret(text.strip())
        try:
            placed = await self._place(ctx, host, files)
        except SshError:
            # Its message may quote the command line, which holds the keys.
            return StepResult.failed(f"placing the cluster PKI on {host.name} could not run")
        if placed is not None:
            return placed
        return StepResult(
            ok=True,
            summary=f"{', '.join(CLUSTER_PKI_FILES)} from Vault (version {version}) placed "
            f"under {PKI_DIR} on {host.name}: root's, keys 0600, certificates 0644",
        )

    @staticmethod
    async def _place(ctx: StepContext, host: NodeRef, files: dict[str, str]) -> StepResult | None:
        remote = await Remote.open(ctx, host)
        as_login_user = Remote(remote.ssh, replace(remote.target, sudo=False), remote.timeout)
        pairs = [
            value
            for name, text in files.items()
            for value in (name.replace("/", "-"), text.strip())
        ]
        write = RemoteCommand.script(
            "write the PKI files to a private temp dir", WRITE_TEMP_FILES, *pairs
        )
        written = await as_login_user.run(write)
        if not written.ok:
            return StepResult.failed(
                f"`{write.label}` failed on {host.name} (exit {written.exit_status})"
            )
        temp = written.stdout.strip()
        install = RemoteCommand.script(
            f"install them under {PKI_DIR} (root's)", INSTALL_FILES, temp, PKI_DIR, *files
        )
        installed = await remote.run(
            install, running=running_file(ctx.job_id, PlaceClusterPki.name)
        )
        if not installed.ok:
            await as_login_user.run(RemoteCommand.script("remove the temp dir", REMOVE_TEMP, temp))
            return failed(installed, install.label)
        return None

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, self.params.host, self.name)


class ControlPlaneWholeParams(StepParams):
    step: Literal["control-plane-whole"] = "control-plane-whole"
    host: NodeRef


class ControlPlaneWhole(Step[ControlPlaneWholeParams]):
    """The new control plane's API server ready and etcd healthy with every member (its own
    among them), asked on the node itself, then the API through the load balancer."""

    name: ClassVar[str] = "control-plane-whole"
    params_model: ClassVar[type[StepParams]] = ControlPlaneWholeParams
    recheck_on_resume: ClassVar[bool] = True

    async def run(self, ctx: StepContext) -> StepResult:
        host, cluster = self.params.host, ctx.cluster
        remote = await Remote.open(ctx, host)
        plane = ControlPlaneNode(
            name=host.name,
            remote=remote,
            apiserver_url=cluster.inventory.apiserver_url(remote.target),
            etcd=cluster.inventory.etcd,
        )
        try:
            took = await plane.wait_until_whole(timeout=WHOLE_TIMEOUT_S)
        except ControlPlaneUnhealthy as error:
            return StepResult.failed(error.message)
        version = await cluster.kube.server_version()
        return StepResult(
            ok=True,
            summary=f"{host.name}: its etcd member healthy with every other, its kube-apiserver "
            f"at {plane.apiserver_url} ready ({took:.1f} s); the API answers through the "
            f"load balancer ({version})",
        )


def control_plane_steps(
    host: NodeRef, inventory: Inventory, cluster: str
) -> tuple[list[tuple[StepParams, str]], list[tuple[StepParams, str]]]:
    """The steps before a control plane's join (its CA from Vault when kept there; etcd whole
    once more, right before the member is added) and after it (the control plane whole)."""
    before: list[tuple[StepParams, str]] = []
    if inventory.pki_in_vault:
        path = pki_vault_path(inventory, cluster)
        before.append(
            (
                PlaceClusterPkiParams(host=host, vault_path=path),
                f"Place the cluster's CAs and sa keys from Vault ({path}) under {PKI_DIR} on "
                f"{host.name}: root's, keys 0600 (contents never shown)",
            )
        )
    before.append(
        (
            EtcdHealthyParams(node=host.name),
            "Check etcd is healthy with every member up before a member is added",
        )
    )
    after: list[tuple[StepParams, str]] = [
        (
            ControlPlaneWholeParams(host=host),
            f"Wait until {host.name}'s etcd member is healthy with the others and its "
            f"kube-apiserver is ready, and the API answers through the load balancer "
            f"(timeout {WHOLE_TIMEOUT_S / 60:.0f}m)",
        )
    ]
    return before, after
