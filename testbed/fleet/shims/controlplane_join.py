"""The host's half of `kubeadm join --control-plane`: before the kubelet starts, the checks of
join's preflight for a new control plane (a stable controlPlaneEndpoint, the shared
certificates present: placed beforehand or downloaded with the certificate key) and the
check-etcd phase; after the Node registered, the control-plane-join phase on the testbed's
world (testbed/cpjoin.py: etcd member add, the API server behind the load balancer) and what
kubeadm leaves on the host (its leaf certificates, admin.conf).

Modelled on kubernetes/kubernetes cmd/kubeadm/app/cmd/join.go and phases/join/preflight.go
(checkIfReadyForAdditionalControlPlane: "one or more conditions for hosting a new control plane
instance is not satisfied"), controlplaneprepare.go (download-certs, certs, kubeconfig) and
checketcd.go.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import time
import urllib.parse
from typing import Any

from testbed.fleet.shims import pki
from testbed.fleet.shims.kubeadm import KUBEADM_CONFIG
from testbed.fleet.shims.nodestate import Node
from testbed.fleet.shims.uploadcerts import PKI, SHARED, download

ENDPOINT = re.compile(r"^controlPlaneEndpoint:\s*(\S*)\s*$", re.MULTILINE)
NOT_READY = (
    "error execution phase preflight: \none or more conditions for hosting a new control plane "
    "instance is not satisfied.\n\n{reason}\n\nPlease ensure that:\n"
    "* The cluster has a stable controlPlaneEndpoint address.\n"
    "* The certificates that must be shared among control plane instances are provided.\n"
)
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}


def control_plane_endpoint(node: Node) -> str:
    config_map = node.api("GET", KUBEADM_CONFIG) or {}
    found = ENDPOINT.search((config_map.get("data") or {}).get("ClusterConfiguration", ""))
    value = found[1] if found else ""
    return "" if value in ('""', "''") else value


def prepare(node: Node, certificate_key: str | None) -> str | None:
    """What must hold before the kubelet starts; an error message, or None."""
    if not control_plane_endpoint(node):
        return NOT_READY.format(
            reason="unable to add a new control plane instance to a cluster that doesn't have "
            "a stable controlPlaneEndpoint address"
        )
    if certificate_key is not None:
        refused = download(node, certificate_key)
        if refused is not None:
            return refused
    absent = [name for name in SHARED if not os.path.exists(node.host_path(f"{PKI}/{name}"))]
    if absent:
        path = f"{PKI}/{absent[0]}"
        return NOT_READY.format(
            reason=f"[failure loading {absent[0]}: couldn't load the file {path}: open {path}: "
            "no such file or directory]"
        )
    return _ask_testbed(node, {"phase": "check-etcd"})


def finish(node: Node, name: str, bind_port: int) -> str | None:
    """The control-plane-join phase and the files kubeadm leaves; an error message, or None."""
    refused = _ask_testbed(node, {"phase": "join", "name": name, "bind_port": bind_port})
    if refused is not None:
        return refused
    # The API server's serving certificate and the etcd member's came with the member
    # (testbed/cpjoin.py); kubeadm's certs phase signs the rest with the shared CAs.
    for certificate in ("apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client"):
        authority = node.host_path(f"{PKI}/{pki.AUTHORITY_FILES[pki.CERT_CAS[certificate]]}")
        stem = pki.FILES[certificate]
        pki.issue_leaf(node.host_path(f"{PKI}/{stem}"), certificate, authority, days=365)
    _write_admin_conf(node)
    with node.state() as state:
        state["role"] = "control-plane"
        expiry = time.time() + 365 * pki.DAY
        state["certs"] = {certificate: expiry for certificate in pki.CERT_CAS}
    print("[control-plane-join] Using etcd to add a new member, and starting the API server")
    return None


def _write_admin_conf(node: Node) -> None:
    apiserver = node.config["apiserver"]
    with open(apiserver["ca"], "rb") as file:
        ca = base64.b64encode(file.read()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {"server": apiserver["url"], "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": "kubernetes-admin", "user": {"token": apiserver["token"]}}],
        "contexts": [
            {"name": "admin", "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}
        ],
        "current-context": "admin",
    }
    for name in ("admin.conf", "super-admin.conf"):
        path = node.host_path(f"/etc/kubernetes/{name}")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            json.dump(config, file, indent=2)
        pki.embed_client_certificate(path, name, days=365)


def _ask_testbed(node: Node, body: dict[str, Any]) -> str | None:
    settings = node.config.get("control")
    if not settings:
        return "error execution phase control-plane-join: this testbed has no control endpoint"
    url = urllib.parse.urlsplit(settings["url"])
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
    headers = {"X-Testbed-Token": settings["token"], "Content-Type": "application/json"}
    payload = json.dumps({"host": node.name, "name": body.get("name", ""), **body})
    connection.request("POST", "/control-plane-join", body=payload, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read() or b"{}")
    connection.close()
    if response.status >= 400:
        return str(answer.get("error") or f"control-plane join failed ({response.status})")
    return None
