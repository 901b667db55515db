"""`kubeadm join`: kubeadm's preflight checks on the node's state, token and CA-hash discovery,
then the kubelet registering its Node object with the fake apiserver."""

from __future__ import annotations

import copy
import os
import time

from testbed.fleet.shims.kubeadm import NOT_ROOT, STACK_HINT, option, read_tokens
from testbed.fleet.shims.nodestate import Node, fail, version_of


def _preflight(node: Node, state: dict[str, object], ignored: set[str]) -> list[str]:
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
    assert isinstance(sysctl, dict)
    if sysctl.get("net.ipv4.ip_forward") != "1":
        errors.append(
            (
                "FileContent--proc-sys-net-ipv4-ip_forward",
                "/proc/sys/net/ipv4/ip_forward contents are not set to 1",
            )
        )
    modules = state["modules"]
    assert isinstance(modules, list)
    if "br_netfilter" not in modules or sysctl.get("net.bridge.bridge-nf-call-iptables") != "1":
        errors.append(
            (
                "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
                "/proc/sys/net/bridge/bridge-nf-call-iptables does not exist or is not set to 1",
            )
        )
    packages = state["packages"]
    assert isinstance(packages, dict)
    if not packages.get("kubelet"):
        errors.append(("FileExisting-kubelet", "kubelet not found in system path"))
    return [
        f"\t[ERROR {check}]: {message}"
        for check, message in errors
        if "all" not in ignored and check.lower() not in ignored
    ]


def join(node: Node, args: list[str]) -> int:
    ignored = {i.lower() for i in (option(args, "--ignore-preflight-errors") or "").split(",") if i}
    token, ca_hash = option(args, "--token"), option(args, "--discovery-token-ca-cert-hash")
    print("[preflight] Running pre-flight checks")
    if not node.privileged():
        return fail("error execution phase preflight: " + NOT_ROOT + "\n" + STACK_HINT)
    with node.locked():
        state = node.read_state()
        errors = _preflight(node, state, ignored)
        if errors:
            return fail(
                "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                + "\n".join(errors)
                + "\n[preflight] If you know what you are doing, you can make a check non-fatal "
                "with `--ignore-preflight-errors=...`"
            )
        if token is None or read_tokens(node).get(token, 0.0) < time.time():
            token_id = (token or "").split(".")[0]
            return fail(
                "error execution phase preflight: couldn't validate the identity of the API "
                "Server: could not find a JWS signature in the cluster-info ConfigMap for token "
                f'ID "{token_id}"'
            )
        if ca_hash != node.config["ca_cert_hash"]:
            pinned = node.config["ca_cert_hash"]
            return fail(
                "error execution phase preflight: couldn't validate the identity of the API "
                "Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public "
                f'keys "{pinned}" are pinned'
            )
        kubelet = version_of(state["packages"]["kubelet"])
        _register(node, kubelet or "")
        state.update(joined=True, unit_changed=False, kubelet={"active": True, "version": kubelet})
        state["cluster_version"] = state.get("cluster_version") or kubelet
        node._write_json("state.json", state)
    # kubeadm writes kubeconfig files 0600 (cmd/kubeadm/app/util/kubeconfig, WriteToDisk).
    path = node.host_path("/etc/kubernetes/kubelet.conf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write("# written by kubeadm join\n")
    print("[kubelet-start] Starting the kubelet")
    print("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    print("\nThis node has joined the cluster:")
    print("* Certificate signing request was sent to apiserver and a response was received.")
    print("* The Kubelet was informed of the new secure connection details.")
    print("\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")
    return 0


def _register(node: Node, kubelet: str) -> None:
    template = node.config.get("node_object")
    if template is None:
        return
    body = copy.deepcopy(template)
    status = body["status"]
    status["nodeInfo"]["kubeletVersion"] = kubelet
    status["nodeInfo"]["kubeProxyVersion"] = kubelet
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for condition in status["conditions"]:
        condition["lastHeartbeatTime"] = condition["lastTransitionTime"] = stamp
    node.api("POST", "/api/v1/nodes", {k: v for k, v in body.items() if k != "status"})
    node.api("PATCH", f"/api/v1/nodes/{node.name}/status", {"status": status}, patch=True)
