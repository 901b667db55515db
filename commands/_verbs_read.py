"""The read-only verbs: `status`, `nodes`, `pods`, `certs`, `backups`."""

from __future__ import annotations

from commands._models import (
    BackupsCommand,
    CertsCommand,
    Command,
    NodesCommand,
    PodsCommand,
    StatusCommand,
)
from commands._spec import Arguments, Group, VerbSpec


def _build_status(args: Arguments) -> Command:
    args.take()
    return args.build(StatusCommand)


def _build_nodes(args: Arguments) -> Command:
    args.take()
    return args.build(NodesCommand)


def _build_pods(args: Arguments) -> Command:
    (node,) = args.take("the name of a node")
    return args.build(PodsCommand, node=node)


def _build_certs(args: Arguments) -> Command:
    args.take()
    return args.build(CertsCommand)


STATUS = VerbSpec(
    name="status",
    group=Group.READ_ONLY,
    synopsis="status",
    summary="cluster summary: nodes Ready/NotReady/cordoned, versions, control-plane health, "
    "running jobs",
    usage="/kube status",
    build=_build_status,
    examples=("/kube status", "/kube status -c prod"),
    reaches="reads the Kubernetes API",
)
NODES = VerbSpec(
    name="nodes",
    group=Group.READ_ONLY,
    synopsis="nodes",
    summary="list nodes with their state, roles and versions",
    usage="/kube nodes",
    build=_build_nodes,
    examples=("/kube nodes",),
    reaches="reads the Kubernetes API",
)
PODS = VerbSpec(
    name="pods",
    group=Group.READ_ONLY,
    synopsis="pods <node>",
    summary="list the pods running on a node",
    usage="/kube pods <node>",
    build=_build_pods,
    examples=("/kube pods worker-1",),
    reaches="reads the Kubernetes API",
)
CERTS = VerbSpec(
    name="certs",
    group=Group.READ_ONLY,
    synopsis="certs",
    summary="certificate expiry table for the control plane",
    usage="/kube certs",
    build=_build_certs,
    examples=("/kube certs",),
    reaches="reads `kubeadm certs check-expiration` over SSH, or Vault",
)


def _build_backups(args: Arguments) -> Command:
    args.take()
    return args.build(BackupsCommand)


BACKUPS = VerbSpec(
    name="backups",
    group=Group.READ_ONLY,
    synopsis="backups",
    summary="the etcd backups kubegate keeps: name, time, size, sha256, age",
    usage="/kube backups",
    build=_build_backups,
    examples=("/kube backups", "/kube backups -c prod"),
    reaches="reads kubegate's backup directory",
)

READ_ONLY_VERBS = (STATUS, NODES, PODS, CERTS, BACKUPS)
