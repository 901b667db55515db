"""`kubeadm init phase upload-certs --upload-certs` on a control plane, and the download a
`kubeadm join --control-plane --certificate-key` does: the certificates control planes share,
encrypted with the certificate key into the kube-system/kubeadm-certs Secret, which lives 2 h.

Modelled on kubernetes/kubernetes cmd/kubeadm/app/phases/copycerts/copycerts.go (UploadCerts:
a 32-byte key printed as hex, each shared file encrypted into the Secret's data, the Secret owned
by a bootstrap token with a 2 h TTL; DownloadCerts: decrypt with the key, write keys 0600) and
cmd/kubeadm/app/cmd/phases/init/uploadcerts.go (its printed lines). kubeadm encrypts with
AES-256-GCM; the shim's lean interpreter has only the openssl CLI, so AES-256-CBC stands in: a
wrong key still fails to decrypt, which is what a caller can notice.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import time
from typing import Any

from testbed.fleet.shims.kubeadm import NOT_ROOT, option
from testbed.fleet.shims.nodestate import Node, fail

PKI = "/etc/kubernetes/pki"
SHARED = (
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
)
SECRET = "/api/v1/namespaces/kube-system/secrets/kubeadm-certs"
SECRETS = "/api/v1/namespaces/kube-system/secrets"
TTL_S = 2 * 3600.0  # kubeadm's certificate key and its Secret live two hours
EXPIRES = "testbed.kubegate.io/expires"  # stands in for the owning token's expiry
KEY = re.compile(r"^[0-9a-f]{64}$")


def _crypt(key: str, data: bytes, *, iv: str, decrypt: bool) -> bytes | None:
    args = ["openssl", "enc", "-aes-256-cbc", "-K", key, "-iv", iv]
    done = subprocess.run([*args, *(["-d"] if decrypt else [])], input=data, capture_output=True)
    return done.stdout if done.returncode == 0 else None


def upload(node: Node, args: list[str]) -> int:
    if not node.privileged():
        return fail("error execution phase preflight: " + NOT_ROOT)
    state = node.read_state()
    if state["role"] != "control-plane" or not state["joined"]:
        return fail(
            "error execution phase upload-certs: failed to load admin kubeconfig: open "
            "/etc/kubernetes/admin.conf: no such file or directory"
        )
    key = option(args, "--certificate-key") or secrets.token_hex(32)
    if not KEY.match(key):
        return fail("error execution phase upload-certs: invalid certificate key")
    data: dict[str, str] = {}
    for name in SHARED:
        try:
            with open(node.host_path(f"{PKI}/{name}"), "rb") as file:
                plain = file.read()
        except OSError as error:
            return fail(f"error execution phase upload-certs: error uploading certs: {error}")
        iv = secrets.token_hex(16)
        sealed = _crypt(key, plain, iv=iv, decrypt=False)
        if sealed is None:
            return fail("error execution phase upload-certs: error encrypting certs")
        data[name.replace("/", "-")] = base64.b64encode(bytes.fromhex(iv) + sealed).decode()
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "kubeadm-certs",
            "namespace": "kube-system",
            "annotations": {EXPIRES: str(time.time() + TTL_S)},
        },
        "data": data,
    }
    try:
        node.api("POST", SECRETS, secret)
    except RuntimeError as error:
        if ": 409 " not in str(error):
            raise
        node.api("PUT", SECRET, secret)
    _record_issued(node, key)
    print(
        '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    )
    print("[upload-certs] Using certificate key:")
    print(key)
    return 0


def issued_keys_path(cluster_dir: str) -> str:
    return os.path.join(cluster_dir, "issued-certificate-keys")


def _record_issued(node: Node, key: str) -> None:
    """Every certificate key ever used, for tests that look for it where it must not be."""
    path = issued_keys_path(node.config["cluster_dir"])
    with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as file:
        file.write(key + "\n")


def download(node: Node, key: str) -> str | None:
    """The shared files from the Secret onto this host; an error message, or None."""
    missing = (
        "error execution phase control-plane-prepare/download-certs: error downloading certs: "
        'error downloading the secret: secrets "kubeadm-certs" not found'
    )
    try:
        secret = node.api("GET", SECRET)
    except RuntimeError as error:
        if ": 404 " not in str(error):
            raise
        return missing
    expires = float(secret["metadata"].get("annotations", {}).get(EXPIRES, "0"))
    if expires < time.time():
        return missing  # the token that owned it expired: the garbage collector removed it
    if not KEY.match(key):
        return "error execution phase control-plane-prepare/download-certs: invalid certificate key"
    files: dict[str, bytes] = {}
    for name in SHARED:
        blob = base64.b64decode(secret["data"].get(name.replace("/", "-"), ""))
        plain = _crypt(key, blob[16:], iv=blob[:16].hex(), decrypt=True) if blob else None
        if plain is None:
            return (
                "error execution phase control-plane-prepare/download-certs: error downloading "
                "certs: error decoding secret data with provided key: cipher: message "
                "authentication failed"
            )
        files[name] = plain
    for name, plain in files.items():
        path = node.host_path(f"{PKI}/{name}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = 0o600 if name.endswith(".key") else 0o644
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
            file.write(plain)
        os.chmod(path, mode)
    print(
        '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    )
    return None
