"""The certificate files `kubeadm certs renew` re-signs under /etc/kubernetes/pki: a real
(self-signed) certificate per renewed name, keeping the key beside it, as kubeadm does.

The etcd files the fleet copied from the testbed's real etcd are left alone: etcdctl on the
node needs them to keep reaching that etcd.
"""

from __future__ import annotations

import os
import subprocess

from testbed.fleet.shims.nodestate import Node

PKI = "/etc/kubernetes/pki"
# kubeadm's certificate names -> their files (without .crt/.key); kubeconfig files are not here.
FILES = {
    "apiserver": "apiserver", "apiserver-kubelet-client": "apiserver-kubelet-client",
    "apiserver-etcd-client": "apiserver-etcd-client", "front-proxy-client": "front-proxy-client",
    "etcd-server": "etcd/server", "etcd-peer": "etcd/peer",
    "etcd-healthcheck-client": "etcd/healthcheck-client",
}  # fmt: skip


def write_renewed(node: Node, names: list[str], *, days: int = 365) -> None:
    for name in names:
        stem = FILES.get(name)
        if stem is None:
            continue
        base = node.host_path(f"{PKI}/{stem}")
        certificate, key = base + ".crt", base + ".key"
        if stem.startswith("etcd/") and os.path.exists(certificate) and _from_real_etcd(node):
            continue
        os.makedirs(os.path.dirname(base), exist_ok=True)
        if os.path.exists(key):
            keying = ["-key", key]
        else:
            keying = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]  # fmt: skip
        subprocess.run(
            ["openssl", "req", "-x509", *keying, "-out", certificate, "-days", str(days),
             "-subj", f"/CN={'kube-apiserver' if name == 'apiserver' else name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        os.chmod(key, 0o600)


def _from_real_etcd(node: Node) -> bool:
    return bool(node.config.get("etcd_endpoint"))
