"""The etcd members of a kubeadm cluster as a restore needs them: each control plane's member
name and peer URL from its etcd static pod manifest (readable even when etcd is not), and
their health from etcd itself. Parsing is pure; reading goes over SSH."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from playbooks.base import RemoteShell
from playbooks.etcd_tools import etcd_tools
from playbooks.inventory import EtcdSettings
from playbooks.ssh import SshError, SshTarget

ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
_FLAG = re.compile(r"^\s*-\s+--([a-z0-9-]+)=(\S+)\s*$", re.MULTILINE)


class MemberPlan(BaseModel):
    """One member as the restore recreates it, with how to reach its host without the API."""

    model_config = ConfigDict(frozen=True)

    node: str
    address: str  # SSH address: the API servers are down for most of the restore
    name: str  # etcd's --name
    peer_url: str  # its --initial-advertise-peer-urls
    data_dir: str  # its --data-dir


def manifest_flags(text: str) -> dict[str, str]:
    """`--flag=value` lines of a static pod manifest's command. Pure."""
    return {flag: value for flag, value in _FLAG.findall(text)}


def member_from_manifest(node: str, address: str, text: str) -> MemberPlan | None:
    flags = manifest_flags(text)
    wanted = ("name", "initial-advertise-peer-urls", "data-dir")
    if not all(flags.get(flag) for flag in wanted):
        return None
    return MemberPlan(
        node=node,
        address=address,
        name=flags["name"],
        peer_url=flags["initial-advertise-peer-urls"].split(",")[0],
        data_dir=flags["data-dir"],
    )


def initial_cluster(members: list[MemberPlan]) -> str:
    """etcd's --initial-cluster: every member's name=peer URL. Pure."""
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


@dataclass(frozen=True)
class MemberHealth:
    name: str
    healthy: bool
    error: str = ""


def parse_health(members_json: str, health_json: str) -> list[MemberHealth]:
    """`etcdctl member list -w json` and `endpoint health --cluster -w json`, joined by client
    URL. A member that health did not report is unhealthy. Pure."""
    listed = json.loads(members_json).get("members", [])
    checks = {c.get("endpoint"): c for c in json.loads(health_json or "[]")}
    found = []
    for member in listed:
        name = member.get("name") or f"(unstarted {member.get('ID')})"
        answers = [checks[url] for url in member.get("clientURLs", []) if url in checks]
        healthy = bool(answers) and all(a.get("health") for a in answers)
        error = next((str(a.get("error")) for a in answers if a.get("error")), "")
        found.append(MemberHealth(name, healthy, error or ("" if answers else "no answer")))
    return found


async def read_manifest(ssh: RemoteShell, target: SshTarget) -> str:
    read = await ssh.run(target, ["cat", ETCD_MANIFEST])
    if not read.ok:
        raise SshError(
            f"cannot read {ETCD_MANIFEST} on {target.node}: {read.tail(3)}. Is it a kubeadm "
            "control plane with stacked etcd?",
            node=target.node,
        )
    return read.stdout


async def member_health(
    ssh: RemoteShell, targets: list[SshTarget], settings: EtcdSettings
) -> list[MemberHealth] | None:
    """Every member's health as the first control plane whose etcd answers sees it; None when
    no member answers at all."""
    for target in targets:
        try:
            tools = await etcd_tools(ssh, target, settings)
        except SshError:
            continue
        listed = await ssh.run(target, tools.etcdctl("member", "list", "-w", "json"), timeout=30)
        if not listed.ok:
            continue
        # Exit 1 when a member is unhealthy; the JSON still reports every one.
        checked = await ssh.run(
            target,
            tools.etcdctl("endpoint", "health", "--cluster", "-w", "json"),
            timeout=30,
        )
        try:
            return parse_health(listed.stdout, checked.stdout)
        except (ValueError, AttributeError):
            continue
    return None
