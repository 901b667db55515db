"""Joining a prepared host to the cluster: a fresh 1 h token from a control plane (a secret,
kept in this step's memory only), the printed join command checked value by value, then
`kubeadm join` on the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from playbooks.base import Step, StepContext, StepResult
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, failed
from playbooks.ssh import SshError

TOKEN_CREATE = RemoteCommand.of("kubeadm", "token", "create", "--print-join-command", "--ttl", "1h")
TOKEN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
ENDPOINT = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")
CA_HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class JoinCommand:
    endpoint: str
    token: str
    ca_hash: str

    @property
    def command(self) -> RemoteCommand:
        argv = (
            "kubeadm",
            "join",
            self.endpoint,
            "--token",
            self.token,
            "--discovery-token-ca-cert-hash",
            self.ca_hash,
        )
        return RemoteCommand(argv, f"kubeadm join {self.endpoint} --token … (secret)")


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


class JoinClusterParams(StepParams):
    step: Literal["join"] = "join"
    host: NodeRef  # the new host, by the address it was asked for
    control_plane: str  # where the token is created


class JoinCluster(Step[JoinClusterParams]):
    """Create a token and join with it in one step: the token lives only in this step's memory,
    so a restart in between never needs it again (a retry simply creates a new one)."""

    name: ClassVar[str] = "join"
    params_model: ClassVar[type[StepParams]] = JoinClusterParams

    @property
    def node(self) -> NodeRef:
        return self.params.host

    @property
    def control_plane(self) -> str:
        return self.params.control_plane

    async def run(self, ctx: StepContext) -> StepResult:
        source = await Remote.open(ctx, NodeRef(name=self.control_plane))
        created = await source.run(TOKEN_CREATE)
        # Mask before anything can show it: the whole printed line and every token in it.
        ctx.secret(created.stdout.strip())
        for token in TOKEN.findall(created.stdout):
            ctx.secret(token)
            ctx.secret(token.split(".")[1])
        if not created.ok:
            return failed(created, TOKEN_CREATE.label)
        join = parse_join_command(created.stdout)
        if join is None:
            return StepResult(
                ok=False,
                summary=f"`{TOKEN_CREATE.label}` on {self.control_plane} "
                "printed no join command kubegate can read",
            )
        host = await Remote.open(ctx, self.node)
        try:
            joined = await host.run(join.command)
        except SshError as error:
            # The executor's message quotes the command line, token and all.
            said = error.message.replace(join.token, "[redacted]")
            return StepResult(
                ok=False, summary=f"kubeadm join on {self.node.name} could not run: {said}"
            )
        if not joined.ok:
            return failed(joined, join.command.label)
        return StepResult(
            ok=True,
            summary=f"{self.node.name} joined through {join.endpoint} "
            f"(token from {self.control_plane}, valid 1h)",
            output=joined.tail(5),
        )

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        if await ctx.cluster.kube.get_node(self.node.name) is None:
            return None
        return StepResult(
            ok=True, summary=f"{self.node.name} had already joined before the restart"
        )
