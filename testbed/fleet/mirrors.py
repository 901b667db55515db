"""What a kubeadm control plane shows through the API at start: one mirror pod per static-pod
manifest the fleet wrote (the `mv` shim keeps them in step with the manifests afterwards), and
the kube-system/kubeadm-config ConfigMap that `kubeadm init` uploads (phase upload-config) and
every later kubeadm command reads the cluster's version from.
"""

from __future__ import annotations

import urllib.parse

from testbed.apiserver import FakeApiServer
from testbed.fleet.shims.staticpods import STATIC_PODS, mirror_pod


def seed_mirror_pods(apiserver: FakeApiServer, node: str) -> None:
    found = apiserver.objects.get("v1", "nodes", None, node)
    node_uid = str(found["metadata"]["uid"]) if found else ""
    for pod in STATIC_PODS:
        if apiserver.objects.get("v1", "pods", "kube-system", f"{pod}-{node}") is None:
            apiserver.objects.create("v1", "pods", mirror_pod(pod, node, node_uid))
    seed_kubeadm_config(apiserver)


def cluster_configuration(*, version: str, endpoint: str) -> str:
    """ClusterConfiguration as `kubeadm init` stores it (v1beta4, kubeadm >= 1.31)."""
    return (
        "apiServer: {}\n"
        "apiVersion: kubeadm.k8s.io/v1beta4\n"
        "caCertificateValidityPeriod: 87600h0m0s\n"
        "certificateValidityPeriod: 8760h0m0s\n"
        "certificatesDir: /etc/kubernetes/pki\n"
        "clusterName: kubernetes\n"
        f"controlPlaneEndpoint: {endpoint}\n"
        "controllerManager: {}\n"
        "dns: {}\n"
        "encryptionAlgorithm: RSA-2048\n"
        "etcd:\n  local:\n    dataDir: /var/lib/etcd\n"
        "imageRepository: registry.k8s.io\n"
        "kind: ClusterConfiguration\n"
        f"kubernetesVersion: {version}\n"
        "networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n"
        "  serviceSubnet: 10.96.0.0/12\n"
        "proxy: {}\n"
        "scheduler: {}\n"
    )


def seed_kubeadm_config(apiserver: FakeApiServer) -> None:
    if apiserver.objects.get("v1", "configmaps", "kube-system", "kubeadm-config") is not None:
        return
    # `kubeadm init` without --control-plane-endpoint leaves it empty; a load balancer in
    # front of the API servers is the stable endpoint the HA guide has it name.
    endpoint = urllib.parse.urlsplit(apiserver.front_url).netloc if apiserver.front_url else '""'
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {
            "ClusterConfiguration": cluster_configuration(
                version=apiserver.version, endpoint=endpoint
            )
        },
    }
    apiserver.objects.create("v1", "configmaps", config_map)
