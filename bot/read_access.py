"""Who may read what: a read verb needs a kubegate role unless a policy rule opens it, and
`/kube audit`, `/kube jobs` and `/kube job` show only the clusters the asker may read that way.

A cluster's events and jobs are readable by whoever the policy lets use that verb on that
cluster; kubegate-wide events (no cluster: config loaded, refusals of unknown clicks) only by
someone who may read every cluster's, since they can concern any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.access import Access
from bot.audit import AuditLog


class ReadAccess:
    def __init__(self, *, access: Access, audit: AuditLog, clusters: Sequence[str]) -> None:
        self._access = access
        self._audit = audit
        self._clusters = list(clusters)

    async def refusal(self, verb: str, *, cluster: str, user: str) -> str | None:
        """Why `user` may not use read verb `verb` on `cluster` (audited); None when they may."""
        roles = await self._access.roles(user)
        rule = self._access.rule(verb, cluster)
        decision = self._access.may_request(rule, verb=verb, cluster=cluster, roles=roles)
        if decision.allowed:
            return None
        self._audit.record(
            "refusal", actor=user, cluster=cluster, verb=verb, reason="may not read this"
        )
        return decision.reason

    async def readable(self, verb: str, *, user: str) -> Readable:
        """The clusters whose records `verb` may show `user`."""
        roles = await self._access.roles(user)
        clusters = frozenset(
            name
            for name in self._clusters
            if self._access.may_request(
                self._access.rule(verb, name), verb=verb, cluster=name, roles=roles
            ).allowed
        )
        return Readable(clusters, everything=clusters == frozenset(self._clusters))


class Readable:
    """The clusters someone may read; kubegate-wide records only when they may read them all."""

    def __init__(self, clusters: frozenset[str], *, everything: bool) -> None:
        self.clusters = clusters
        self.everything = everything

    def shows(self, cluster: str | None) -> bool:
        return self.everything if cluster is None else cluster in self.clusters
