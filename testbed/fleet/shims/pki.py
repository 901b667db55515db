"""`kubeadm certs check-expiration` and `kubeadm certs renew`, and the files under
/etc/kubernetes they stand for: the cluster's CAs (with their keys) and sa.key/sa.pub, real
X.509 leaves signed by their CA, the kubeconfigs' embedded client certificates (super-admin.conf
as kubeadm >= 1.29 writes it), and each node's kubelet client certificate. Renewal signs each
leaf anew with its CA and a new key (mode 0600, as kubeadm writes keys); the etcd client files
stay signed by the real etcd's CA, so etcdctl on the node keeps reaching it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
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
    """kubeadm's renewal on disk: each leaf signed anew by its CA (issue_leaf), and each
    kubeconfig's embedded client certificate replaced."""
    for name in names:
        if name in KUBECONFIG_SUBJECTS:
            embed_client_certificate(node.host_path(f"/etc/kubernetes/{name}"), name, days=days)
            continue
        stem = FILES.get(name)
        if stem is None:
            continue
        base = node.host_path(f"{PKI}/{stem}")
        authority = node.host_path(f"{PKI}/{AUTHORITY_FILES[CERT_CAS[name]]}")
        issue_leaf(base, name, authority, days=days)


# The CAs' files under the PKI directory, by kubeadm's names for them.
AUTHORITY_FILES = {"ca": "ca", "etcd-ca": "etcd/ca", "front-proxy-ca": "front-proxy-ca"}
# The client identity kubeadm puts in each kubeconfig it writes (kubeadm >= 1.29: admin.conf is
# in kubeadm:cluster-admins, super-admin.conf in system:masters).
KUBECONFIG_SUBJECTS = {
    "admin.conf": "/O=kubeadm:cluster-admins/CN=kubernetes-admin",
    "super-admin.conf": "/O=system:masters/CN=kubernetes-super-admin",
    "controller-manager.conf": "/CN=system:kube-controller-manager",
    "scheduler.conf": "/CN=system:kube-scheduler",
}
KUBELET_CLIENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _subject(name: str) -> str:
    return f"/CN={'kube-apiserver' if name == 'apiserver' else name}"


def issue_leaf(base: str, name: str, authority: str, *, days: int) -> None:
    """`base`.crt and a new `base`.key, signed by `authority`.crt/.key for `days`. A renewal
    keeps the old certificate's subject and extensions and makes a new key, as kubeadm's
    (cmd/kubeadm/app/phases/certs/renewal/filerenewer.go: pkiutil.NewCertAndKey; the existing
    certificate is the source of its attributes, per the kubeadm-certs task page). Without the
    CA's key on the node (a fleet started without etcd has no etcd CA) it is self-signed."""
    certificate, key = base + ".crt", base + ".key"
    os.makedirs(os.path.dirname(base), exist_ok=True)
    copy = ["-copy_extensions", "copy"]
    with tempfile.TemporaryDirectory() as scratch:
        request, fresh = os.path.join(scratch, "request.csr"), os.path.join(scratch, "new.key")
        if os.path.exists(certificate):
            _openssl(
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-out",
                fresh,
            )
            _openssl(
                "x509", "-in", certificate, "-x509toreq", "-signkey", fresh, *copy, "-out", request
            )
        else:
            _openssl(
                "req", "-new", *_EC_KEY, "-keyout", fresh, "-subj", _subject(name), "-out", request
            )
        if os.path.exists(authority + ".key"):
            signer = ["-CA", authority + ".crt", "-CAkey", authority + ".key"]
        else:
            signer = ["-signkey", fresh]
        _openssl(
            "x509", "-req", "-in", request, *signer, "-days", str(days), *copy, "-out", certificate
        )
        shutil.copyfile(fresh, key)  # in place: the key file keeps its owner
    os.chmod(key, 0o600)


def client_certificate(subject: str, authority: str, *, days: int) -> tuple[bytes, bytes]:
    """A new client certificate and its key (PEM), signed by `authority`.crt/.key."""
    with tempfile.TemporaryDirectory() as scratch:
        base = os.path.join(scratch, "client")
        _openssl(
            "req",
            "-new",
            *_EC_KEY,
            "-keyout",
            base + ".key",
            "-subj",
            subject,
            "-out",
            base + ".csr",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            base + ".csr",
            "-CA",
            authority + ".crt",
            "-CAkey",
            authority + ".key",
            "-days",
            str(days),
            "-out",
            base + ".crt",
        )
        with open(base + ".crt", "rb") as cert, open(base + ".key", "rb") as key:
            return cert.read(), key.read()


def embed_client_certificate(kubeconfig: str, name: str, *, days: int) -> None:
    """A kubeconfig's user gets a new client certificate and key, as `kubeadm certs renew`
    rewrites admin.conf and the others; the rest of the file (and a token) stays."""
    if not os.path.exists(kubeconfig):
        return
    with open(kubeconfig) as file:
        config = json.load(file)
    authority = os.path.join(os.path.dirname(kubeconfig), "pki", "ca")
    certificate, key = client_certificate(KUBECONFIG_SUBJECTS[name], authority, days=days)
    for user in config.get("users", []):
        user["user"]["client-certificate-data"] = base64.b64encode(certificate).decode()
        user["user"]["client-key-data"] = base64.b64encode(key).decode()
    with open(kubeconfig, "w") as file:
        json.dump(config, file, indent=2)  # in place: owner and mode stay
    os.chmod(kubeconfig, 0o600)


def write_authorities(directory: str, ca: str) -> None:
    """The cluster's shared CA material once per cluster (what `kubeadm init` makes and every
    control plane joining with --certificate-key gets): the API's CA (`ca`: its .crt/.key),
    the front-proxy CA and the service-account signing key pair."""
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(os.path.join(directory, "sa.pub")):
        return
    for suffix in (".crt", ".key"):
        shutil.copyfile(ca + suffix, os.path.join(directory, "ca" + suffix))
    front = os.path.join(directory, "front-proxy-ca")
    _openssl(
        "req",
        "-x509",
        *_EC_KEY,
        "-keyout",
        front + ".key",
        "-out",
        front + ".crt",
        "-days",
        "3650",
        "-subj",
        "/CN=front-proxy-ca",
    )
    sa = os.path.join(directory, "sa")
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", sa + ".key"
    )
    _openssl("pkey", "-in", sa + ".key", "-pubout", "-out", sa + ".pub")


def write_control_plane_pki(root: str, authorities: str, *, days: int = 300) -> None:
    """A control plane's /etc/kubernetes as kubeadm leaves it: the shared CAs and sa keys, the
    leaf certificates (`days` left, as the node's state says), super-admin.conf,
    controller-manager.conf and scheduler.conf beside admin.conf, each kubeconfig with its
    embedded client certificate."""
    pki = os.path.join(root, PKI.lstrip("/"))
    for name in (
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
    ):
        shutil.copyfile(os.path.join(authorities, name), os.path.join(pki, name))
    for name, stem in FILES.items():
        # Those the etcd CA signs come with the etcd member (fleet.attach_etcd) or at renewal.
        if CERT_CAS[name] != "etcd-ca":
            authority = os.path.join(pki, AUTHORITY_FILES[CERT_CAS[name]])
            issue_leaf(os.path.join(pki, stem), name, authority, days=days)
    # kubeadm init phase kubeconfig writes all four, each with its own client certificate
    # (kubernetes.io/docs/setup/production-environment/tools/kubeadm/kubeadm-certs); here the
    # controller manager's and the scheduler's are read by no one but `kubeadm certs`.
    admin = os.path.join(root, "etc/kubernetes/admin.conf")
    for name in KUBECONFIG_SUBJECTS:
        path = os.path.join(root, "etc/kubernetes", name)
        if path != admin:
            shutil.copyfile(admin, path)
        embed_client_certificate(path, name, days=days)


def write_kubelet_client(root: str, node: str, authority: str, *, days: int = 365) -> None:
    """The kubelet's client certificate and key in one file, as the kubelet's certificate
    manager keeps them (kubelet-client-current.pem, a link to the newest, mode 0600)."""
    certificate, key = client_certificate(
        f"/O=system:nodes/CN=system:node:{node}", authority, days=days
    )
    path = os.path.join(root, KUBELET_CLIENT.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(certificate + key)
    os.chmod(path, 0o600)
