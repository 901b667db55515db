"""The etcd static pod manifest kubeadm writes for a stacked member
(kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go, GetEtcdPodSpec/getEtcdCommand):
the member's --name, its peer and client URLs, --initial-cluster, --data-dir=/var/lib/etcd and
the TLS files under /etc/kubernetes/pki/etcd, with the two hostPath volumes. The testbed's
kubelet (testbed/controlplanes.py) runs the member on the data dir this manifest names."""

from __future__ import annotations

import re
from pathlib import Path

from testbed.fleet.layout import ETCD_IMAGE

ETCD_DATA_DIR = "/var/lib/etcd"
PKI = "/etc/kubernetes/pki/etcd"
DATA_DIR_FLAG = re.compile(r"^\s*- --data-dir=(\S+)\s*$", re.MULTILINE)


def etcd_manifest(*, name: str, client_url: str, peer_url: str, initial_cluster: str) -> str:
    flags = [
        f"--advertise-client-urls={client_url}",
        f"--cert-file={PKI}/server.crt",
        "--client-cert-auth=true",
        f"--data-dir={ETCD_DATA_DIR}",
        "--experimental-initial-corrupt-check=true",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={initial_cluster}",
        f"--key-file={PKI}/server.key",
        f"--listen-client-urls=https://127.0.0.1:2379,{client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--name={name}",
        f"--peer-cert-file={PKI}/peer.crt",
        "--peer-client-cert-auth=true",
        f"--peer-key-file={PKI}/peer.key",
        f"--peer-trusted-ca-file={PKI}/ca.crt",
        "--snapshot-count=10000",
        f"--trusted-ca-file={PKI}/ca.crt",
    ]
    lines = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  name: etcd",
        "  namespace: kube-system",
        "  labels:",
        "    component: etcd",
        "    tier: control-plane",
        "spec:",
        "  hostNetwork: true",
        "  priorityClassName: system-node-critical",
        "  containers:",
        "  - name: etcd",
        f"    image: {ETCD_IMAGE}",
        "    command:",
        "    - etcd",
        *(f"    - {flag}" for flag in flags),
        "    volumeMounts:",
        f"    - mountPath: {ETCD_DATA_DIR}",
        "      name: etcd-data",
        f"    - mountPath: {PKI}",
        "      name: etcd-certs",
        "  volumes:",
        "  - hostPath:",
        f"      path: {PKI}",
        "      type: DirectoryOrCreate",
        "    name: etcd-certs",
        "  - hostPath:",
        f"      path: {ETCD_DATA_DIR}",
        "      type: DirectoryOrCreate",
        "    name: etcd-data",
    ]
    return "\n".join(lines) + "\n"


def manifest_data_dir(manifest: Path) -> str | None:
    """The --data-dir the manifest gives etcd, as the kubelet would start it; None if unreadable."""
    try:
        found = DATA_DIR_FLAG.search(manifest.read_text())
    except OSError:
        return None
    return found.group(1) if found else None
