"""Where etcd's own tools run on a kubeadm control plane: inside the etcd static pod's container
(`crictl exec`, the default: kubeadm puts no etcdctl on the host) or host binaries the config
names. etcd 3.6 removed `etcdctl snapshot status`/`restore`: those are etcdutl's
(etcd-io/etcd CHANGELOG-3.6.md)."""

from __future__ import annotations

from dataclasses import dataclass

from playbooks.base import RemoteShell
from playbooks.inventory import EtcdSettings
from playbooks.ssh import SshError, SshTarget

# crictl's --name is a regular expression: only the container named exactly `etcd`.
FIND_ETCD_CONTAINER = ["crictl", "ps", "--name", "^etcd$", "--state", "Running", "-q"]


@dataclass(frozen=True)
class EtcdTools:
    """etcdctl/etcdutl command lines on one node, with kubeadm's client certificates."""

    settings: EtcdSettings
    container: str | None  # the etcd container's id; None: host binaries

    @property
    def where(self) -> str:
        return f"the etcd container {self.container[:13]}" if self.container else "host binaries"

    @property
    def snapshot_dir(self) -> str:
        """Where a snapshot can be written: in the container, only its data dir is the host's."""
        return self.settings.data_dir if self.container else self.settings.snapshot_dir

    def _program(self, name: str, host_binary: str | None) -> list[str]:
        if self.container:
            return ["crictl", "exec", self.container, name]
        return [host_binary or name]

    def etcdctl(self, *args: str) -> list[str]:
        etcd = self.settings
        return [
            *self._program("etcdctl", etcd.etcdctl),
            f"--endpoints={etcd.endpoint}",
            f"--cacert={etcd.ca}",
            f"--cert={etcd.cert}",
            f"--key={etcd.key}",
            *args,
        ]

    def etcdutl(self, *args: str) -> list[str]:
        return [*self._program("etcdutl", self.settings.etcdutl), *args]


async def etcd_tools(ssh: RemoteShell, target: SshTarget, settings: EtcdSettings) -> EtcdTools:
    """The node's etcd tools: the configured binaries, else its running etcd container."""
    if settings.etcdctl and settings.etcdutl:
        return EtcdTools(settings, None)
    found = await ssh.run(target, FIND_ETCD_CONTAINER)
    containers = found.stdout.split()
    if not found.ok or not containers:
        raise SshError(
            f"no running etcd container on {target.node} (`crictl ps --name ^etcd$`): "
            f"{found.tail(3) or 'none listed'}. Is etcd a static pod there? Otherwise name "
            "host binaries in the cluster's inventory: etcd.etcdctl and etcd.etcdutl.",
            node=target.node,
        )
    return EtcdTools(settings, containers[0])
