"""The verbs that change the cluster: from `cordon` to `rotate certs`."""

from __future__ import annotations

from commands._errors import CommandError
from commands._models import Command
from commands._mutating import (
    BackupEtcdCommand,
    BackupPkiCommand,
    CordonCommand,
    DrainCommand,
    ProvisionNodeCommand,
    RotateCertsCommand,
    ScaleHpaCommand,
    TaintCommand,
    UncordonCommand,
    UntaintCommand,
    UpgradeClusterCommand,
    UpgradeNodeCommand,
)
from commands._spec import Arguments, Group, OptionSpec, VerbSpec

_NODE = "the name of a node"
_TO_VERSION = OptionSpec(
    "--to",
    "to_version",
    "the Kubernetes version to reach",
    value_name="v1.x.y",
    example="--to v1.31.2",
    required=True,
)


def _require_keyword(args: Arguments, keyword: str, what: str) -> None:
    """Verbs like `backup etcd` name their object; anything else gets the one valid form."""
    if not args.words or args.words[0].lower() != keyword:
        given = f"'{args.words[0]}'" if args.words else "nothing"
        raise CommandError(
            f"/kube {args.verb} works on {what} only (got {given}): "
            f"write /kube {args.verb} {keyword} ….",
            usage=args.usage,
        )


def _build_cordon(args: Arguments) -> Command:
    (node,) = args.take(_NODE)
    return args.build(CordonCommand, node=node)


def _build_uncordon(args: Arguments) -> Command:
    (node,) = args.take(_NODE)
    return args.build(UncordonCommand, node=node)


def _build_drain(args: Arguments) -> Command:
    (node,) = args.take(_NODE)
    return args.build(DrainCommand, node=node)


def _build_taint(args: Arguments) -> Command:
    node, taint = args.take(_NODE, "the taint, as key=value:Effect or key:Effect")
    if taint.endswith("-"):
        raise CommandError(
            f"To remove a taint, use /kube untaint {node} {taint.removesuffix('-')}.",
            usage=args.usage,
        )
    key_value, colon, effect = taint.rpartition(":")
    if not colon:
        raise CommandError(
            f"'{taint}' is not a taint: write key=value:Effect or key:Effect, "
            "e.g. dedicated=gpu:NoSchedule.",
            usage=args.usage,
        )
    key, _, value = key_value.partition("=")
    return args.build(TaintCommand, node=node, key=key, value=value or None, effect=effect)


def _build_untaint(args: Arguments) -> Command:
    node, taint = args.take(_NODE, "the taint's key, as key or key:Effect")
    # kubectl removes with a trailing '-'; keys never end in one, so it is safe to drop.
    key, colon, effect = taint.removesuffix("-").partition(":")
    return args.build(UntaintCommand, node=node, key=key, effect=effect if colon else None)


def _build_scale(args: Arguments) -> Command:
    _require_keyword(args, "hpa", "HorizontalPodAutoscalers")
    _, hpa = args.take("hpa", "the HPA as <namespace>/<name>")
    namespace, slash, name = hpa.partition("/")
    if not slash:
        raise CommandError(
            f"'{hpa}' needs its namespace: write <namespace>/<name>, e.g. shop/web.",
            usage=args.usage,
        )
    return args.build(ScaleHpaCommand, namespace=namespace, name=name)


def _build_backup(args: Arguments) -> Command:
    if args.words and args.words[0].lower() == "pki":
        return _build_backup_pki(args)
    if not args.words or args.words[0].lower() != "etcd":
        given = f"'{args.words[0]}'" if args.words else "nothing"
        raise CommandError(
            f"/kube backup takes etcd or pki (got {given}): write /kube backup etcd or "
            "/kube backup pki.",
            usage=args.usage,
        )
    args.take("etcd")
    return args.build(BackupEtcdCommand)


def _build_backup_pki(args: Arguments) -> Command:
    args.take("pki")
    return args.build(BackupPkiCommand)


def _build_upgrade(args: Arguments) -> Command:
    (target,) = args.take("a node name, or 'cluster' for the whole cluster")
    if target.lower() == "cluster":
        return args.build(UpgradeClusterCommand)
    if "max_unavailable" in args.options:
        raise CommandError(
            "--max-unavailable applies to /kube upgrade cluster only: "
            "a single node upgrade takes just that node down.",
            usage=args.usage,
        )
    return args.build(UpgradeNodeCommand, node=target)


def _build_provision(args: Arguments) -> Command:
    _require_keyword(args, "node", "new nodes")
    _, node = args.take("node", "the new node's name")
    return args.build(ProvisionNodeCommand, node=node)


def _build_rotate(args: Arguments) -> Command:
    _require_keyword(args, "certs", "certificates")
    args.take("certs")
    return args.build(RotateCertsCommand)


CORDON = VerbSpec(
    name="cordon",
    group=Group.CHANGES,
    synopsis="cordon <node>",
    summary="mark a node unschedulable: running pods stay, new ones go elsewhere",
    usage="/kube cordon <node>",
    build=_build_cordon,
    examples=("/kube cordon worker-2", "/kube cordon worker-2 --dry-run"),
    default_approvals=1,
    reaches="Kubernetes API",
)
UNCORDON = VerbSpec(
    name="uncordon",
    group=Group.CHANGES,
    synopsis="uncordon <node>",
    summary="mark a node schedulable again",
    usage="/kube uncordon <node>",
    build=_build_uncordon,
    examples=("/kube uncordon worker-2",),
    default_approvals=1,
    reaches="Kubernetes API",
)
DRAIN = VerbSpec(
    name="drain",
    group=Group.CHANGES,
    synopsis="drain <node>",
    summary="cordon a node, then evict its pods, respecting PodDisruptionBudgets",
    usage="/kube drain <node> [--timeout 10m] [--delete-emptydir-data] [--force]",
    build=_build_drain,
    options=(
        OptionSpec(
            "--timeout",
            "timeout",
            "how long to wait for the pods to leave",
            value_name="DURATION",
            default="10m",
            example="--timeout 20m",
        ),
        OptionSpec(
            "--delete-emptydir-data",
            "delete_emptydir_data",
            "also evict pods with emptyDir volumes: that data is lost",
        ),
        OptionSpec(
            "--force",
            "force",
            "also delete pods no controller will recreate (bare pods): they are gone for good",
        ),
    ),
    examples=(
        "/kube drain worker-1",
        "/kube drain worker-1 --timeout 20m --delete-emptydir-data",
    ),
    default_approvals=1,
    reaches="Kubernetes API, Eviction API",
    notes=(
        "Without --force or --delete-emptydir-data, a drain that would need them is "
        "refused before anything is evicted.",
    ),
)
TAINT = VerbSpec(
    name="taint",
    group=Group.CHANGES,
    synopsis="taint <node> key=value:Effect",
    summary="add or change a taint on a node",
    usage="/kube taint <node> key=value:Effect\n/kube taint <node> key:Effect",
    build=_build_taint,
    examples=(
        "/kube taint worker-4 dedicated=gpu:NoSchedule",
        "/kube taint worker-4 drain:NoExecute",
    ),
    default_approvals=1,
    reaches="Kubernetes API",
    notes=(
        "Effect is NoSchedule, PreferNoSchedule or NoExecute. node.kubernetes.io/* taints "
        "belong to Kubernetes and are never touched.",
    ),
)
UNTAINT = VerbSpec(
    name="untaint",
    group=Group.CHANGES,
    synopsis="untaint <node> key[:Effect]",
    summary="remove a taint from a node (every effect of the key, unless one is given)",
    usage="/kube untaint <node> key[:Effect]",
    build=_build_untaint,
    examples=("/kube untaint worker-4 dedicated:NoSchedule", "/kube untaint worker-4 dedicated"),
    default_approvals=1,
    reaches="Kubernetes API",
)
SCALE = VerbSpec(
    name="scale",
    group=Group.CHANGES,
    synopsis="scale hpa <ns>/<name> --min N --max M",
    summary="change a HorizontalPodAutoscaler's replica bounds",
    usage="/kube scale hpa <namespace>/<name> --min N --max M",
    build=_build_scale,
    options=(
        OptionSpec(
            "--min",
            "min_replicas",
            "fewest replicas, at least 1",
            value_name="N",
            example="--min 2",
            required=True,
        ),
        OptionSpec(
            "--max",
            "max_replicas",
            "most replicas, at least --min",
            value_name="M",
            example="--max 10",
            required=True,
        ),
    ),
    examples=("/kube scale hpa shop/web --min 3 --max 12",),
    default_approvals=1,
    reaches="Kubernetes API",
)
BACKUP = VerbSpec(
    name="backup",
    group=Group.CHANGES,
    synopsis="backup etcd | backup pki",
    summary="snapshot etcd on a control-plane node, verify it and copy it off the host; or "
    "keep the cluster's CA keys and sa.key in Vault",
    usage="/kube backup etcd | /kube backup pki",
    build=_build_backup,
    examples=("/kube backup etcd", "/kube backup etcd -c prod", "/kube backup pki"),
    default_approvals=1,
    reaches="SSH to a control-plane node",
)
UPGRADE = VerbSpec(
    name="upgrade",
    group=Group.CHANGES,
    synopsis="upgrade <node>|cluster --to v1.x.y",
    summary="upgrade one node the kubeadm way, or the whole cluster (etcd backup, control "
    "planes one by one, then workers)",
    usage=(
        "/kube upgrade <node> --to v1.x.y [--delete-emptydir-data] [--force]\n"
        "/kube upgrade cluster --to v1.x.y [--max-unavailable 1] [--delete-emptydir-data] "
        "[--force]"
    ),
    build=_build_upgrade,
    options=(
        _TO_VERSION,
        OptionSpec(
            "--max-unavailable",
            "max_unavailable",
            "cluster upgrades: how many workers may be down at once",
            value_name="N",
            default="1",
            example="--max-unavailable 2",
        ),
        OptionSpec(
            "--delete-emptydir-data",
            "delete_emptydir_data",
            "drain pods with emptyDir volumes too: that data is lost (the plan names them)",
        ),
        OptionSpec(
            "--force",
            "force",
            "drain pods no controller will recreate (bare pods) too: they are gone for good",
        ),
    ),
    examples=(
        "/kube upgrade worker-3 --to v1.31.2",
        "/kube upgrade worker-3 --to v1.31.3 --delete-emptydir-data",
        "/kube upgrade cluster --to v1.31.2 --window weekend",
    ),
    default_approvals=2,
    reaches="SSH and the Kubernetes API",
    notes=("One minor version at a time; stops at the first node that fails its health check.",),
)
PROVISION = VerbSpec(
    name="provision",
    group=Group.CHANGES,
    synopsis="provision node <name> --address <ip>",
    summary="prepare a new host, join it with kubeadm and wait until it is Ready",
    usage=(
        "/kube provision node <name> --address <ip> [--role worker|control-plane] "
        "[--label key=value]… [--taint key=value:Effect]…"
    ),
    build=_build_provision,
    options=(
        OptionSpec(
            "--address",
            "address",
            "the host's IPv4 or IPv6 address",
            value_name="IP",
            example="--address 10.0.0.15",
            required=True,
        ),
        OptionSpec(
            "--role",
            "role",
            "worker or control-plane",
            value_name="ROLE",
            default="worker",
            example="--role worker",
        ),
        OptionSpec(
            "--label",
            "labels",
            "a label the node registers with (repeat for more)",
            value_name="KEY=VALUE",
            example="--label pool=batch",
            repeatable=True,
        ),
        OptionSpec(
            "--taint",
            "taints",
            "a taint the node registers with, so nothing lands there before it (repeat for more)",
            value_name="KEY=VALUE:EFFECT",
            example="--taint dedicated=batch:NoSchedule",
            repeatable=True,
        ),
    ),
    examples=(
        "/kube provision node worker-5 --address 10.0.0.15",
        "/kube provision node worker-9 --address 10.0.0.19 --label pool=batch "
        "--taint dedicated=batch:NoSchedule",
    ),
    default_approvals=2,
    reaches="SSH and the Kubernetes API",
    notes=("--role control-plane is refused in this version: join control planes by hand.",),
)
ROTATE = VerbSpec(
    name="rotate",
    group=Group.CHANGES,
    synopsis="rotate certs [--node cp-1]",
    summary="renew control-plane certificates with kubeadm and store them in Vault",
    usage="/kube rotate certs [--node NODE]",
    build=_build_rotate,
    options=(
        OptionSpec(
            "--node",
            "node",
            "only this control-plane node",
            value_name="NODE",
            default="every control-plane node, one at a time",
            example="--node cp-1",
        ),
    ),
    examples=("/kube rotate certs", "/kube rotate certs --node cp-1"),
    default_approvals=2,
    reaches="SSH and Vault",
)

CHANGE_VERBS = (CORDON, UNCORDON, DRAIN, TAINT, UNTAINT, SCALE, BACKUP, UPGRADE, PROVISION, ROTATE)
