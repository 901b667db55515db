"""[Silence 1h] as a change under policy: the clicker first sees exactly which alerts it will
silence (each by all of its own labels) and confirms; the policy's `silence` rule says who may,
how many others must approve, and the longest silence; every step is audited.

Flow: [Silence 1h] → a private confirmation listing the matchers → [Create silence] → created
at once when the policy needs no approval, else a request in the alert's thread with
[Approve silence] [Reject] → created when enough others approved.
"""

from __future__ import annotations

from datetime import timedelta

from approvals import may_vote, within
from bot.access import Access
from bot.alerts import node_of_labels
from bot.audit import AuditLog
from bot.chat import (
    ALERT_SILENCE,
    SILENCE_APPROVE,
    SILENCE_CONFIRM,
    SILENCE_REJECT,
    Button,
    Card,
    Chat,
)
from bot.markup import mention
from bot.silences import SilenceError, SilenceRecords, SilenceRequest, create_silence, shown
from bot.store import Store, utcnow

SILENCE_BUTTONS = (ALERT_SILENCE, SILENCE_CONFIRM, SILENCE_APPROVE, SILENCE_REJECT)
BUTTON_SILENCE = timedelta(hours=1)  # what [Silence 1h] asks for; a rule's `longest` may cut it
VERB = "silence"


def for_how_long(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def matcher_lines(request: SilenceRequest) -> str:
    return "\n".join(f"• `{shown(labels)}`" for labels in request.alerts)


def confirmation_card(request: SilenceRequest, *, approver_roles: list[str]) -> Card:
    """Only the clicker sees it: what would be silenced, before anything is."""
    if request.approvals_needed == 0:
        policy = "The policy needs no approval: the silence is created when you confirm."
    else:
        roles = " or ".join(approver_roles) or "an approver"
        policy = (
            f"The policy needs {request.approvals_needed} approval(s) from {roles}: "
            "confirming asks for them in the alert's thread."
        )
    return Card(
        headline=f"🔕 Silence for {for_how_long(request.duration)}: check what it matches",
        sections=[
            "Alertmanager will silence the alert(s) with exactly these labels, and no other:\n"
            + matcher_lines(request),
            policy,
        ],
        buttons=[Button("Create silence", SILENCE_CONFIRM, _value(request), "primary")],
    )


def request_card(request: SilenceRequest, *, approver_roles: list[str], said: str = "") -> Card:
    """The request in the alert's thread, where others approve it."""
    approved = ", ".join(mention(u) for u in request.approvers)
    lines = [f"Approved by {approved}"] if approved else []
    buttons: list[Button] = []
    if request.state == "pending":
        missing = request.approvals_needed - len(request.approvers)
        roles = " or ".join(approver_roles) or "an approver"
        lines.append(f"Needs {missing} more approval(s) from {roles}")
        buttons = [
            Button("Approve silence", SILENCE_APPROVE, _value(request), "primary"),
            Button("Reject silence", SILENCE_REJECT, _value(request), "danger"),
        ]
    return Card(
        headline=f"🔕 Silence for {for_how_long(request.duration)} requested by "
        f"{mention(request.requester)} · cluster {request.cluster}",
        sections=[matcher_lines(request), " · ".join(lines), said],
        buttons=buttons,
    )


def _value(request: SilenceRequest) -> str:
    return f"{request.id}:{request.nonce}"


class SilenceClicks:
    def __init__(
        self,
        *,
        records: SilenceRecords,
        store: Store,
        access: Access,
        audit: AuditLog,
        chat: Chat,
        alertmanager_url: str | None,
        approval_window: timedelta,
    ) -> None:
        self._records = records
        self._store = store
        self._access = access
        self._audit = audit
        self._chat = chat
        self._alertmanager_url = alertmanager_url
        self._approval_window = approval_window

    async def click(
        self, *, user: str, channel: str, action_id: str, value: str, message_ts: str | None
    ) -> str | None:
        """Any silence button; what to tell the clicker privately, if anything."""
        if action_id == ALERT_SILENCE:
            return await self.propose(user=user, channel=channel, value=value)
        request = self._clicked(value)
        if request is None or channel != request.channel:
            self._audit.record("refusal", actor=user, reason="silence click not on its message")
            return "That button does not belong to a silence request here; nothing was done."
        if action_id == SILENCE_CONFIRM:
            return await self.confirm(request, user=user)
        if message_ts != request.ts:
            self._audit.record("refusal", actor=user, reason="silence vote not on its message")
            return "Vote on the silence request's own message in the alert's thread."
        return await self.vote(request, user=user, approve=action_id == SILENCE_APPROVE)

    def _clicked(self, value: str) -> SilenceRequest | None:
        request_text, _, nonce = value.partition(":")
        found = self._records.find(int(request_text)) if request_text.isdigit() else None
        return found if found is not None and found.nonce == nonce else None

    async def propose(self, *, user: str, channel: str, value: str) -> str | None:
        """[Silence 1h]: check the policy, then show the clicker what it would silence."""
        group_text, _, node = value.partition(":")
        group = self._store.alert_group_by_id(int(group_text)) if group_text.isdigit() else None
        if group is None:
            return "That alert is no longer known to kubegate."
        if not self._alertmanager_url:
            return (
                "kubegate does not know Alertmanager's URL (`alerts.alertmanager_url`), "
                "so it cannot silence."
            )
        cluster = group["cluster"]
        rule = self._access.rule(VERB, cluster)
        roles = await self._access.roles(user)
        decision = self._access.may_request(rule, verb=VERB, cluster=cluster, roles=roles)
        if not decision.allowed:
            self._audit.record(
                "refusal", actor=user, cluster=cluster, target=node, reason=decision.reason
            )
            return decision.reason
        alerts = [a for a in self._records.firing_alerts(group["id"]) if node_of_labels(a) == node]
        if not alerts:
            return f"Nothing in this alert is firing on {node} now: there is nothing to silence."
        longest = rule.longest if rule and rule.longest else BUTTON_SILENCE
        request = self._records.propose(
            group_id=group["id"],
            cluster=cluster,
            channel=channel,
            requester=user,
            alerts=alerts,
            duration=min(BUTTON_SILENCE, longest),
            approvals_needed=self._access.approvals_needed(rule, VERB),
        )
        self._audit.record(
            "silence.proposed", actor=user, cluster=cluster, target=node, alerts=alerts
        )
        roles_needed = self._access.approver_roles(VERB, cluster)
        card = confirmation_card(request, approver_roles=roles_needed)
        await self._chat.ephemeral_card(channel, user, card)
        return None

    async def confirm(self, request: SilenceRequest, *, user: str) -> str | None:
        """[Create silence] by the one who asked: create it, or ask others to approve."""
        if user != request.requester:
            self._audit.record("refusal", actor=user, reason="confirming another's silence")
            return "Only the person who asked for this silence can confirm it."
        if not within(utcnow(), request.created_at + self._approval_window):
            return "This confirmation is too old: click [Silence 1h] on the alert again."
        if request.approvals_needed == 0:
            if not self._records.move(request.id, from_state="proposed", to="creating"):
                return "This silence was already confirmed."
            return await self._create(request)
        if not self._records.move(request.id, from_state="proposed", to="pending"):
            return "This silence was already confirmed."
        request = self._reload(request)
        self._audit.record(
            "silence.request", actor=user, cluster=request.cluster, alerts=request.alerts
        )
        group = self._store.alert_group_by_id(request.group_id)
        roles = self._access.approver_roles(VERB, request.cluster)
        card = request_card(request, approver_roles=roles)
        ts = await self._chat.post(request.channel, card, thread_ts=group["ts"] if group else None)
        self._records.move(request.id, from_state="pending", to="pending", ts=ts)
        return "Asked for approval in the alert's thread; nothing is silenced until then."

    async def vote(self, request: SilenceRequest, *, user: str, approve: bool) -> str | None:
        if request.state != "pending":
            return f"This silence request is already {request.state}; your vote was not counted."
        if not within(utcnow(), request.created_at + self._approval_window):
            if self._records.move(request.id, from_state="pending", to="expired"):
                await self._refresh(request, said="⌛ The approval window closed.")
            return "The approval window of this silence closed: ask again if still needed."
        rule = self._access.rule(VERB, request.cluster)
        roles = await self._access.roles(user)
        decision = may_vote(rule, voter=user, voter_roles=roles, requester=request.requester)
        if not decision.allowed:
            self._audit.record(
                "refusal", actor=user, cluster=request.cluster, reason=decision.reason
            )
            return decision.reason
        self._audit.record("silence.vote", actor=user, cluster=request.cluster, approve=approve)
        if not approve:
            if self._records.move(request.id, from_state="pending", to="rejected"):
                self._audit.record("silence.rejected", actor=user, cluster=request.cluster)
                await self._refresh(request, said=f"⛔ Rejected by {mention(user)}.")
            return None
        approvers = self._records.add_approver(request.id, user)
        if approvers is None:
            return "You already approved this silence."
        if len(approvers) < request.approvals_needed:
            await self._refresh(request)
            return None
        if self._records.move(request.id, from_state="pending", to="creating"):
            await self._create(self._reload(request))
        return None

    async def _create(self, request: SilenceRequest) -> str:
        """Create one silence per alert, each matching all of that alert's labels; audit it."""
        assert self._alertmanager_url is not None
        length = for_how_long(request.duration)
        try:
            ids = [
                await create_silence(
                    self._alertmanager_url,
                    labels,
                    duration=request.duration,
                    created_by=f"{request.requester} via kubegate",
                    comment=f"Silenced for {length} from Slack by {request.requester}",
                )
                for labels in request.alerts
            ]
        except SilenceError as error:
            self._records.move(request.id, from_state="creating", to="failed")
            await self._refresh(request, said=f"❌ Not silenced: {error}")
            return str(error)
        self._records.move(request.id, from_state="creating", to="created", silence_ids=ids)
        self._audit.record(
            "alert.silence",
            actor=request.requester,
            cluster=request.cluster,
            silences=ids,
            matchers=request.alerts,
            approved_by=request.approvers,
        )
        await self._announce(request, ids)
        return f"Silenced for {length} ({len(ids)} silence(s): {', '.join(ids)})."

    async def _announce(self, request: SilenceRequest, ids: list[str]) -> None:
        said = f"🔕 Silenced for {for_how_long(request.duration)} (silence {', '.join(ids)})"
        if request.ts:
            await self._refresh(request, said=said)
            return
        group = self._store.alert_group_by_id(request.group_id)
        if group and group["ts"]:
            text = f"{said} by {mention(request.requester)}:\n{matcher_lines(request)}"
            await self._chat.post(group["channel"], Card(text), thread_ts=group["ts"])

    async def _refresh(self, request: SilenceRequest, *, said: str = "") -> None:
        current = self._reload(request)
        if current.ts:
            roles = self._access.approver_roles(VERB, current.cluster)
            card = request_card(current, approver_roles=roles, said=said)
            await self._chat.update(current.channel, current.ts, card)

    def _reload(self, request: SilenceRequest) -> SilenceRequest:
        found = self._records.find(request.id)
        assert found is not None
        return found
