"""The kubeadm shim: version, upgrade apply/node with kubeadm's own refusals; token create and
join live in `join`, certs in `pki`. The cluster's version is what kubeadm reads too: `kubernetesVersion` in the
kube-system/kubeadm-config ConfigMap (ClusterConfiguration), which `upgrade apply` moves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from testbed.fleet.shims import pki, staticpods
from testbed.fleet.shims.nodestate import Node, fail, version_of

VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBERNETES_VERSION = re.compile(r"^kubernetesVersion:\s*(\S+)\s*$", re.MULTILINE)
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
IGNORE_HINT = (
    "[preflight] If you know what you are doing, you can make a check non-fatal with "
    "`--ignore-preflight-errors=...`"
)
# cmd/kubeadm/app/preflight/checks.go, RunRootCheckOnly: upgrade apply/node and join run it first.
NOT_ROOT = (
    "[preflight] Some fatal errors occurred:\n"
    "\t[ERROR IsPrivilegedUser]: user is not running as root\n" + IGNORE_HINT
)
ETCD_TIMEOUT_S = 5.0

Version = tuple[int, int, int]


class Refused(Exception):
    """kubeadm stops with this message (stderr, exit 1)."""


def run(node: Node, _command: str, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    try:
        if words[:1] == ["version"]:
            return version(node, args)
        if words[:2] == ["upgrade", "apply"]:
            return upgrade_apply(node, args)
        if words[:2] == ["upgrade", "node"]:
            return upgrade_node(node)
        if words[:2] == ["upgrade", "plan"]:
            print("[upgrade/versions] Cluster version:", cluster_version(node))
            return 0
        if words[:1] == ["token"]:
            from testbed.fleet.shims.tokens import token

            return token(node, words, args)
        if words[:3] == ["init", "phase", "upload-certs"] and "--upload-certs" in args:
            from testbed.fleet.shims.uploadcerts import upload

            return upload(node, args)
        if words[:1] == ["join"]:
            from testbed.fleet.shims.join import join

            return join(node, args)
        if words[:2] == ["certs", "check-expiration"]:
            return pki.check_expiration(node)
        if words[:2] == ["certs", "renew"]:
            return pki.renew(node, words[2:])
    except Refused as refusal:
        return fail(f"{refusal}\n{STACK_HINT}")
    return fail(f'unknown command "{" ".join(words)}" for "kubeadm"')


def option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(args):
            return args[index + 1]
    return None


def version(node: Node, args: list[str]) -> int:
    installed = version_of(node.read_state()["packages"].get("kubeadm"))
    if installed is None:
        return fail("sh: 1: kubeadm: not found", 127)
    if option(args, "-o") == "short" or option(args, "--output") == "short":
        print(installed)
        return 0
    major, minor, _ = installed[1:].split(".")
    print(
        f'kubeadm version: &version.Info{{Major:"{major}", Minor:"{minor}", '
        f'GitVersion:"{installed}", GitTreeState:"clean", GoVersion:"go1.22.8", '
        'Compiler:"gc", Platform:"linux/amd64"}'
    )
    return 0


def _parse(value: str) -> Version | None:
    match = VERSION.match(value)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


# --- what kubeadm reads from the cluster -------------------------------------------------------


def cluster_version(node: Node) -> str:
    """ClusterConfiguration.kubernetesVersion from the kubeadm-config ConfigMap (the node's own
    record when the fleet has no apiserver)."""
    try:
        config_map = node.api("GET", KUBEADM_CONFIG)
    except OSError as error:
        url = (node.config.get("apiserver") or {}).get("url", "")
        raise Refused(
            "[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap: "
            f'Get "{url}{KUBEADM_CONFIG}?timeout=10s": {error}'
        ) from error
    except RuntimeError as error:
        if ": 404 " not in str(error):
            raise
        config_map = None
    if config_map is None:
        return str(node.read_state().get("cluster_version") or "")
    found = KUBERNETES_VERSION.search(config_map["data"]["ClusterConfiguration"])
    return found[1] if found else ""


def _set_cluster_version(node: Node, target: str) -> None:
    try:
        config_map = node.api("GET", KUBEADM_CONFIG)
    except RuntimeError:
        config_map = None
    if config_map is not None:
        text = KUBERNETES_VERSION.sub(
            f"kubernetesVersion: {target}", config_map["data"]["ClusterConfiguration"]
        )
        node.api("PATCH", KUBEADM_CONFIG, {"data": {"ClusterConfiguration": text}}, patch=True)
    with node.state() as state:
        state["cluster_version"] = target


def _control_plane_nodes(node: Node) -> list[dict[str, Any]]:
    selector = "node-role.kubernetes.io/control-plane"
    found = node.api("GET", f"/api/v1/nodes?labelSelector={selector}")
    items: list[dict[str, Any]] = (found or {}).get("items", [])
    return items


def _not_ready_control_planes(node: Node) -> list[str]:
    """kubeadm's ControlPlaneNodesReady health check (cmd/kubeadm/app/phases/upgrade/health.go)."""
    names = []
    for item in _control_plane_nodes(node):
        conditions = item.get("status", {}).get("conditions", [])
        ready: dict[str, str] = next((c for c in conditions if c.get("type") == "Ready"), {})
        if ready.get("status") != "True":
            names.append(item["metadata"]["name"])
    return names


def etcd_health(node: Node) -> str | None:
    """None when every etcd member answers `etcdctl endpoint health` with the node's own client
    certificate; else etcdctl's complaint. kubeadm checks the whole cluster before it touches a
    static pod (cmd/kubeadm/app/phases/upgrade/staticpods.go, performEtcdStaticPodUpgrade)."""
    members = node.config.get("etcd_endpoints")
    local = node.config.get("etcd_endpoint")
    if not members and not local:
        return None  # no etcd attached to this fleet: nothing kubeadm could ask
    # Without a member list, ask the local member for it (etcdctl's --cluster: member list's
    # client URLs), as kubeadm reaches every member of a stacked etcd.
    endpoints = ",".join(members) if members else str(local)
    scope = [] if members else ["--cluster"]
    pki_dir = node.host_path("/etc/kubernetes/pki")
    client = "apiserver-etcd-client"
    if not os.path.exists(os.path.join(pki_dir, client + ".crt")):
        client = "etcd/healthcheck-client"
    command = [
        "/usr/bin/etcdctl",
        f"--endpoints={endpoints}",
        f"--cacert={pki_dir}/etcd/ca.crt",
        f"--cert={pki_dir}/{client}.crt",
        f"--key={pki_dir}/{client}.key",
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "endpoint",
        "health",
        *scope,
    ]
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        ran = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=ETCD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return "context deadline exceeded"
    if ran.returncode == 0:
        return None
    # etcdctl 3.4: "<endpoint> is unhealthy: failed to commit proposal: ..." per bad member,
    # between JSON log lines of its client's retries.
    lines = [line for line in ran.stderr.splitlines() if not line.startswith("{")]
    unhealthy = [line for line in lines if " is unhealthy: " in line]
    return "; ".join(unhealthy) or (lines[-1] if lines else "etcdctl endpoint health failed")


def upgrade_local_control_plane(node: Node, version: str) -> None:
    """Rewrite this node's own kube-apiserver manifest at `version`: both `upgrade apply` (first
    control plane) and `upgrade node` (the others) upgrade only the local static pods, so each
    control plane's API server moves when kubeadm runs on that node (kubeadm upgrade guide,
    "Upgrading kubeadm clusters": apply on the first, `upgrade node` on the others; cmd/kubeadm/
    app/phases/upgrade/staticpods.go writes the new manifest and the kubelet restarts the pod)."""
    manifest = os.path.join(node.host_path(staticpods.MANIFESTS), "kube-apiserver.yaml")
    if os.path.exists(manifest):
        staticpods.upgrade_manifest(node, "kube-apiserver", version)
        print('[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!')


# --- upgrade apply -----------------------------------------------------------------------------


def version_policy(target: str, cluster: str, kubeadm: str) -> tuple[list[str], list[str]]:
    """(fatal, skippable-with---force) errors, as kubeadm's EnforceVersionPolicies
    (cmd/kubeadm/app/phases/upgrade/policy.go) words them."""
    new, current, tool = _parse(target), _parse(cluster), _parse(kubeadm)
    assert new is not None and current is not None and tool is not None
    fatal: list[str] = []
    skippable: list[str] = []
    if new[1] > current[1] + 1:
        fatal.append(
            f'Specified version to upgrade to "{target}" is too high; kubeadm can upgrade only '
            "1 minor version at a time"
        )
    if new[1] < current[1] - 1:
        fatal.append(
            f'Specified version to downgrade to "{target}" is too low; kubeadm can downgrade '
            "only 1 minor version at a time"
        )
    if tool < new and new[1] > tool[1]:
        fatal.append(
            f'Specified version to upgrade to "{target}" is at least one minor release higher '
            f"than the kubeadm minor release ({new[1]} > {tool[1]}). Such an upgrade is not "
            "supported"
        )
    elif tool < new:
        skippable.append(
            f'Specified version to upgrade to "{target}" is higher than the kubeadm version '
            f'"{kubeadm}". Upgrade kubeadm first using the tool you used to install kubeadm'
        )
    if tool[:2] > new[:2]:
        skippable.append(
            f"Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version "
            f"{tool[0]}.{tool[1]}"
        )
    return fatal, skippable


def _enforce_policy(target: str, cluster: str, kubeadm: str, force: bool) -> None:
    """cmd/kubeadm/app/cmd/upgrade/apply.go: fatal errors always stop; the rest need --force."""
    fatal, skippable = version_policy(target, cluster, kubeadm)

    def listed(errors: list[str]) -> str:
        return "".join(f"\t- {error}\n" for error in errors)

    if fatal:
        raise Refused(
            "[upgrade/version] FATAL: the --version argument is invalid due to these fatal "
            f"errors:\n\n{listed(fatal)}\nPlease fix the misalignments highlighted above and "
            "try upgrading again"
        )
    if skippable and not force:
        raise Refused(
            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
            f"{listed(skippable)}\nCan be bypassed if you pass the --force flag"
        )


def _check_control_plane(node: Node) -> None:
    state = node.read_state()
    if state["role"] != "control-plane" or not state["joined"]:
        raise Refused(
            "[upgrade/config] FATAL: failed to load admin kubeconfig: open "
            "/etc/kubernetes/admin.conf: no such file or directory"
        )


def _check_etcd(node: Node, phase: str) -> None:
    problem = etcd_health(node)
    if problem is not None:
        raise Refused(
            f"{phase}couldn't complete the static pod upgrade: fatal error when trying to "
            "upgrade the etcd cluster, rolled the state back to pre-upgrade state: etcd cluster "
            f"is not healthy: {problem}"
        )


def upgrade_apply(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    target = words[2] if len(words) > 2 else ""
    force = "--force" in args or "-f" in args
    print("[upgrade] Reading configuration from the cluster...")
    print(
        "[upgrade] FYI: You can look at this config file with "
        "'kubectl -n kube-system get cm kubeadm-config -o yaml'"
    )
    print("[upgrade/preflight] Running preflight checks")
    if not node.privileged():
        raise Refused(NOT_ROOT)
    _check_control_plane(node)
    cluster = cluster_version(node)
    kubeadm = version_of(node.read_state()["packages"].get("kubeadm")) or ""
    if _parse(target) is None or _parse(cluster) is None:
        raise Refused(f'[upgrade/version] FATAL: the version "{target}" is not valid')
    print("[upgrade] Running cluster health checks")
    not_ready = _not_ready_control_planes(node)
    if not_ready:
        raise Refused(
            "[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n"
            "\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: "
            f"[{' '.join(not_ready)}]\n{IGNORE_HINT}"
        )
    print(f'[upgrade/version] You have chosen to change the cluster version to "{target}"')
    print(f"[upgrade/versions] Cluster version: {cluster}")
    print(f"[upgrade/versions] kubeadm version: {kubeadm}")
    _enforce_policy(target, cluster, kubeadm, force)
    if not ({"--yes", "-y"} & set(args) or force):
        print("[upgrade] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise Refused("won't proceed; the user didn't answer (Y|y) in order to continue")
    _check_etcd(node, "[upgrade/apply] FATAL: ")
    _set_cluster_version(node, target)
    with node.state() as state:
        pki.renew_all(state, list(pki.CERT_CAS))  # kubeadm upgrade renews what it manages
        state.setdefault("upgrades", []).append({"kind": "apply", "version": target})
    if len(_control_plane_nodes(node)) == 1:
        # One control plane: the fleet moves the only API server's version itself, so fleets
        # without the control planes' kubelets (testbed/controlplanes.py) see it too. With
        # several, only the new manifest below moves this node's own API server (a restart).
        node.control("/control-plane-version", {"version": target, "node": node.name})
    upgrade_local_control_plane(node, target)
    for line in (
        "[upgrade/staticpods] Writing new Static Pod manifests to "
        '"/etc/kubernetes/tmp/kubeadm-upgraded-manifests"',
        '[upgrade/staticpods] Component "etcd" upgraded successfully!',
        '[upgrade/staticpods] Component "kube-controller-manager" upgraded successfully!',
        '[upgrade/staticpods] Component "kube-scheduler" upgraded successfully!',
        "[addons] Applied essential addon: CoreDNS",
        "[addons] Applied essential addon: kube-proxy",
        "",
        f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!',
        "",
        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with "
        "upgrading your kubelets if you haven't already done so.",
    ):
        print(line)
    return 0


# --- upgrade node ------------------------------------------------------------------------------


def upgrade_node(node: Node) -> int:
    print("[upgrade] Reading configuration from the cluster...")
    print(
        "[upgrade] FYI: You can look at this config file with "
        "'kubectl -n kube-system get cm kubeadm-config -o yaml'"
    )
    print("[upgrade/preflight] Running pre-flight checks")
    if not node.privileged():
        raise Refused("error execution phase preflight: " + NOT_ROOT)
    state = node.read_state()
    if not state["joined"]:
        raise Refused("[upgrade] FATAL: this node is not part of a cluster")
    cluster = cluster_version(node)
    kubeadm = version_of(state["packages"].get("kubeadm")) or ""
    new, current = _parse(kubeadm), _parse(cluster)
    if new is not None and current is not None and new[:2] > current[:2]:
        # kubeadm upgrade node takes the cluster's version from kubeadm-config, which only
        # `kubeadm upgrade apply` on the first control plane moves (kubeadm upgrade guide:
        # "upgrade the first control plane node" before the others and the workers).
        raise Refused(
            "error execution phase preflight: the cluster version in the kubeadm-config "
            f'ConfigMap ("{cluster}") is older than this kubeadm ("{kubeadm}"): run '
            f'"kubeadm upgrade apply {kubeadm}" on the first control-plane node first'
        )
    control_plane = state["role"] == "control-plane"
    if control_plane:
        print("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster")
        _check_etcd(node, "error execution phase control-plane: ")
        print("[upgrade/staticpods] Upgrading the local control plane to", cluster)
        upgrade_local_control_plane(node, cluster)
    else:
        print("[upgrade/preflight] Skipping prepull. Not a control plane node.")
    with node.state() as state:
        state.setdefault("upgrades", []).append({"kind": "node", "version": cluster})
        state["cluster_version"] = cluster
        if control_plane:
            pki.renew_all(state, list(pki.CERT_CAS))
    print(
        "[upgrade] Backing up kubelet config file to /etc/kubernetes/tmp/kubeadm-kubelet-config.yaml"
    )
    print('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    print("[upgrade] The configuration for this node was successfully updated!")
    print(
        "[upgrade] Now you should go ahead and upgrade the kubelet package using your package "
        "manager."
    )
    return 0
