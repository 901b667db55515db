"""`kubeadm token create|list|delete`: bootstrap tokens, shared by the cluster's nodes in one
file the testbed keeps beside them (a real cluster keeps them as Secrets in kube-system,
`bootstrap-token-<id>`; cmd/kubeadm/app/cmd/token.go)."""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from typing import Any

from testbed.fleet.shims import pki
from testbed.fleet.shims.kubeadm import option
from testbed.fleet.shims.nodestate import Node, fail

ALPHABET = string.ascii_lowercase + string.digits  # of bootstrap token ids and secrets


def _tokens_path(node: Node) -> str:
    return os.path.join(node.config["cluster_dir"], "tokens.json")


def read_tokens(node: Node) -> dict[str, dict[str, Any]]:
    """token -> {"expires": epoch seconds (inf: never), "description": text}."""
    with open(_tokens_path(node)) as file:
        tokens: dict[str, Any] = json.load(file)
    # An older testbed wrote token -> expiry only.
    return {
        token: value if isinstance(value, dict) else {"expires": value, "description": ""}
        for token, value in tokens.items()
    }


def valid(node: Node, token: str | None) -> bool:
    entry = read_tokens(node).get(token or "")
    return entry is not None and float(entry["expires"]) >= time.time()


def _write_tokens(node: Node, tokens: dict[str, dict[str, Any]]) -> None:
    partial = _tokens_path(node) + f".{os.getpid()}"
    with open(partial, "w") as file:
        json.dump(tokens, file)
    os.chmod(partial, 0o644)  # every node's kubeadm join reads it, root or not
    os.replace(partial, _tokens_path(node))


def issued_path(cluster_dir: str) -> str:
    return os.path.join(cluster_dir, "issued-tokens")


def _record_issued(node: Node, created: str) -> None:
    """Every token ever created, for tests that must look for it where it must not be: what an
    API server audit log at RequestResponse level holds of a bootstrap-token Secret."""
    path = issued_path(node.config["cluster_dir"])
    with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as file:
        file.write(created + "\n")


def _admin_refusal(node: Node) -> int | None:
    """kubeadm token needs the admin kubeconfig: on a control plane, as root."""
    state = node.read_state()
    if state["role"] != "control-plane" or not state["joined"]:
        return fail(
            "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or "
            "directory"
        )
    if not node.privileged():
        return fail(f"failed to load admin kubeconfig: {pki.ADMIN_DENIED}")
    return None


def token(node: Node, words: list[str], args: list[str]) -> int:
    refused = _admin_refusal(node)
    if refused is not None:
        return refused
    if words[:2] == ["token", "create"]:
        return token_create(node, args)
    if words[:2] == ["token", "list"]:
        return token_list(node)
    if words[:2] == ["token", "delete"]:
        return token_delete(node, words[2:])
    return fail(f'unknown command "{" ".join(words)}" for "kubeadm"')


def token_create(node: Node, args: list[str]) -> int:
    ttl = _duration(option(args, "--ttl") or "24h")
    if ttl is None:
        return fail("invalid argument for --ttl")
    created = "".join(secrets.choice(ALPHABET) for _ in range(6)) + "."
    created += "".join(secrets.choice(ALPHABET) for _ in range(16))
    with node.locked():
        tokens = read_tokens(node)
        tokens[created] = {
            "expires": time.time() + ttl if ttl else float("inf"),
            "description": option(args, "--description") or "",
        }
        _write_tokens(node, tokens)
        _record_issued(node, created)
    if "--print-join-command" not in args:
        print(created)
        return 0
    endpoint = (node.config.get("apiserver") or {}).get("url", "https://127.0.0.1:6443")
    print(
        f"kubeadm join {endpoint.removeprefix('https://')} --token {created} "
        f"--discovery-token-ca-cert-hash {node.config['ca_cert_hash']} "
    )
    return 0


def token_list(node: Node) -> int:
    """The table `kubeadm token list` prints: the whole token in its first column."""
    print("TOKEN                     TTL         EXPIRES                USAGES   DESCRIPTION")
    now = time.time()
    for value, entry in sorted(read_tokens(node).items()):
        expires = float(entry["expires"])
        if expires < now:
            continue  # the token cleaner has removed expired tokens
        ttl = "<forever>" if expires == float("inf") else f"{int((expires - now) // 60)}m"
        stamp = (
            "<never>"
            if expires == float("inf")
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        )
        usages = "authentication,signing"
        print(f"{value}   {ttl:<10}  {stamp:<21}  {usages}   {entry['description'] or '<none>'}")
    return 0


def token_delete(node: Node, ids: list[str]) -> int:
    if not ids:
        return fail("missing subcommand; 'token delete' is missing token of form '[a-z0-9]{6}'")
    with node.locked():
        tokens = read_tokens(node)
        for wanted in ids:
            token_id = wanted.split(".")[0]
            matching = [t for t in tokens if t.split(".")[0] == token_id]
            if not matching:
                return fail(f'bootstrap token "{token_id}" not found')
            for found in matching:
                del tokens[found]
            print(f'bootstrap token "{token_id}" deleted')
        _write_tokens(node, tokens)
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
