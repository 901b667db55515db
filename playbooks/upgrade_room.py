"""The cluster-wide cap on unschedulable nodes (`max_unavailable` per cluster in the config,
default 1): every verb that takes a node out of service is held to it at request time, not only
a rolling upgrade's own `--max-unavailable`. Pure: the bot passes the live nodes."""

from __future__ import annotations

from commands import Command
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan

TAKES_A_NODE_DOWN = frozenset({"cordon", "drain", "upgrade"})
CONTROL_PLANE_LOCK = "control-plane"


def refuse_beyond_cap(command: Command, plan: Plan, nodes: list[NodeView], cap: int) -> None:
    """Raise PlanError when the change would leave more than `cap` nodes unschedulable."""
    if plan.verb not in TAKES_A_NODE_DOWN:
        return
    if plan.target == "cluster":
        asked = getattr(command, "max_unavailable", 1)
        if asked > cap:
            raise PlanError(
                f"Refusing to upgrade cluster {plan.cluster} with --max-unavailable {asked}; "
                f"nothing was changed. The cluster allows at most {cap} unschedulable node(s) "
                "at once (`max_unavailable` in its config): ask for that many or fewer."
            )
        return
    target = next((n for n in nodes if n.name == plan.target), None)
    if target is None or target.unschedulable:
        return  # already out of service: this change takes nothing more down
    down = sorted(n.name for n in nodes if n.unschedulable)
    if len(down) + 1 > cap:
        are = "is" if len(down) == 1 else "are"
        raise PlanError(
            f"Refusing to {plan.verb} {plan.target}; nothing was changed. Cluster {plan.cluster} "
            f"allows at most {cap} unschedulable node(s) at once (`max_unavailable` in its "
            f"config), and {', '.join(down)} already {are}: uncordon or finish "
            f"{'it' if len(down) == 1 else 'them'} first."
        )


def with_control_plane_lock(plan: Plan, inventory: Inventory, nodes: list[NodeView]) -> Plan:
    """The plan holding the control-plane lock when it touches a control-plane node, whatever
    its verb (a drain, a certificate rotation, an upgrade): never two control planes changed
    at once. Pure."""
    if CONTROL_PLANE_LOCK in plan.locks or "*" in plan.locks:
        return plan
    touched = {plan.target} | {
        touch.removeprefix("node/")
        for step in plan.steps
        for touch in step.touches
        if touch.startswith("node/")
    }
    if not any(inventory.is_control_plane(n) for n in nodes if n.name in touched):
        return plan
    return plan.model_copy(update={"locks": [*plan.locks, CONTROL_PLANE_LOCK]})
