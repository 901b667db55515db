"""Which Node a host is: asked once per SSH connection before anything runs there, so an address
that now leads to another machine (a swapped inventory entry, a reused IP) changes nothing.

kubeadm names a Node after the host's hostname, lowercased, unless `nodeRegistration.name`
(`--node-name`) said otherwise; then it passes `--hostname-override` to the kubelet in
/var/lib/kubelet/kubeadm-flags.env (kubernetes/kubernetes#64706, cmd/kubeadm/app/phases/kubelet/
flags.go). The kubelet then authenticates as `system:node:<name>`, the CN of its client
certificate (kubernetes.io/docs/reference/access-authn-authz/node/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
# One command, three answers in marked sections. openssl prints only the certificate's subject,
# never the key kept in the same file; the flags file holds no secret. `uname -n` is the
# kernel's host name, which the kubelet's os.Hostname() reads.
PROBE_SCRIPT = """\
echo '## kubeadm-flags'; cat "$1" 2>/dev/null
echo '## kubelet-client'; openssl x509 -noout -subject -nameopt RFC2253 -in "$2" 2>/dev/null
echo '## hostname'; uname -n
"""
IDENTITY_PROBE = ("sh", "-c", PROBE_SCRIPT, "sh", KUBEADM_FLAGS, KUBELET_CLIENT_PEM)

_OVERRIDE = re.compile(r"--hostname-override[= ]\"?([^\s\"]+)")
_NODE_CN = re.compile(r"CN\s*=\s*system:node:([^,/\s]+)")


@dataclass(frozen=True)
class HostIdentity:
    """The Node name a host answers to, and what said so (in the operator's words)."""

    name: str
    source: str


def host_identity(answer: str) -> HostIdentity | None:
    """The host's Node name from the probe's output, kubelet identity first (its
    --hostname-override, else its client certificate's CN), else its hostname; None when the
    host said nothing usable. Pure."""
    sections = _sections(answer)
    override = _OVERRIDE.findall(sections.get("kubeadm-flags", ""))
    if override:
        # The kubelet takes the last of a repeated flag, lowercased (nodeutil.GetHostname).
        return HostIdentity(
            override[-1].lower(), f"its kubelet's --hostname-override in {KUBEADM_FLAGS}"
        )
    common_name = _NODE_CN.search(sections.get("kubelet-client", ""))
    if common_name:
        return HostIdentity(common_name[1].lower(), "its kubelet client certificate")
    hostname = sections.get("hostname", "").strip().lower()
    return HostIdentity(hostname, "its hostname") if hostname else None


def _sections(answer: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in answer.splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def wrong_host(node: str, address: str, identity: HostIdentity) -> str:
    return (
        f"refusing to run on {address}: it is {identity.name}, not {node} ({identity.source} "
        f"says so). Nothing was run there. Check the address kubegate has for {node} (the "
        "inventory's `address`, else the Node's InternalIP)."
    )


def silent_host(node: str, address: str, exit_status: int | None, stderr: object) -> str:
    """A host whose probe failed or said nothing usable: kubegate cannot tell who it is."""
    said = str(stderr or "").strip()[-200:]
    return (
        f"refusing to run on {address}: it did not say which Node it is (exit {exit_status}"
        f"{': ' + said if said else ''}), so kubegate cannot tell it is {node}. Nothing was run "
        "there."
    )


def leads_elsewhere(node: str, origin: str, address: str, identity: HostIdentity) -> str:
    """Where kubegate would go for `node` and who answered there, for a plan's refusal:
    `origin` says where the address came from ("inventory address", "InternalIP")."""
    return (
        f"{node}'s {origin} {address} leads to {identity.name}, not to {node} "
        f"({identity.source} says so)"
    )
