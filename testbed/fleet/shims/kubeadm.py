"""The kubeadm shim: version, upgrade apply/node, token create, join, certs; it changes the
node's state and, on join, the fake apiserver's Node objects."""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import sys
import time
from typing import Any

from testbed.fleet.shims.nodestate import Node, fail, version_of

VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
DAY = 86400.0
ALPHABET = string.ascii_lowercase + string.digits
CERT_CAS = {
    "admin.conf": "ca", "apiserver": "ca", "apiserver-etcd-client": "etcd-ca",
    "apiserver-kubelet-client": "ca", "controller-manager.conf": "ca",
    "etcd-healthcheck-client": "etcd-ca", "etcd-peer": "etcd-ca", "etcd-server": "etcd-ca",
    "front-proxy-client": "front-proxy-ca", "scheduler.conf": "ca", "super-admin.conf": "ca",
}  # fmt: skip


def run(node: Node, _command: str, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if words[:1] == ["version"]:
        return version(node, args)
    if words[:2] == ["upgrade", "apply"]:
        return upgrade_apply(node, args)
    if words[:2] == ["upgrade", "node"]:
        return upgrade_node(node)
    if words[:2] == ["upgrade", "plan"]:
        print("[upgrade/versions] Cluster version:", node.read_state().get("cluster_version"))
        return 0
    if words[:2] == ["token", "create"]:
        return token_create(node, args)
    if words[:1] == ["join"]:
        from testbed.fleet.shims.join import join

        return join(node, args)
    if words[:2] == ["certs", "check-expiration"]:
        return check_expiration(node)
    if words[:2] == ["certs", "renew"]:
        return renew(node, words[2:])
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


def _parse(value: str) -> tuple[int, int, int] | None:
    match = VERSION.match(value)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def upgrade_apply(node: Node, args: list[str]) -> int:
    state = node.read_state()
    words = [a for a in args if not a.startswith("-")]
    target = words[2] if len(words) > 2 else ""
    wanted, current = _parse(target), _parse(state.get("cluster_version") or "")
    if state["role"] != "control-plane" or not state["joined"]:
        return fail("[upgrade/config] FATAL: this is not a control-plane node of a cluster")
    if wanted is None or current is None:
        return fail(f'[upgrade/version] FATAL: the version "{target}" is not valid')
    force = "--force" in args or "-f" in args
    if wanted[:2] > (current[0], current[1] + 1):
        return fail(
            f'[upgrade/version] FATAL: Specified version to upgrade to "{target}" is too high; '
            f"kubeadm can upgrade only 1 minor version at a time"
        )
    if wanted < current and not force:
        return fail(
            f'[upgrade/version] FATAL: Specified version to upgrade to "{target}" is lower than '
            f'the cluster version "{state["cluster_version"]}". Downgrades are not supported.'
        )
    if not ({"--yes", "-y"} & set(args) or force):
        print("[upgrade] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return fail("won't proceed; the user didn't answer (Y|y) in order to continue")
    with node.state() as state:
        state["cluster_version"] = target
        _renew(state, list(CERT_CAS))  # kubeadm upgrade renews the certificates it manages
        state.setdefault("upgrades", []).append({"kind": "apply", "version": target})
    node.control("/control-plane-version", {"version": target})
    for line in (
        "[upgrade] Reading configuration from the cluster...",
        "[preflight] Running pre-flight checks.",
        f'[upgrade/version] You have chosen to change the cluster version to "{target}"',
        "[upgrade/staticpods] Writing new Static Pod manifests to "
        '"/etc/kubernetes/tmp/kubeadm-upgraded-manifests"',
        '[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!',
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


def upgrade_node(node: Node) -> int:
    with node.state() as state:
        if not state["joined"]:
            return fail("[upgrade] FATAL: this node is not part of a cluster")
        target = version_of(state["packages"].get("kubeadm")) or state.get("cluster_version")
        state.setdefault("upgrades", []).append({"kind": "node", "version": target})
        control_plane = state["role"] == "control-plane"
        if control_plane:
            _renew(state, list(CERT_CAS))
    print("[upgrade] Reading configuration from the cluster...")
    print("[preflight] Running pre-flight checks")
    if control_plane:
        print("[upgrade/staticpods] Upgrading the local control plane to", target)
    else:
        print("[preflight] Skipping prepull. Not a control plane node.")
    print(
        "[upgrade] Backing up kubelet config file to /etc/kubernetes/tmp/kubeadm-kubelet-config.yaml"
    )
    print('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    print("[upgrade] The configuration for this node was successfully updated!")
    print(
        "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
    )
    return 0


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
            "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory"
        )
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


def _renew(state: dict[str, Any], names: list[str]) -> None:
    expiry = time.time() + 365 * DAY
    for name in names:
        state["certs"][name] = expiry


def _residual(seconds: float) -> str:
    days = max(0, int(seconds // DAY))
    return f"{days // 365}y" if days >= 365 else f"{days}d"


def _stamp(epoch: float) -> str:
    return time.strftime("%b %d, %Y %H:%M UTC", time.gmtime(epoch))


def check_expiration(node: Node) -> int:
    state = node.read_state()
    if not state["certs"]:
        return fail("[check-expiration] Error reading configuration from the Cluster. "
                    "open /etc/kubernetes/pki/ca.crt: no such file or directory")  # fmt: skip
    now = time.time()
    print("[check-expiration] Reading configuration from the cluster...")
    print("[check-expiration] FYI: You can look at this config file with "
          "'kubectl -n kube-system get cm kubeadm-config -o yaml'\n")  # fmt: skip
    row = "{:<26} {:<24} {:<15} {:<23} {}"
    print(row.format("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY",
                     "EXTERNALLY MANAGED"))  # fmt: skip
    for name in sorted(state["certs"]):
        expiry = state["certs"][name]
        print(
            row.format(
                name, _stamp(expiry), _residual(expiry - now), CERT_CAS.get(name, "ca"), "no"
            )
        )
    print()
    ca_row = "{:<23} {:<24} {:<15} {}"
    print(ca_row.format("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"))
    for name in ("ca", "etcd-ca", "front-proxy-ca"):
        expiry = state["cas"][name]
        print(ca_row.format(name, _stamp(expiry), _residual(expiry - now), "no"))
    return 0


def renew(node: Node, which: list[str]) -> int:
    with node.state() as state:
        if not state["certs"]:
            return fail("open /etc/kubernetes/pki/ca.crt: no such file or directory")
        names = list(state["certs"]) if which[:1] == ["all"] else which
        unknown = [n for n in names if n not in state["certs"]]
        if not names or unknown:
            return fail(f'unknown command "{" ".join(unknown)}" for "kubeadm certs renew"')
        _renew(state, names)
    from testbed.fleet.shims.pki import write_renewed

    write_renewed(node, names)
    print("[renew] Reading configuration from the cluster...")
    print("[renew] FYI: You can look at this config file with "
          "'kubectl -n kube-system get cm kubeadm-config -o yaml'\n")  # fmt: skip
    for name in sorted(names):
        print(f"certificate {name} renewed")
    print("\nDone renewing certificates. You must restart the kube-apiserver, "
          "kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.")  # fmt: skip
    return 0
