"""The real etcd for the testbed (snapshots for `/kube backup etcd`), with kubeadm-like TLS."""

from testbed.etcd.certs import EtcdPki
from testbed.etcd.server import Etcd, EtcdError

__all__ = ["Etcd", "EtcdError", "EtcdPki"]
