"""`start_testbed`: the stand-in world that `python -m testbed up --dir DIR` runs (testbed/cli.py).

Starts the fake kube-apiserver (one per control plane, behind a load balancer when there are
several), the Slack emulator, and (unless --no-fleet) an sshd per node, a Vault stand-in and a
real etcd (a member per control plane); then writes DIR/testbed.json (how to reach them,
and the fault switches' endpoint) and DIR/kubegate.yaml (a complete kubegate config for it).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed import faults
from testbed.alertmanager import Alertmanager
from testbed.apiserver import FakeApiServer, NodeSpec
from testbed.controlplanes import ControlPlanes
from testbed.cpjoin import ControlPlaneJoins
from testbed.etcd import Etcd
from testbed.faults import FaultSwitches
from testbed.fleet import Fleet, apiserver_nodes
from testbed.fleet.etcd_manifest import ETCD_DATA_DIR
from testbed.fleet.fleet import FleetNode
from testbed.loadbalancer import LoadBalancer
from testbed.slack import SlackEmulator
from testbed.vault import FakeVault

CHANNEL = "C0OPS"
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}
ROLES = {"sre": ["U0ALICE", "U0BOB"], "lead": ["U0CAROL"]}


ONE_APPROVAL = [
    "cordon",
    "uncordon",
    "drain",
    "taint",
    "untaint",
    "scale",
    "backup",
    "cancel",
    "retry",
]


def policy_rule(verbs: list[str], approvals: int) -> dict[str, Any]:
    return {
        "verbs": verbs,
        "requesters": ["sre", "lead"],
        "approvals": approvals,
        "approvers": ["sre", "lead"],
        "break_glass": ["lead"],
    }


def kubegate_config(
    *,
    kubeconfig: Path,
    emulator: SlackEmulator,
    world: World | None,
    directory: Path,
    alerts_token: str,
    apiservers: dict[str, str] | None = None,
) -> dict[str, Any]:
    apiservers = apiservers or {}
    cluster: dict[str, Any] = {
        "name": "testbed",
        "context": "testbed",
        "kubeconfig": str(kubeconfig),
        "channels": [CHANNEL],
        # Rolling upgrades here take several workers at once (kubegate's default is 1).
        "max_unavailable": 4,
    }
    config: dict[str, Any] = {
        "clusters": [cluster],
        "roles": ROLES,
        "policy": [
            policy_rule(ONE_APPROVAL, 1),
            policy_rule(["upgrade", "provision", "rotate"], 2),
            policy_rule(["restore"], 2),  # disaster recovery: break-glass by a lead, or 2 votes
        ],
        "windows": {"approval": "30m", "execution": "2h"},
        "slack": {
            "bot_token": emulator.bot_token,
            "signing_secret": emulator.signing_secret,
            "api_url": emulator.api_url,
        },
        "backups": {"dir": str(directory / "backups"), "keep": 5, "max_age": "24h"},
        "alerts": {"token": alerts_token},
        "users": USERS,
    }
    if world is not None:
        cluster["inventory"] = world.inventory()
        cluster["inventory"]["pki_in_vault"] = True
        for name, url in apiservers.items():  # each control plane's own API server
            cluster["inventory"]["nodes"][name]["api_server"] = url
        config["vault"] = {"url": world.vault.url, "token": world.vault.root_token}
        config["alerts"]["alertmanager_url"] = world.alertmanager.url
    return config


@dataclass
class World:
    """The machines behind the API: an sshd per node, a Vault, a real etcd."""

    fleet: Fleet
    vault: FakeVault
    etcd: Etcd
    alertmanager: Alertmanager

    def inventory(self) -> dict[str, Any]:
        fleet = self.fleet
        nodes = fleet.nodes.items()
        return {
            "ssh": {
                "user": fleet.user,
                "known_hosts": str(fleet.known_hosts_path),
                "private_key": str(fleet.client_key_path),
                "sudo": True,
            },
            "nodes": {name: self.node_access(name) for name in fleet.nodes},
            "package_manager": "apt",
            "control_planes": [name for name, node in nodes if node.role == "control-plane"],
            "node_subnet": "127.0.10.0/24",
            "etcd": {"snapshot_dir": "/var/lib/kubegate/etcd"},
            "static_pod_pause": 0.5,  # seconds: a fast testbed
            "static_pod_ready_timeout": "30s",
        }

    def node_access(self, name: str) -> dict[str, Any]:
        """How kubegate reaches the node: its sshd, and a control plane's own API server."""
        node = self.fleet.nodes[name]
        access: dict[str, Any] = {"address": node.address, "port": node.port}
        endpoints = self.fleet.apiserver.endpoints if self.fleet.apiserver else {}
        if name in endpoints:
            access["api_server"] = endpoints[name].url
        return access

    def description(self) -> dict[str, Any]:
        fleet = self.fleet
        return {
            "ssh": {
                "user": fleet.user,
                "private_key": str(fleet.client_key_path),
                "known_hosts": str(fleet.known_hosts_path),
                "user_ca_key": str(fleet.user_ca_key_path),
                "nodes": {name: node_description(node) for name, node in fleet.nodes.items()},
            },
            "vault": {
                "url": self.vault.url,
                "token": self.vault.root_token,
                "kv_mount": "secret",
                "ssh_mount": "ssh-client-signer",
            },
            "etcd": {
                "client_url": self.etcd.client_url,
                "ca": str(self.etcd.ca_path),
                "cert": str(self.etcd.cert_path),
                "key": str(self.etcd.key_path),
            },
            "alertmanager": self.alertmanager.description(),
        }

    async def stop(self) -> None:
        await self.alertmanager.stop()
        await self.fleet.stop()
        await self.vault.stop()
        await self.etcd.stop()


def node_description(node: FleetNode) -> dict[str, Any]:
    return {
        "address": node.address,
        "port": node.port,
        "host_key_fingerprint": node.host_key_fingerprint,
        "state_dir": str(node.state_dir),
        "role": node.role,
        "root": str(node.state_dir / "root"),  # what the node's shims see as /
        "call_log": str(node.state_dir / "calls.jsonl"),  # one JSON line per shim call
    }


async def start_world(
    directory: Path,
    apiserver: FakeApiServer,
    *,
    spare: int,
    alerts_token: str,
    app_url: str | None,
    etcd_version: str = "3.6",
) -> World:
    nodes = apiserver_nodes(apiserver)
    # Each control plane runs its etcd member on its own address, as kubeadm's stacked etcd.
    members = [(name, address) for name, address, role in nodes if role == "control-plane"]
    # Spare hosts have an sshd but no Node until they are provisioned and join.
    nodes += [(f"spare-{i}", f"127.0.10.{100 + i}", "worker") for i in range(1, spare + 1)]
    fleet = Fleet(directory / "fleet", nodes, apiserver)
    etcd = Etcd(directory / "etcd", members)
    # Until kubegate's address is known (set_webhook), alerts wait at a closed port and are retried.
    webhook = alerts_url(app_url) if app_url else "http://127.0.0.1:9/alerts/alertmanager"
    alertmanager = Alertmanager(
        directory / "alertmanager", webhook_url=webhook, bearer_token=alerts_token
    )
    await asyncio.gather(fleet.start(), alertmanager.start())
    # Each member keeps its data in its node's /var/lib/etcd, as kubeadm's etcd static pod does
    # (hostPath etcd-data), so a restore on the node replaces what the member runs on.
    for name, member in etcd.members.items():
        member.data_dir = fleet.nodes[name].state_dir / "root" / ETCD_DATA_DIR.lstrip("/")
    await etcd.start()
    fleet.attach_etcd(etcd, etcd_version=etcd_version)
    vault = FakeVault(ssh_ca_key=fleet.user_ca_key_path)  # Vault-signed certificates log in
    await vault.start()
    return World(fleet, vault, etcd, alertmanager)


def alerts_url(app_url: str) -> str:
    """kubegate's alert webhook, beside its /slack/events."""
    return app_url.rsplit("/slack/events", 1)[0] + "/alerts/alertmanager"


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class

    directory: Path
    apiserver: FakeApiServer
    slack: SlackEmulator
    kubeconfig: Path
    config_path: Path
    world: World | None = None
    alerts_token: str = ""  # what Alertmanager must send kubegate as its bearer token
    control_planes: ControlPlanes | None = None
    load_balancer: LoadBalancer | None = None
    faults: FaultSwitches | None = None

    @property
    def fleet(self) -> Fleet:
        assert self.world is not None, "this testbed was started without its fleet"
        return self.world.fleet

    def description(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "context": "testbed",
            "apiserver_url": self.apiserver.url,
            "apiserver_ca": str(self.apiserver.ca_path),
            "slack_api_url": self.slack.api_url,
            "slack_url": self.slack.url,
            "slack_signing_secret": self.slack.signing_secret,
            "slack_bot_token": self.slack.bot_token,
            "slack_app_token": self.slack.app_token,  # SLACK_APP_TOKEN=… kubegate serve: Socket Mode
            "channel": CHANNEL,
            "users": USERS,
            "kubegate_config": str(self.config_path),
            "alerts_token": self.alerts_token,
            "pid": os.getpid(),
            "load_balancer_url": self.load_balancer.url if self.load_balancer else None,
            "control_planes": self.control_planes.description() if self.control_planes else [],
            **({"faults": self.faults.description()} if self.faults else {}),
            **(self.world.description() if self.world else {}),
        }

    async def stop(self) -> None:
        if self.faults is not None:
            await self.faults.stop()
        if self.control_planes is not None:
            await self.control_planes.stop()
        if self.world is not None:
            await self.world.stop()
        if self.load_balancer is not None:
            await self.load_balancer.stop()
        await self.slack.stop()
        await self.apiserver.stop()


async def start_testbed(
    directory: Path,
    *,
    workers: int = 3,
    heartbeat_interval: float = 5.0,
    app_url: str | None = None,
    fleet: bool = True,
    spare: int = 0,
    version: str = "v1.31.2",
    control_planes: int = 1,
    apiserver_startup: float = 2.0,
    etcd_version: str = "3.6",
    load_balancer: bool = False,
) -> Testbed:
    """Start the testbed; `fleet=False` leaves out SSH, Vault and etcd (API-only tests).
    With several `control_planes`, clients reach the API servers through a load balancer.
    On one control plane or several, each control plane's kubelet follows its static-pod
    manifests: its API server and etcd member stop while their manifest is out and come back
    with it (`apiserver_startup`: seconds an API server takes to serve again), so on a single
    control plane the API is away meanwhile, as on a real one. `load_balancer`: one in front
    even of a single control plane (a controlPlaneEndpoint, so control planes can be joined
    later)."""
    if control_planes < 1:
        raise ValueError("a cluster needs at least one control plane")
    directory.mkdir(parents=True, exist_ok=True)
    planes = [f"cp-{i}" for i in range(1, control_planes + 1)]
    nodes = [NodeSpec(name=name, role="control-plane", kubelet_version=version) for name in planes]
    nodes += [
        NodeSpec(name=f"worker-{i}", role="worker", kubelet_version=version)
        for i in range(1, workers + 1)
    ]
    apiserver = FakeApiServer(
        workdir=directory / "apiserver",
        nodes=nodes,
        heartbeat_interval=heartbeat_interval,
        version=version,
        control_planes=planes,
    )
    await apiserver.start()
    with_balancer = control_planes > 1 or load_balancer
    balancer = await start_load_balancer(apiserver) if with_balancer else None
    slack = SlackEmulator(users=USERS)
    await slack.start()
    if app_url is not None:
        slack.app_url = app_url
    alerts_token = secrets.token_urlsafe(24)
    world = None
    if fleet:
        world = await start_world(
            directory,
            apiserver,
            spare=spare,
            alerts_token=alerts_token,
            app_url=app_url,
            etcd_version=etcd_version,
        )
    kubelets, switches = await start_kubelets_and_faults(
        apiserver,
        world,
        apiserver_startup=apiserver_startup,
    )
    switches.world.slack = slack.api  # slack-error (testbed/faults/slack_api.py)
    kubeconfig = apiserver.write_kubeconfig(directory / "kubeconfig", context="testbed")
    config_path = directory / "kubegate.yaml"
    config = kubegate_config(
        kubeconfig=kubeconfig,
        emulator=slack,
        world=world,
        directory=directory,
        alerts_token=alerts_token,
        apiservers={name: endpoint.url for name, endpoint in apiserver.endpoints.items()},
    )
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    config_path.chmod(0o600)  # it holds the Slack token, signing secret and Vault token
    testbed = Testbed(directory, apiserver, slack, kubeconfig, config_path, world, alerts_token)
    testbed.control_planes, testbed.load_balancer, testbed.faults = kubelets, balancer, switches
    write_description(testbed)
    if world is not None:
        joins = ControlPlaneJoins(
            apiserver=apiserver,
            etcd=world.etcd,
            kubelets=kubelets,
            balancer=balancer,
            fleet=world.fleet,
            on_joined=lambda: write_description(testbed),
        )
        world.fleet.control.handlers["control-plane-join"] = joins.handle
    return testbed


def write_description(testbed: Testbed) -> None:
    """DIR/testbed.json; written again when a control plane joins (its `control_planes`)."""
    description = testbed.directory / "testbed.json"
    partial = description.with_suffix(".json.tmp")
    partial.write_text(json.dumps(testbed.description(), indent=2))
    partial.replace(description)  # readers never see half a file


async def start_kubelets_and_faults(
    apiserver: FakeApiServer,
    world: World | None,
    *,
    apiserver_startup: float,
) -> tuple[ControlPlanes, FaultSwitches]:
    """What keeps each control plane's API server and etcd member running, and the switches
    that take them (and the machines) down."""
    roots = {}
    if world is not None:
        planes = apiserver.endpoints
        roots = {name: node.state_dir / "root" for name, node in world.fleet.nodes.items()}
        roots = {name: root for name, root in roots.items() if name in planes}
    kubelets = ControlPlanes(
        apiserver,
        world.etcd if world else None,
        roots,
        apiserver_startup=apiserver_startup,
    )
    await kubelets.start()
    apiserver.add_stats(kubelets.stats)
    machines = (world.fleet, world.vault) if world else (None, None)
    switches = FaultSwitches(faults.World(apiserver, kubelets, *machines))
    await switches.start()
    return kubelets, switches


async def start_load_balancer(apiserver: FakeApiServer) -> LoadBalancer:
    """The control-plane endpoint kubeconfigs and kubelets use, in front of every API server."""

    def address_of(name: str) -> Callable[[], tuple[str, int]]:
        endpoint = apiserver.endpoints[name]
        return lambda: (endpoint.host, endpoint.port)

    balancer = LoadBalancer({name: address_of(name) for name in apiserver.endpoints})
    await balancer.start()
    apiserver.front_url = balancer.url
    return balancer
