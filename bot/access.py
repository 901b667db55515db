"""Who someone is to kubegate: their roles (directly or through Slack user groups) and the
policy rule that governs a verb on a cluster."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from approvals import PolicyRule, approvals_needed, may_request, roles_of, rule_for

GroupMembers = Callable[[str], Awaitable[set[str]]]


class Access:
    def __init__(
        self,
        *,
        roles: Mapping[str, Sequence[str]],
        policy: Sequence[PolicyRule],
        group_members: GroupMembers,
    ) -> None:
        self._roles = roles
        self._policy = policy
        self._group_members = group_members

    async def roles(self, user: str) -> frozenset[str]:
        groups = {m for members in self._roles.values() for m in members if m.startswith("S")}
        group_members = {group: await self._group_members(group) for group in groups}
        return roles_of(user, roles=self._roles, group_members=group_members)

    def rule(self, verb: str, cluster: str) -> PolicyRule | None:
        return rule_for(self._policy, verb=verb, cluster=cluster)

    def approver_roles(self, verb: str, cluster: str) -> list[str]:
        rule = self.rule(verb, cluster)
        return list(rule.approvers) if rule else []

    def approvals_needed(self, rule: PolicyRule | None, verb: str) -> int:
        return approvals_needed(rule, verb=verb)

    async def responsible(
        self, *, user: str, requester: str, job_verb: str, cluster: str, verb: str
    ) -> bool:
        """May `user` cancel or retry a job: its requester, an approver of its verb, or whoever
        the policy lets request `verb` (cancel/retry) on that cluster."""
        if user == requester:
            return True
        roles = await self.roles(user)
        rule = self.rule(job_verb, cluster)
        if rule is not None and roles & set(rule.approvers):
            return True
        own = self.rule(verb, cluster)
        return (
            own is not None
            and may_request(own, verb=verb, cluster=cluster, requester_roles=roles).allowed
        )
