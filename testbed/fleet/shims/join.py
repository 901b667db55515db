"""`kubeadm token create` and `kubeadm join`: bootstrap tokens shared by the cluster's nodes,
kubeadm's preflight checks on the joining node's state, token and CA-hash discovery, then the
kubelet registering its Node object with the fake apiserver."""

from __future__ import annotations

import copy
import json
import os
import secrets
import string
import time

from testbed.fleet.shims import pki
from testbed.fleet.shims.kubeadm import NOT_ROOT, STACK_HINT, option
from testbed.fleet.shims.nodestate import Node, fail, version_of

ALPHABET = string.ascii_lowercase + string.digits  # of bootstrap token ids and secrets


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


# --- bootstrap tokens ------------------------------------------------------------------------------------


def _tokens_path(node: Node) -> str:
    return os.path.join(node.config["cluster_dir"], "tokens.json")


def read_tokens(node: Node) -> dict[str, float]:
    with open(_tokens_path(node)) as file:
        tokens: dict[str, float] = json.load(file)
        return tokens


def token_create(node: Node, args: list[str]) -> int:
    state = node.read_state()
    if state["role"] != "control-plane" or not state["joined"]:
        return fail(
            "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or "
            "directory"
        )
    if not node.privileged():
        return fail(f"failed to load admin kubeconfig: {pki.ADMIN_DENIED}")
    ttl = _duration(option(args, "--ttl") or "24h")
    if ttl is None:
        return fail("invalid argument for --ttl")
    token = "".join(secrets.choice(ALPHABET) for _ in range(6)) + "."
    token += "".join(secrets.choice(ALPHABET) for _ in range(16))
    with node.locked():
        tokens = read_tokens(node)
        tokens[token] = time.time() + ttl if ttl else float("inf")
        partial = _tokens_path(node) + f".{os.getpid()}"
        with open(partial, "w") as file:
            json.dump(tokens, file)
        os.chmod(partial, 0o644)  # every node's kubeadm join reads it, root or not
        os.replace(partial, _tokens_path(node))
    if "--print-join-command" not in args:
        print(token)
        return 0
    endpoint = (node.config.get("apiserver") or {}).get("url", "https://127.0.0.1:6443")
    print(
        f"kubeadm join {endpoint.removeprefix('https://')} --token {token} "
        f"--discovery-token-ca-cert-hash {node.config['ca_cert_hash']} "
    )
    return 0


def _duration(text: str) -> float | None:
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for char in text:
        if char.isdigit():
            number += char
        elif char in units and number:
            total, number = total + int(number) * units[char], ""
        else:
            return None
    return None if number else total
