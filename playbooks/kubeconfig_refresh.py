"""kubegate's own kubeconfig after a certificate rotation. When it was copied from a control
plane's admin.conf (its credentials are that file's), the renewed admin.conf is read back with
sudo, its credentials written where kubegate's config points (0600, the server kept), and the
API asked once through them before kubegate switches over. Credentials never reach the output.
"""

from __future__ import annotations

import asyncio
import copy
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from playbooks.base import ClusterHandle, Step, StepContext, StepOutcome, StepResult
from playbooks.errors import OperationError
from playbooks.kube import KubeApi
from playbooks.plan import StepParams
from playbooks.ssh import SshTarget

ADMIN_CONF = "/etc/kubernetes/admin.conf"
# What makes a kubeconfig user who it is; the rest (names, exec plugins) is kept as it was.
CREDENTIALS = ("token", "client-certificate-data", "client-key-data")

Kubeconfig = dict[str, Any]


def current_user(config: Kubeconfig, context: str | None = None) -> dict[str, Any] | None:
    """The `user` entry the context (or the current one) names. Pure."""
    wanted = context or config.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    user_name = contexts.get(wanted, {}).get("user")
    for user in config.get("users") or []:
        if user.get("name") == user_name:
            found: dict[str, Any] = user.setdefault("user", {})
            return found
    return None


def came_from(ours: Kubeconfig, admin: Kubeconfig, context: str | None = None) -> bool:
    """Whether our credentials are that admin.conf's: the same token or client certificate."""
    mine, theirs = current_user(ours, context), current_user(admin)
    if not mine or not theirs:
        return False
    return any(mine.get(key) and mine.get(key) == theirs.get(key) for key in CREDENTIALS[:2])


def renewed_kubeconfig(ours: Kubeconfig, admin: Kubeconfig, context: str | None) -> Kubeconfig:
    """Ours with its user's credentials replaced by the renewed admin.conf's. Pure."""
    fresh = copy.deepcopy(ours)
    mine, theirs = current_user(fresh, context), current_user(admin) or {}
    if mine is not None:
        for key in CREDENTIALS:
            mine.pop(key, None)
            if key in theirs:
                mine[key] = theirs[key]
    return fresh


async def read_admin_conf(cluster: ClusterHandle, target: SshTarget) -> Kubeconfig | None:
    """The node's admin.conf (root's, 0600: read with sudo); None when it cannot be read."""
    ssh = await cluster.ssh()
    result = await ssh.run(
        target, ("cat", ADMIN_CONF), timeout=cluster.inventory.ssh.command_timeout
    )
    if not result.ok:
        return None
    try:
        parsed = yaml.safe_load(result.stdout)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _load(path: Path) -> Kubeconfig:
    parsed = yaml.safe_load(path.read_text())
    return parsed if isinstance(parsed, dict) else {}


def _write_private(path: Path, config: Kubeconfig) -> None:
    """Replace the file whole (a reader never sees half of it), mode 0600 from the start."""
    partial = path.with_name(f".{path.name}.kubegate-new")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        yaml.safe_dump(config, file, sort_keys=False)
    os.replace(partial, path)


async def kubeconfig_source(cluster: ClusterHandle, targets: list[SshTarget]) -> str | None:
    """The control plane whose admin.conf kubegate's kubeconfig was copied from, if any."""
    if cluster.kubeconfig is None:
        return None
    ours = await asyncio.to_thread(_load, cluster.kubeconfig.path)
    for target in targets:
        admin = await read_admin_conf(cluster, target)
        if admin is not None and came_from(ours, admin, cluster.kubeconfig.context):
            return target.node
    return None


class RefreshKubeconfigParams(StepParams):
    step: Literal["refresh-kubeconfig"] = "refresh-kubeconfig"
    nodes: list[str]


class KubeconfigSource(StepOutcome):
    """What the expiry check found out about kubegate's kubeconfig (its outcome, read narrowly)."""

    kubeconfig_from: str | None = None


class KubeconfigRefreshed(StepOutcome):
    source: str | None = None


class RefreshKubeconfig(Step[RefreshKubeconfigParams]):
    """kubegate's own kubeconfig from the renewed admin.conf, when it came from one."""

    name: ClassVar[str] = "refresh-kubeconfig"
    params_model: ClassVar[type[StepParams]] = RefreshKubeconfigParams

    async def run(self, ctx: StepContext) -> StepResult:
        source = ctx.outcome("check-expiration", KubeconfigSource).kubeconfig_from
        cluster, kubeconfig = ctx.cluster, ctx.cluster.kubeconfig
        if source is None or kubeconfig is None:
            return StepResult.done(
                "skipped: kubegate's kubeconfig did not come from a control plane's admin.conf",
                KubeconfigRefreshed(),
            )
        admin = await read_admin_conf(cluster, await cluster.ssh_target(source))
        if admin is None:
            return StepResult.failed(f"cannot read {ADMIN_CONF} on {source} (with sudo)")
        before = await asyncio.to_thread(_load, kubeconfig.path)
        fresh = renewed_kubeconfig(before, admin, kubeconfig.context)
        await asyncio.to_thread(_write_private, kubeconfig.path, fresh)
        kube: KubeApi | None = None
        try:
            kube = await KubeApi.connect(kubeconfig=kubeconfig.path, context=kubeconfig.context)
            await kube.list_nodes()
        except OperationError as error:
            if kube is not None:
                await kube.close()
            await asyncio.to_thread(_write_private, kubeconfig.path, before)
            return StepResult.failed(
                f"the renewed credentials from {source}'s admin.conf do not work ({error.message}); "
                f"kubegate kept its old kubeconfig at {kubeconfig.path}"
            )
        old, cluster.kube = cluster.kube, kube
        await old.close()
        return StepResult.done(
            f"kubegate's kubeconfig {kubeconfig.path} now holds {source}'s renewed admin "
            "credentials; the API answers through them",
            KubeconfigRefreshed(source=source),
        )
