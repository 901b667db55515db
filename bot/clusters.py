"""The clusters kubegate manages: opens each one's API (kubeconfig context), SSH executor and
Vault lazily, on first use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh

from bot.config import ClusterConfig, KubegateConfig
from bot.redact import Redactor
from playbooks import ClusterHandle, KubeApi
from playbooks.base import KubeconfigFile
from playbooks.ssh import Credentials, SshError, SshExecutor
from playbooks.vault import Vault, VaultError, VaultSettings


class Clusters:
    def __init__(
        self,
        config: KubegateConfig,
        *,
        default_kubeconfig: Path | None,
        vault: VaultSettings | None = None,
        backup_dir: Path = Path("backups"),
        redactor: Redactor | None = None,
    ) -> None:
        self._config = config
        self._default_kubeconfig = default_kubeconfig
        self._vault = Vault(vault) if vault else None
        self._backup_dir = backup_dir
        self._redactor = redactor or Redactor()
        self._handles: dict[str, ClusterHandle] = {}
        self._lock = asyncio.Lock()

    @property
    def config(self) -> KubegateConfig:
        return self._config

    def resolve(self, *, requested: str | None, channel: str) -> ClusterConfig | str:
        """The cluster a command is for, or a sentence saying why there is none."""
        if requested:
            cluster = self._config.cluster_named(requested)
            if cluster is None:
                known = ", ".join(c.name for c in self._config.clusters)
                return f"There is no cluster `{requested}`. Known clusters: {known}."
            return cluster
        cluster = self._config.cluster_for_channel(channel)
        if cluster is not None:
            return cluster
        if len(self._config.clusters) == 1:
            return self._config.clusters[0]
        return "This channel has no default cluster: add `-c <cluster>` to the command."

    async def handle(self, name: str) -> ClusterHandle:
        async with self._lock:
            if name not in self._handles:
                cluster = self._config.cluster_named(name)
                assert cluster is not None
                kubeconfig = cluster.kubeconfig or self._default_kubeconfig
                kube = await KubeApi.connect(
                    kubeconfig=kubeconfig,
                    context=cluster.context,
                    request_timeout=cluster.api_request_timeout.total_seconds(),
                )
                self._handles[name] = ClusterHandle(
                    name=name,
                    kube=kube,
                    inventory=cluster.inventory,
                    vault=self._vault,
                    backup_dir=self._backup_dir / name,
                    backup_keep=self._config.backups.keep,
                    ssh_factory=lambda: self._open_ssh(cluster),
                    # Certificate rotation renews it when it came from a control plane's admin.conf.
                    kubeconfig=KubeconfigFile(Path(kubeconfig), cluster.context)
                    if kubeconfig
                    else None,
                )
            return self._handles[name]

    async def _open_ssh(self, cluster: ClusterConfig) -> SshExecutor:
        ssh = cluster.inventory.ssh
        known_hosts = await self._secret_text(
            ssh.known_hosts, ssh.known_hosts_vault, "known_hosts", cluster
        )
        key_text = await self._secret_text(
            ssh.private_key, ssh.private_key_vault, "private_key", cluster
        )
        self._redactor.register(key_text)
        try:
            key = asyncssh.import_private_key(key_text)
        except (asyncssh.KeyImportError, ValueError) as error:
            raise SshError(
                f"kubegate's SSH private key for {cluster.name} cannot be read: {error}", node="-"
            ) from error
        certificate, renew = None, None
        if ssh.sign_with_vault:
            vault = self._vault
            if vault is None:
                raise SshError("sign_with_vault is set but no Vault is configured", node="-")
            public = key.export_public_key().decode()
            ttl = f"{int(ssh.certificate_ttl.total_seconds())}s"

            async def renew() -> asyncssh.SSHCertificate:
                try:
                    signed = await vault.sign_ssh_key(public, principals=ssh.user, ttl=ttl)
                except VaultError as error:
                    raise SshError(error.message, node="-") from error
                return asyncssh.import_certificate(signed)

            certificate = await renew()
        return SshExecutor(
            known_hosts=known_hosts,
            credentials=Credentials(key, certificate, renew=renew),
            connect_timeout=ssh.connect_timeout,
            max_parallel=ssh.max_parallel,
        )

    async def _secret_text(
        self, path: Path | None, vault_path: str | None, field: str, cluster: ClusterConfig
    ) -> str:
        if path is not None:
            try:
                return path.read_text()
            except OSError as error:
                raise SshError(
                    f"cannot read {field} file {path}: {error.strerror}", node="-"
                ) from error
        if vault_path is not None and self._vault is not None:
            try:
                data, _ = await self._vault.read(vault_path)
            except VaultError as error:
                raise SshError(error.message, node="-") from error
            if field not in data:
                raise SshError(f"Vault secret {vault_path} has no `{field}` field", node="-")
            return str(data[field])
        raise SshError(
            f"cluster {cluster.name} has no SSH {field} configured (file or Vault path)", node="-"
        )

    async def close(self) -> None:
        for handle in self._handles.values():
            await handle.close()
        self._handles.clear()
