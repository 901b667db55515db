"""The typed requests `/kube` text becomes: the base models and the verbs that change nothing.

Models are frozen and validate on construction, so a request built from a button is held to
the same rules as one typed in chat.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from commands._validators import (
    ClusterName,
    Duration,
    JobId,
    NodeName,
    Reason,
    ScheduleTime,
    SlackUserId,
    WindowName,
    format_duration,
)


class Command(BaseModel):
    """One parsed `/kube` request. `verb` is the first word, the one policy rules name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Whether the request changes the cluster, and so is planned and approved first.
    mutating: ClassVar[bool] = False

    verb: str
    cluster: ClusterName | None = None

    @property
    def target(self) -> str:
        """What the request is about, for display and locking: a node, `cluster`, `shop/web`."""
        raise NotImplementedError

    def summary(self) -> str:
        """The request in operator words, e.g. `Cordon worker-2`."""
        raise NotImplementedError


class MutatingCommand(Command):
    """A request that changes the cluster: it can be a dry run, scheduled, or break-glass."""

    mutating: ClassVar[bool] = True

    dry_run: bool = False
    at: ScheduleTime | None = None
    window: WindowName | None = None
    break_glass: Reason | None = None

    @model_validator(mode="after")
    def _one_way_to_run(self) -> MutatingCommand:
        if self.at is not None and self.window is not None:
            raise ValueError(
                "Give either --at or --window, not both: --at runs at a set time, "
                "--window in the next slot of a maintenance window."
            )
        scheduled = self.at is not None or self.window is not None
        if self.dry_run and (scheduled or self.break_glass is not None):
            raise ValueError(
                "--dry-run only shows the plan and never runs it, so it cannot be combined "
                "with --at, --window or --break-glass."
            )
        return self


class HelpCommand(Command):
    verb: Literal["help"] = "help"
    topic: str | None = None

    @property
    def target(self) -> str:
        return self.topic or "help"

    def summary(self) -> str:
        return f"Help for {self.topic}" if self.topic else "Help"


class StatusCommand(Command):
    verb: Literal["status"] = "status"

    @property
    def target(self) -> str:
        return "cluster"

    def summary(self) -> str:
        return "Cluster status"


class NodesCommand(Command):
    verb: Literal["nodes"] = "nodes"

    @property
    def target(self) -> str:
        return "nodes"

    def summary(self) -> str:
        return "List nodes"


class PodsCommand(Command):
    verb: Literal["pods"] = "pods"
    node: NodeName

    @property
    def target(self) -> str:
        return self.node

    def summary(self) -> str:
        return f"List pods on {self.node}"


class CertsCommand(Command):
    verb: Literal["certs"] = "certs"

    @property
    def target(self) -> str:
        return "certs"

    def summary(self) -> str:
        return "Certificate expiry"


class JobsCommand(Command):
    verb: Literal["jobs"] = "jobs"

    @property
    def target(self) -> str:
        return "jobs"

    def summary(self) -> str:
        return "List jobs"


class _OneJobCommand(Command):
    job_id: JobId

    @property
    def target(self) -> str:
        return f"job #{self.job_id}"


class JobCommand(_OneJobCommand):
    verb: Literal["job"] = "job"

    def summary(self) -> str:
        return f"Show job #{self.job_id}"


class CancelCommand(_OneJobCommand):
    """Stops a job; whether that needs approval is up to the policy for `cancel`."""

    verb: Literal["cancel"] = "cancel"

    def summary(self) -> str:
        return f"Cancel job #{self.job_id}"


class RetryCommand(_OneJobCommand):
    """Runs a failed job again from its failed step; policy for `retry` decides approvals."""

    verb: Literal["retry"] = "retry"

    def summary(self) -> str:
        return f"Retry job #{self.job_id}"


# What `/kube audit` without --since should show; the help page promises this.
DEFAULT_AUDIT_LOOKBACK = timedelta(hours=24)


class AuditCommand(Command):
    """A query of the audit log; `since=None` means the caller's default look-back."""

    verb: Literal["audit"] = "audit"
    since: Duration | None = None
    user: SlackUserId | None = None
    node: NodeName | None = None

    @property
    def target(self) -> str:
        return "audit"

    def summary(self) -> str:
        filters = []
        if self.since is not None:
            filters.append(f"last {format_duration(self.since)}")
        if self.user is not None:
            filters.append(f"by {self.user}")
        if self.node is not None:
            filters.append(f"about {self.node}")
        return f"Audit log ({', '.join(filters)})" if filters else "Audit log"


class BackupsCommand(Command):
    verb: Literal["backups"] = "backups"

    @property
    def target(self) -> str:
        return "etcd"

    def summary(self) -> str:
        return "Kept etcd backups"
