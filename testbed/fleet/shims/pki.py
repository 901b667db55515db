"""`kubeadm certs check-expiration` and `kubeadm certs renew`, and the certificate files renewal
re-signs under /etc/kubernetes/pki: a real (self-signed) certificate per renewed name, keeping
the key beside it (mode 0600, as kubeadm writes keys), as kubeadm does.

The etcd files the fleet copied from the testbed's real etcd are left alone: etcdctl on the
node needs them to keep reaching that etcd.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from testbed.fleet.shims.nodestate import Node, fail

PKI = "/etc/kubernetes/pki"
DAY = 86400.0
# kubeadm's certificate names -> the CA that signs them (kubeadm certs check-expiration).
CERT_CAS = {
    "admin.conf": "ca",
    "apiserver": "ca",
    "apiserver-etcd-client": "etcd-ca",
    "apiserver-kubelet-client": "ca",
    "controller-manager.conf": "ca",
    "etcd-healthcheck-client": "etcd-ca",
    "etcd-peer": "etcd-ca",
    "etcd-server": "etcd-ca",
    "front-proxy-client": "front-proxy-ca",
    "scheduler.conf": "ca",
    "super-admin.conf": "ca",
}
# kubeadm's certificate names -> their files (without .crt/.key); kubeconfig files are not here.
FILES = {
    "apiserver": "apiserver",
    "apiserver-kubelet-client": "apiserver-kubelet-client",
    "apiserver-etcd-client": "apiserver-etcd-client",
    "front-proxy-client": "front-proxy-client",
    "etcd-server": "etcd/server",
    "etcd-peer": "etcd/peer",
    "etcd-healthcheck-client": "etcd/healthcheck-client",
}
# What kubeadm reads first when it is not root: the 0600 admin kubeconfig.
ADMIN_DENIED = "open /etc/kubernetes/admin.conf: permission denied"


def renew_all(state: dict[str, Any], names: list[str]) -> None:
    """New expiry dates (a year) for `names`; kubeadm upgrade renews every certificate too."""
    expiry = time.time() + 365 * DAY
    for name in names:
        state["certs"][name] = expiry


def _residual(seconds: float) -> str:
    days = max(0, int(seconds // DAY))
    return f"{days // 365}y" if days >= 365 else f"{days}d"


def _stamp(epoch: float) -> str:
    return time.strftime("%b %d, %Y %H:%M UTC", time.gmtime(epoch))


def check_expiration(node: Node) -> int:
    state = node.read_state()
    if not state["certs"]:
        return fail(
            "[check-expiration] Error reading configuration from the Cluster. "
            "open /etc/kubernetes/pki/ca.crt: no such file or directory"
        )
    if not node.privileged():
        return fail(f"failed to load existing certificate admin.conf: {ADMIN_DENIED}")
    now = time.time()
    print("[check-expiration] Reading configuration from the cluster...")
    print(
        "[check-expiration] FYI: You can look at this config file with "
        "'kubectl -n kube-system get cm kubeadm-config -o yaml'\n"
    )
    row = "{:<26} {:<24} {:<15} {:<23} {}"
    headings = ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY")
    print(row.format(*headings, "EXTERNALLY MANAGED"))
    for name in sorted(state["certs"]):
        expiry = state["certs"][name]
        authority = CERT_CAS.get(name, "ca")
        print(row.format(name, _stamp(expiry), _residual(expiry - now), authority, "no"))
    print()
    ca_row = "{:<23} {:<24} {:<15} {}"
    print(ca_row.format("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"))
    for name in ("ca", "etcd-ca", "front-proxy-ca"):
        expiry = state["cas"][name]
        print(ca_row.format(name, _stamp(expiry), _residual(expiry - now), "no"))
    return 0


def renew(node: Node, which: list[str]) -> int:
    if not node.privileged():
        return fail(f"failed to load admin kubeconfig: {ADMIN_DENIED}")
    with node.state() as state:
        if not state["certs"]:
            return fail("open /etc/kubernetes/pki/ca.crt: no such file or directory")
        names = list(state["certs"]) if which[:1] == ["all"] else which
        unknown = [n for n in names if n not in state["certs"]]
        if not names or unknown:
            return fail(f'unknown command "{" ".join(unknown)}" for "kubeadm certs renew"')
        renew_all(state, names)
    write_renewed(node, names)
    print("[renew] Reading configuration from the cluster...")
    print(
        "[renew] FYI: You can look at this config file with "
        "'kubectl -n kube-system get cm kubeadm-config -o yaml'\n"
    )
    for name in sorted(names):
        print(f"certificate {name} renewed")
    print(
        "\nDone renewing certificates. You must restart the kube-apiserver, "
        "kube-controller-manager, kube-scheduler and etcd, so that they can use the new "
        "certificates."
    )
    return 0


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
            curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
            keying = [*curve, "-nodes", "-keyout", key]
        subject = f"/CN={'kube-apiserver' if name == 'apiserver' else name}"
        signing = ["-out", certificate, "-days", str(days), "-subj", subject]
        subprocess.run(
            ["openssl", "req", "-x509", *keying, *signing],
            check=True,
            capture_output=True,
        )
        os.chmod(key, 0o600)


def _from_real_etcd(node: Node) -> bool:
    return bool(node.config.get("etcd_endpoint") or node.config.get("etcd_endpoints"))
