"""Certificate rotation's checks on the fake tier: expiry read before the renewal, and a
certificate kubeadm did not renew named after it."""

from __future__ import annotations

from datetime import UTC, datetime

from commands import RotateCertsCommand
from playbooks.base import StepResult
from playbooks.cert_checks import CHECK_EXPIRATION, NodeExpiry
from playbooks.cert_rotation import ExpiryBefore
from playbooks.certs_table import parse_check_expiration
from playbooks.rotate_certs import RotationSnapshot, decide_rotation
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node
from tests.unit.test_certs_table import HEALTHY

RENEWED = HEALTHY.replace(", 2023 ", ", 2099 ")
NOW = datetime(2026, 11, 30, tzinfo=UTC)


async def checked(after: str) -> tuple[StepResult, StepResult]:
    """Expiry checked on cp-1 before and after: kubeadm prints HEALTHY, then `after`."""
    kube, shell = FakeKube(node("cp-1", roles=("control-plane",))), FakeShell()
    shell.reply(CHECK_EXPIRATION.argv, Reply(stdout=HEALTHY), Reply(stdout=after))
    handle = cluster_of(kube, shell)
    expiry = NodeExpiry("cp-1", parse_check_expiration(HEALTHY))
    nodes = await kube.list_nodes()
    seen = RotationSnapshot("test", handle.inventory, False, nodes, {"cp-1": expiry}, NOW)
    run = Run(decide_rotation(RotateCertsCommand(), seen), handle)
    steps = {step.name: step for step in run.steps}
    before = await steps["check-expiration"].run(run.ctx)
    run.ctx.results["check-expiration"] = before
    return before, await steps["check-renewed"].run(run.ctx)


async def test_expiry_before_the_renewal_is_kept_for_every_certificate_kubeadm_manages() -> None:
    before, _ = await checked(RENEWED)
    kept = before.outcome(ExpiryBefore).before["cp-1"]
    assert kept["apiserver"] == "2023-03-15T01:58:00+00:00"
    assert kept["ca:ca"] == "2032-03-12T01:58:00+00:00"
    assert "cp-1: soonest apiserver" in before.summary


async def test_every_certificate_expiring_later_passes_the_check() -> None:
    _, after = await checked(RENEWED)
    assert after.ok, after.summary


async def test_a_certificate_kubeadm_did_not_renew_is_named() -> None:
    not_apiserver = RENEWED.replace(
        "apiserver                  Mar 15, 2099 01:58",
        "apiserver                  Mar 15, 2023 01:58",
    )
    _, after = await checked(not_apiserver)
    assert not after.ok
    assert after.summary.startswith("not renewed: apiserver on cp-1 still expires 2023-03-15T01:58")
    assert "kubeadm certs check-expiration" in after.summary
