"""Who someone is to kubegate: their roles (directly or through Slack user groups), the policy
rule that governs a verb on a cluster, and what the grammar says of each verb (read-only or
not, its default approvals), handed to the pure policy functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from approvals import Decision, PolicyRule, approvals_needed, may_request, roles_of, rule_for
from commands import VERB_SPECS, VerbSpec

GroupMembers = Callable[[str], Awaitable[set[str]]]
SPECS: dict[str, VerbSpec] = {spec.name: spec for spec in VERB_SPECS}
# A verb whose approvals only the policy sets (cancel, retry): the safe default, as for changes.
SAFE_DEFAULT_APPROVALS = 1
# Verbs policy rules may name that are not typed commands: `silence` is the alerts' button.
BUTTON_VERBS = ("silence",)
# Disaster recovery runs only with --break-glass or under a rule as strict as the strictest.
STRICTEST_ONLY = ("restore",)


def reads_only(verb: str) -> bool:
    spec = SPECS.get(verb)
    return spec is not None and spec.read_only


def default_approvals(verb: str) -> int:
    spec = SPECS.get(verb)
    if spec is None or spec.default_approvals is None:
        return SAFE_DEFAULT_APPROVALS
    return spec.default_approvals


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
        """The rule's `approvals:`, else the verb's default from its spec."""
        return approvals_needed(rule, default=default_approvals(verb))

    def strict_enough(self, rule: PolicyRule | None, verb: str) -> Decision:
        """For `STRICTEST_ONLY` verbs without break-glass: the rule must ask for as many
        approvals as the policy's strictest rule does."""
        if verb not in STRICTEST_ONLY:
            return Decision(True)
        strictest = max(
            (
                self.approvals_needed(other, named)
                for other in self._policy
                for named in other.verbs
            ),
            default=0,
        )
        needed = self.approvals_needed(rule, verb)
        if needed >= strictest:
            return Decision(True)
        return Decision(
            False,
            f'`{verb}` runs only with --break-glass "reason" or under a policy rule asking '
            f"for at least {strictest} approvals (the policy's strictest); its rule asks for "
            f"{needed}.",
        )

    def may_request(
        self, rule: PolicyRule | None, *, verb: str, cluster: str, roles: frozenset[str]
    ) -> Decision:
        return may_request(
            rule, verb=verb, cluster=cluster, requester_roles=roles, read_only=reads_only(verb)
        )

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
            and self.may_request(own, verb=verb, cluster=cluster, roles=roles).allowed
        )
