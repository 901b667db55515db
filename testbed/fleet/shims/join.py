"""`kubeadm join`: kubeadm's preflight checks on the joining node's state, token and
CA-hash discovery, the kubelet-start phase's refusals, then the kubelet registering its Node
object with the fake apiserver under the name, labels and taints the JoinConfiguration gives.

Modelled on cmd/kubeadm/app/preflight/checks.go (RunJoinNodeChecks: Swap, FileContent--proc-sys-
net-*, FileExisting-kubelet, KubeletVersion, FileAvailable--etc-kubernetes-kubelet.conf) and
cmd/kubeadm/app/cmd/phases/join/kubelet.go (a Ready Node of the same name refuses the join).
With --control-plane (or a JoinConfiguration's controlPlane), controlplane_join adds what a
new control plane needs before and after its kubelet starts.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

from testbed.fleet.shims import controlplane_join
from testbed.fleet.shims.kubeadm import NOT_ROOT, STACK_HINT, cluster_version, option
from testbed.fleet.shims.nodestate import Node, fail, version_of
from testbed.fleet.shims.system import KUBEADM_FLAGS, host_name, write_kubeadm_flags
from testbed.fleet.shims.tokens import valid

# Flags that `--config` may not be mixed with (cmd/kubeadm/app/cmd/join.go, "can not mix
# '--config' with arguments").
DISCOVERY_FLAGS = (
    "--token",
    "--discovery-token-ca-cert-hash",
    "--node-name",
    "--control-plane",
    "--certificate-key",
)
ERROR = "error execution phase preflight: "


def _minor(version: str | None) -> int | None:
    try:
        return int((version or "").removeprefix("v").split(".")[1])
    except (IndexError, ValueError):
        return None


def _preflight(node: Node, state: dict[str, Any], cluster: str, ignored: set[str]) -> list[str]:
    errors: list[tuple[str, str]] = []
    if state["joined"] or os.path.exists(node.host_path("/etc/kubernetes/kubelet.conf")):
        errors.append(
            (
                "FileAvailable--etc-kubernetes-kubelet.conf",
                "/etc/kubernetes/kubelet.conf already exists",
            )
        )
    if state["swap"]:
        errors.append(("Swap", "running with swap on is not supported. Please disable swap"))
    sysctl = state["sysctl"]
    if sysctl.get("net.ipv4.ip_forward") != "1":
        errors.append(
            (
                "FileContent--proc-sys-net-ipv4-ip_forward",
                "/proc/sys/net/ipv4/ip_forward contents are not set to 1",
            )
        )
    if (
        "br_netfilter" not in state["modules"]
        or sysctl.get("net.bridge.bridge-nf-call-iptables") != "1"
    ):
        errors.append(
            (
                "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
                "/proc/sys/net/bridge/bridge-nf-call-iptables does not exist or is not set to 1",
            )
        )
    kubelet = version_of(state["packages"].get("kubelet"))
    if kubelet is None:
        errors.append(("FileExisting-kubelet", "kubelet not found in system path"))
    else:
        errors += _kubelet_version(kubelet, cluster)
    return [
        f"\t[ERROR {check}]: {message}"
        for check, message in errors
        if "all" not in ignored and check.lower() not in ignored
    ]


def _kubelet_version(kubelet: str, cluster: str) -> list[tuple[str, str]]:
    """KubeletVersionCheck: never newer than the control plane, and within kubeadm's support
    (three minors older at most, the version skew policy)."""
    have, control_plane = _minor(kubelet), _minor(cluster)
    if have is None or control_plane is None:
        return []
    if have > control_plane:
        return [
            (
                "KubeletVersion",
                "the kubelet version is higher than the control plane version. This is not a "
                "supported version skew and may lead to a malfunctional cluster. Kubelet "
                f'version: "{kubelet}" Control plane version: "{cluster}"',
            )
        ]
    if have < control_plane - 3:
        return [
            (
                "KubeletVersion",
                f'Kubelet version "{kubelet}" is lower than kubeadm can support. Please upgrade '
                "kubelet",
            )
        ]
    return []


class JoinRequest:
    """What `kubeadm join` was asked: from flags, or from a JoinConfiguration file."""

    def __init__(self, node: Node, args: list[str]) -> None:
        self.token = option(args, "--token")
        self.ca_hashes = [h for h in [option(args, "--discovery-token-ca-cert-hash")] if h]
        self.name = option(args, "--node-name") or node.config.get("hostname") or node.name
        self.labels: dict[str, str] = {}
        self.taints: list[dict[str, str]] | None = None  # None: kubeadm's default (none)
        self.control_plane = "--control-plane" in args
        self.certificate_key = option(args, "--certificate-key")
        self.bind_port = int(option(args, "--apiserver-bind-port") or 6443)
        self.error: str | None = None
        path = option(args, "--config")
        if path is not None:
            mixed = [flag for flag in DISCOVERY_FLAGS if option(args, flag) or flag in args]
            if mixed:
                self.error = f"can not mix '--config' with arguments {mixed}"
            else:
                self._read_config(node, path)

    def _read_config(self, node: Node, path: str) -> None:
        # kubeadm reads YAML; the shim (no PyYAML in its lean interpreter) reads its JSON subset.
        try:
            with open(node.host_path(path)) as file:
                config = json.load(file)
        except PermissionError:
            self.error = f"unable to read config from {path!r} : open {path}: permission denied"
            return
        except (OSError, ValueError) as error:
            self.error = f"unable to read config from {path!r} : {error}"
            return
        if config.get("kind") != "JoinConfiguration":
            self.error = f"no JoinConfiguration kind was found in {path}"
            return
        discovery = (config.get("discovery") or {}).get("bootstrapToken") or {}
        self.token = discovery.get("token")
        self.ca_hashes = list(discovery.get("caCertHashes") or [])
        registration = config.get("nodeRegistration") or {}
        self.name = registration.get("name") or self.name
        self.taints = registration.get("taints")
        self.labels = _node_labels(registration.get("kubeletExtraArgs"))
        control_plane = config.get("controlPlane")
        self.control_plane = control_plane is not None
        self.certificate_key = (control_plane or {}).get("certificateKey") or None
        endpoint = (control_plane or {}).get("localAPIEndpoint") or {}
        self.bind_port = int(endpoint.get("bindPort") or 6443)


def _node_labels(extra: Any) -> dict[str, str]:
    """--node-labels from kubeletExtraArgs: a map (v1beta3) or a list of name/value (v1beta4)."""
    if isinstance(extra, list):
        extra = {arg.get("name"): arg.get("value") for arg in extra}
    text = (extra or {}).get("node-labels") or ""
    return dict(pair.split("=", 1) for pair in text.split(",") if "=" in pair)


def join(node: Node, args: list[str]) -> int:
    ignored = {i.lower() for i in (option(args, "--ignore-preflight-errors") or "").split(",") if i}
    print("[preflight] Running pre-flight checks")
    if not node.privileged():
        return fail(ERROR + NOT_ROOT + "\n" + STACK_HINT)
    request = JoinRequest(node, args)
    if request.error is not None:
        return fail(request.error + "\n" + STACK_HINT)
    cluster = cluster_version(node)
    with node.locked():
        state = node.read_state()
        errors = _preflight(node, state, cluster, ignored)
        if errors:
            return fail(
                ERROR
                + "[preflight] Some fatal errors occurred:\n"
                + "\n".join(errors)
                + "\n[preflight] If you know what you are doing, you can make a check non-fatal "
                "with `--ignore-preflight-errors=...`\n" + STACK_HINT
            )
        refused = _discovery_refusal(node, request)
        if refused is None and request.control_plane:
            refused = controlplane_join.prepare(node, request.certificate_key)
        if refused is not None:
            return fail(refused + "\n" + STACK_HINT)
        refused = _kubelet_start_refusal(node, state, request.name)
        if refused is not None:
            return fail(refused + "\n" + STACK_HINT)
        kubelet = version_of(state["packages"]["kubelet"]) or ""
        _register(node, request, kubelet)
        state.update(joined=True, unit_changed=False, kubelet={"active": True, "version": kubelet})
        state["node_name"] = request.name
        state["cluster_version"] = state.get("cluster_version") or kubelet
        node._write_json("state.json", state)
    _write_kubelet_conf(node)
    write_kubeadm_flags(node.host_path(KUBEADM_FLAGS), request.name, host_name(node))
    if request.control_plane:
        refused = controlplane_join.finish(node, request.name, request.bind_port)
        if refused is not None:
            return fail(refused + "\n" + STACK_HINT)
    print("[kubelet-start] Starting the kubelet")
    print("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    print("\nThis node has joined the cluster:")
    print("* Certificate signing request was sent to apiserver and a response was received.")
    print("* The Kubelet was informed of the new secure connection details.")
    print("\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")
    return 0


def _discovery_refusal(node: Node, request: JoinRequest) -> str | None:
    if not valid(node, request.token):
        token_id = (request.token or "").split(".")[0]
        return (
            ERROR + "couldn't validate the identity of the API Server: could not find a JWS "
            f'signature in the cluster-info ConfigMap for token ID "{token_id}"'
        )
    pinned = node.config["ca_cert_hash"]
    if pinned not in request.ca_hashes:
        return (
            ERROR + "couldn't validate the identity of the API Server: cluster CA found in "
            f'cluster-info ConfigMap is invalid: none of the public keys "{pinned}" are pinned'
        )
    return None


def _kubelet_start_refusal(node: Node, state: dict[str, Any], name: str) -> str | None:
    """The kubelet-start phase: a Ready Node of this name already exists (phases/join/kubelet.go),
    or the kubelet cannot run because its cgroup driver (systemd, kubeadm's default since v1.22)
    differs from the runtime's (the kubelet's own "misconfiguration" exit, seen by kubeadm as a
    kubelet that never becomes healthy)."""
    try:
        existing = node.api("GET", f"/api/v1/nodes/{name}")
    except RuntimeError as error:
        if ": 404 " not in str(error):
            raise
        existing = None
    if existing is not None:
        conditions = existing.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return (
                "error execution phase kubelet-start: a Node with name "
                f'"{name}" and status "Ready" already exists in the cluster. You must delete '
                "the existing Node or change the name of this new joining Node"
            )
    if not state["containerd"].get("systemd_cgroup"):
        return (
            "[kubelet-check] The kubelet is not healthy after 4m0s\n"
            'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "systemd" is '
            'different from container runtime cgroup driver: "cgroupfs"\n'
            "error execution phase kubelet-start: timed out waiting for the condition"
        )
    return None


def _register(node: Node, request: JoinRequest, kubelet: str) -> None:
    """What the kubelet does on its first start: create its Node with --node-labels and
    --register-with-taints (both from nodeRegistration), then report its status."""
    template = node.config.get("node_object")
    if template is None:
        return
    body = copy.deepcopy(template)
    status = body.pop("status")
    body["metadata"]["name"] = request.name
    labels = body["metadata"]["labels"]
    labels["kubernetes.io/hostname"] = request.name
    labels.update(request.labels)
    taints = request.taints
    if request.control_plane:
        # mark-control-plane: the role label, and kubeadm's taint unless taints were given.
        labels[controlplane_join.CONTROL_PLANE_LABEL] = ""
        taints = [controlplane_join.CONTROL_PLANE_TAINT] if taints is None else taints
    if taints:
        body.setdefault("spec", {})["taints"] = taints
    status["nodeInfo"]["kubeletVersion"] = kubelet
    status["nodeInfo"]["kubeProxyVersion"] = kubelet
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for condition in status["conditions"]:
        condition["lastHeartbeatTime"] = condition["lastTransitionTime"] = stamp
    node.api("POST", "/api/v1/nodes", body)
    node.api("PATCH", f"/api/v1/nodes/{request.name}/status", {"status": status}, patch=True)


def _write_kubelet_conf(node: Node) -> None:
    # kubeadm writes kubeconfig files 0600 (cmd/kubeadm/app/util/kubeconfig, WriteToDisk).
    path = node.host_path("/etc/kubernetes/kubelet.conf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write("# written by kubeadm join\n")
