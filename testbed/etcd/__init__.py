"""The real etcd of the testbed, a member per control plane, with kubeadm's TLS layout."""

from testbed.etcd.certs import EtcdPki
from testbed.etcd.server import Etcd, EtcdError, EtcdMember, health_session

__all__ = ["Etcd", "EtcdError", "EtcdMember", "EtcdPki", "health_session"]
