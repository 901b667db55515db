"""Joining a prepared host to the cluster: a fresh 1 h token from a control plane (a secret,
kept in this step's memory only), a JoinConfiguration naming the node and carrying its labels
and taints (so it registers already tainted), `kubeadm join --config` on the host (with a
running file there, which a resume waits on), the file removed and the token deleted whatever
happened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from commands import NewNodeTaint
from playbooks.base import Step, StepContext, StepResult
from playbooks.plan import StepParams
from playbooks.remote import (
    NodeRef,
    Remote,
    RemoteCommand,
    failed,
    running_file,
    wait_for_leftover,
)
from playbooks.ssh import SshError
from playbooks.versions import Version

TOKEN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
ENDPOINT = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")
CA_HASH = re.compile(r"sha256:[0-9a-f]{64}")
# Root's, 0600, only for the seconds of the join: it holds the token.
JOIN_CONFIG = "/var/lib/kubegate/join-configuration.yaml"
# The token never goes through sudo's command line (sudo logs it to the host's auth log): the
# login user writes it to a private temp file (printf is the shell's own, no process of its
# own), then root copies that into place by path.
WRITE_TEMP = 'set -e; umask 077; file=$(mktemp); printf \'%s\\n\' "$1" > "$file"; echo "$file"'
MOVE_INTO_PLACE = (
    'set -e; umask 077; mkdir -p "$(dirname "$2")"; cat "$1" > "$2"; chmod 600 "$2"; rm -f "$1"'
)
REMOVE_CONFIG = RemoteCommand.of("rm", "-f", JOIN_CONFIG)
# The certificate-key flow: the shared certificates into the kubeadm-certs Secret (2 h), the
# key printed on a line of its own; the Secret deleted once the join is over.
UPLOAD_CERTS = RemoteCommand.of("kubeadm", "init", "phase", "upload-certs", "--upload-certs")
CERTIFICATE_KEY = re.compile(r"^[0-9a-f]{64}$", re.MULTILINE)
DELETE_CERTS_SECRET = RemoteCommand.of(
    "kubectl",
    "--kubeconfig",
    "/etc/kubernetes/admin.conf",
    "-n",
    "kube-system",
    "delete",
    "secret",
    "kubeadm-certs",
    "--ignore-not-found",
)


def token_description(node: str) -> str:
    """What `kubeadm token list` shows beside kubegate's token: how a later step finds it."""
    return f"kubegate provision {node}"


def token_create(node: str) -> RemoteCommand:
    return RemoteCommand.of(
        "kubeadm",
        "token",
        "create",
        "--print-join-command",
        "--ttl",
        "1h",
        "--description",
        token_description(node),
    )


@dataclass(frozen=True)
class JoinCommand:
    endpoint: str
    token: str
    ca_hash: str

    @property
    def token_id(self) -> str:
        """The public half: `kubeadm token delete` takes it."""
        return self.token.split(".")[0]


def parse_join_command(printed: str) -> JoinCommand | None:
    """What `kubeadm token create --print-join-command` printed, each value checked; None if
    it is not the plain worker join command kubegate expects."""
    words = printed.split()
    if words[:2] != ["kubeadm", "join"] or len(words) != 7:
        return None
    options = dict(zip(words[3::2], words[4::2], strict=True))
    endpoint, token = words[2], options.get("--token", "")
    ca_hash = options.get("--discovery-token-ca-cert-hash", "")
    if set(options) != {"--token", "--discovery-token-ca-cert-hash"}:
        return None
    if not (ENDPOINT.fullmatch(endpoint) and TOKEN.fullmatch(token) and CA_HASH.fullmatch(ca_hash)):
        return None
    return JoinCommand(endpoint, token, ca_hash)


@dataclass(frozen=True)
class ControlPlaneJoin:
    """What makes a join a control plane's: the address its API server advertises and, in the
    certificate-key flow, the key to the kubeadm-certs Secret (a secret, in memory only)."""

    advertise_address: str
    bind_port: int = 6443
    certificate_key: str | None = None

    def section(self) -> dict[str, object]:
        """JoinConfiguration.controlPlane."""
        section: dict[str, object] = {
            "localAPIEndpoint": {
                "advertiseAddress": self.advertise_address,
                "bindPort": self.bind_port,
            }
        }
        if self.certificate_key is not None:
            section["certificateKey"] = self.certificate_key
        return section


def join_configuration(
    join: JoinCommand,
    *,
    node: str,
    version: Version,
    labels: dict[str, str],
    taints: list[NewNodeTaint],
    control_plane: ControlPlaneJoin | None = None,
) -> str:
    """The JoinConfiguration (JSON, which is YAML) for kubeadm of `version`: v1beta4 from
    v1.31 on (kubeletExtraArgs a list), v1beta3 before (a map). Taints set here replace
    kubeadm's default and are registered with the Node (--register-with-taints); a control
    plane's therefore carry its NoSchedule taint explicitly (see provision_control_plane)."""
    node_labels = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    registration: dict[str, object] = {
        "name": node,
        "taints": [t.model_dump(exclude_none=True) for t in taints],
    }
    v1beta4 = (version.major, version.minor) >= (1, 31)
    if node_labels:
        registration["kubeletExtraArgs"] = (
            [{"name": "node-labels", "value": node_labels}]
            if v1beta4
            else {"node-labels": node_labels}
        )
    config = {
        "apiVersion": "kubeadm.k8s.io/v1beta4" if v1beta4 else "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": join.endpoint,
                "token": join.token,
                "caCertHashes": [join.ca_hash],
            }
        },
        "nodeRegistration": registration,
    }
    if control_plane is not None:
        config["controlPlane"] = control_plane.section()
    return json.dumps(config, indent=2)


class JoinClusterParams(StepParams):
    step: Literal["join"] = "join"
    host: NodeRef  # the new host, by the address it was asked for
    control_plane: str  # where the token is created
    version: str  # the cluster's, which picks the JoinConfiguration's API version
    labels: dict[str, str]
    taints: list[NewNodeTaint]
    # A control plane joins with --control-plane; without the CA from Vault, with a certificate
    # key from `kubeadm init phase upload-certs` run on `control_plane` in this same step.
    as_control_plane: bool = False
    upload_certs: bool = False
    api_server_port: int = 6443  # where its kube-apiserver listens (the inventory's, or 6443)


class JoinCluster(Step[JoinClusterParams]):
    """Create a token and join with it in one step: the token lives only in this step's memory,
    so a restart in between never needs it again (a retry simply creates a new one)."""

    name: ClassVar[str] = "join"
    params_model: ClassVar[type[StepParams]] = JoinClusterParams

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = self.params
        source = await Remote.open(ctx, NodeRef(name=wanted.control_plane))
        creating = token_create(wanted.host.name)
        created = await source.run(creating)
        # Mask before anything can show it: the whole printed line and every token in it.
        ctx.secret(created.stdout.strip())
        for token in TOKEN.findall(created.stdout):
            ctx.secret(token)
            ctx.secret(token.split(".")[1])
        if not created.ok:
            return failed(created, creating.label)
        join = parse_join_command(created.stdout)
        if join is None:
            return StepResult(
                ok=False,
                summary=f"`{creating.label}` on {wanted.control_plane} "
                "printed no join command kubegate can read",
            )
        try:
            control_plane = await self._control_plane(ctx, source)
            if isinstance(control_plane, StepResult):
                return control_plane
            result = await self._join(ctx, join, control_plane)
        finally:
            await source.run(RemoteCommand.of("kubeadm", "token", "delete", join.token_id))
            if wanted.upload_certs:
                await source.run(DELETE_CERTS_SECRET)
        return result

    async def _control_plane(
        self, ctx: StepContext, source: Remote
    ) -> ControlPlaneJoin | StepResult | None:
        wanted = self.params
        if not wanted.as_control_plane:
            return None
        address = wanted.host.address or (await wanted.host.target(ctx.cluster)).host
        if not wanted.upload_certs:
            return ControlPlaneJoin(address, wanted.api_server_port)
        uploaded = await source.run(UPLOAD_CERTS)
        for key in CERTIFICATE_KEY.findall(uploaded.stdout):
            ctx.secret(key)
        keys = CERTIFICATE_KEY.findall(uploaded.stdout)
        if not uploaded.ok or len(keys) != 1:
            # Only the exit status: the output holds the key.
            return StepResult.failed(
                f"`{UPLOAD_CERTS.label}` on {wanted.control_plane} printed no certificate key "
                f"(exit {uploaded.exit_status})"
            )
        return ControlPlaneJoin(address, wanted.api_server_port, keys[0])

    async def _join(
        self, ctx: StepContext, join: JoinCommand, control_plane: ControlPlaneJoin | None
    ) -> StepResult:
        wanted = self.params
        version = Version.parse(wanted.version) or Version(1, 31, 0)
        config = join_configuration(
            join,
            node=wanted.host.name,
            version=version,
            labels=wanted.labels,
            taints=wanted.taints,
            control_plane=control_plane,
        )
        ctx.secret(config)
        joining = RemoteCommand.of("kubeadm", "join", "--config", JOIN_CONFIG)
        host = await Remote.open(ctx, wanted.host)
        try:
            ran = await self._place_config(host, config)
            if not isinstance(ran, StepResult):
                ran = await host.run_in_order(
                    [joining], running=running_file(ctx.job_id, self.name)
                )
        except SshError as error:
            # The executor's message may quote the command line, token (and key) and all.
            said = error.message.replace(join.token, "[redacted]")
            if control_plane is not None and control_plane.certificate_key is not None:
                said = said.replace(control_plane.certificate_key, "[redacted]")
            return StepResult(
                ok=False, summary=f"kubeadm join on {wanted.host.name} could not run: {said}"
            )
        finally:
            await host.run(REMOVE_CONFIG)
        if isinstance(ran, StepResult):
            return ran
        return StepResult(
            ok=True,
            summary=f"{wanted.host.name} joined through {join.endpoint} as {wanted.host.name}"
            + (" (a control plane)" if control_plane is not None else "")
            + f", registered with its labels and taints; the token from {wanted.control_plane} "
            "is deleted",
        )

    @staticmethod
    async def _place_config(host: Remote, config: str) -> StepResult | list[str]:
        as_login_user = Remote(host.ssh, replace(host.target, sudo=False), host.timeout)
        write = RemoteCommand.script("write the JoinConfiguration (0600)", WRITE_TEMP, config)
        written = await as_login_user.run(write)
        if not written.ok:
            return failed(written, write.label)
        place = RemoteCommand.script(
            f"put it at {JOIN_CONFIG} (root's, 0600)",
            MOVE_INTO_PLACE,
            written.stdout.strip(),
            JOIN_CONFIG,
        )
        return await host.run_in_order([place])

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        # The running file kubegate kept around this job's `kubeadm join`, rather than a
        # `pgrep -f "kubeadm join"` for any join: it names this job's command by pid and start
        # time (never a reused pid, nor a join someone else started by hand, which kubeadm's
        # own preflight refuses to race anyway), says which command it waits for, and is
        # bounded like every other leftover wait.
        await wait_for_leftover(ctx, self.params.host, self.name)

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        """After a restart, once the join started before has ended: judged by the Node."""
        node = self.params.host
        host = await Remote.open(ctx, node)
        # Killed mid-join: the file with the token may still be there.
        await host.run(REMOVE_CONFIG)
        if await ctx.cluster.kube.get_node(node.name) is None:
            return None
        return StepResult(ok=True, summary=f"{node.name} had already joined before the restart")


class DeleteJoinTokensParams(StepParams):
    step: Literal["delete-join-tokens"] = "delete-join-tokens"
    node: str  # the new node, whose tokens these are
    control_plane: str


class DeleteJoinTokens(Step[DeleteJoinTokensParams]):
    """Any token this provisioning created and did not delete (a restart between create and
    delete): found by its description, deleted by its id. `kubeadm token list` prints whole
    tokens, so its output is masked and never shown."""

    name: ClassVar[str] = "delete-join-tokens"
    params_model: ClassVar[type[StepParams]] = DeleteJoinTokensParams

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = self.params
        source = await Remote.open(ctx, NodeRef(name=wanted.control_plane))
        listed = await source.run(RemoteCommand.of("kubeadm", "token", "list"))
        for token in TOKEN.findall(listed.stdout):
            ctx.secret(token)
            ctx.secret(token.split(".")[1])
        if not listed.ok:
            return failed(listed, "kubeadm token list")
        description = token_description(wanted.node)
        ours = [
            line.split()[0].split(".")[0]
            for line in listed.stdout.splitlines()
            if line.rstrip().endswith(description) and TOKEN.match(line)
        ]
        for token_id in ours:
            deleted = await source.run(RemoteCommand.of("kubeadm", "token", "delete", token_id))
            if not deleted.ok:
                return failed(deleted, f"kubeadm token delete {token_id}")
        left = f"{len(ours)} left over, deleted" if ours else "none left"
        return StepResult(
            ok=True, summary=f"Join tokens for {wanted.node} on {wanted.control_plane}: {left}"
        )
