"""kubegate's SSH executor against the real-OpenSSH fleet: pinning, certificates, Vault."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from playbooks.ssh import Credentials, HostKeyError, SshError, SshExecutor, SshTarget
from playbooks.vault import Vault, VaultError, VaultSettings
from testbed.up import Testbed


def target(testbed: Testbed, node: str, *, sudo: bool = False) -> SshTarget:
    fleet_node = testbed.fleet.nodes[node]
    return SshTarget(
        node=node,
        host=fleet_node.address,
        port=fleet_node.port,
        user=testbed.fleet.user,
        sudo=sudo,
    )


def executor(
    testbed: Testbed, *, known_hosts: str | None = None, certificate: str | None = None
) -> SshExecutor:
    key = asyncssh.import_private_key(testbed.fleet.client_key_path.read_text())
    cert = asyncssh.import_certificate(certificate) if certificate else None
    return SshExecutor(
        known_hosts=testbed.fleet.known_hosts_path.read_text()
        if known_hosts is None
        else known_hosts,
        credentials=Credentials(key, cert),
    )


def vault_of(testbed: Testbed) -> Vault:
    assert testbed.world is not None
    return Vault(VaultSettings(url=testbed.world.vault.url, token=testbed.world.vault.root_token))


async def test_a_command_runs_with_its_exit_code_and_output(full_testbed: Testbed) -> None:
    ssh = executor(full_testbed)
    try:
        ok = await ssh.run(target(full_testbed, "worker-1"), ["kubeadm", "version", "-o", "short"])
        bad = await ssh.run(target(full_testbed, "worker-1"), ["sh", "-c", "echo oops >&2; exit 3"])
    finally:
        await ssh.close()
    assert ok.ok and ok.stdout.strip().startswith("v1.")
    assert (bad.exit_status, bad.stderr.strip()) == (3, "oops")
    assert ["kubeadm", "version", "-o", "short"] in [
        c.argv for c in full_testbed.fleet.calls("worker-1")
    ]


async def test_an_unpinned_host_is_refused_naming_its_fingerprint(full_testbed: Testbed) -> None:
    node = full_testbed.fleet.nodes["worker-2"]
    pinned = full_testbed.fleet.known_hosts_path.read_text().splitlines()
    others = "\n".join(line for line in pinned if f"[{node.address}]:{node.port}" not in line)
    ssh = executor(full_testbed, known_hosts=others)
    with pytest.raises(HostKeyError) as refused:
        await ssh.run(target(full_testbed, "worker-2"), ["kubeadm", "version"])
    await ssh.close()
    assert "worker-2" in refused.value.message and "is not pinned" in refused.value.message
    assert node.host_key_fingerprint in refused.value.message
    assert full_testbed.fleet.calls("worker-2") == []


async def test_a_certificate_signed_by_vaults_ssh_ca_logs_in(full_testbed: Testbed) -> None:
    key = asyncssh.import_private_key(full_testbed.fleet.client_key_path.read_text())
    signed = await vault_of(full_testbed).sign_ssh_key(
        key.export_public_key().decode(), principals=full_testbed.fleet.user
    )
    ssh = executor(full_testbed, certificate=signed)
    try:
        result = await ssh.run(target(full_testbed, "cp-1", sudo=True), ["swapoff", "-a"])
    finally:
        await ssh.close()
    assert result.ok


async def test_kv_check_and_set_and_a_sealed_vault_give_clear_errors(full_testbed: Testbed) -> None:
    vault = vault_of(full_testbed)
    version = await vault.write("kubegate/pki/testbed", {"ca.crt": "x"}, cas=0)
    assert await vault.read("kubegate/pki/testbed") == ({"ca.crt": "x"}, version)
    with pytest.raises(VaultError, match="check-and-set"):
        await vault.write(
            "kubegate/pki/testbed", {"ca.crt": "y"}, cas=version - 1 if version > 1 else 0
        )
    assert full_testbed.world is not None
    full_testbed.world.vault.sealed = True
    with pytest.raises(VaultError, match="sealed"):
        await vault.read("kubegate/pki/testbed")


@pytest.mark.parametrize("auth", ["approle", "kubernetes"])
async def test_kubegate_logs_in_to_vault_with_approle_or_its_service_account(
    full_testbed: Testbed, tmp_path: Path, auth: str
) -> None:
    assert full_testbed.world is not None
    fake = full_testbed.world.vault
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOi.service-account.jwt\n")
    fake.kubernetes_jwts["eyJhbGciOi.service-account.jwt"] = "kubegate"
    settings = VaultSettings(
        url=fake.url,
        auth=auth,  # type: ignore[arg-type]
        role_id=fake.approle_role_id,
        secret_id=fake.approle_secret_id,
        kubernetes_role="kubegate",
        kubernetes_jwt_path=str(jwt),
    )
    vault = Vault(settings)
    looked_up = await vault.token_lookup()
    assert looked_up["display_name"].startswith(auth) and looked_up["id"] != fake.root_token
    bad = Vault(VaultSettings(url=fake.url, auth="approle", role_id="nope", secret_id="nope"))
    with pytest.raises(VaultError):
        await bad.token_lookup()


async def test_a_copy_that_never_progresses_ends_at_the_transfer_timeout_and_leaves_no_file(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    ssh = executor(full_testbed)
    ssh.transfer_timeout = 1.0
    node = target(full_testbed, "worker-1")
    # A named pipe nobody writes to: sftp-server's open() of it blocks, as a hung disk would.
    made = await ssh.run(
        node, ["sh", "-c", 'p=$(mktemp -u /tmp/kubegate-fifo.XXXXXX) && mkfifo "$p" && echo "$p"']
    )
    fifo = made.stdout.strip()
    local = tmp_path / "snapshot.db"
    try:
        with pytest.raises(SshError) as stuck:
            await ssh.sftp_get(node, fifo, str(local))
    finally:
        await ssh.run(node, ["rm", "-f", fifo])
        await ssh.close()
    assert "did not finish within 1 s" in stuck.value.message
    assert not local.exists()
