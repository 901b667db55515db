"""A control plane's join on the fake tier: the certificate key is a secret from the moment
upload-certs prints it, goes into the JoinConfiguration only, and its Secret is deleted whatever
the join did; no key printed, no join."""

from __future__ import annotations

from commands import ProvisionNodeCommand
from playbooks.base import Step
from playbooks.inventory import Inventory
from playbooks.join import DELETE_CERTS_SECRET, JOIN_CONFIG, UPLOAD_CERTS, token_create
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
PRINTED = f"kubeadm join 10.0.0.100:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"
KEY = "5e" * 32
UPLOADED = (
    '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" '
    f"Namespace\n[upload-certs] Using certificate key:\n{KEY}\n"
)
CREATE = token_create("cp-2").argv
JOIN = ("kubeadm", "join", "--config", JOIN_CONFIG)


async def joining_a_control_plane(shell: FakeShell) -> tuple[Run, list[str]]:
    kube = FakeKube(node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"))
    handle = cluster_of(kube, shell)
    seen = ProvisionSnapshot(
        handle.name,
        Inventory(),  # the PKI is not in Vault: the certificate-key flow
        await kube.list_nodes(),
        kube.version,
        control_plane_endpoint="10.0.0.100:6443",
    )
    command = ProvisionNodeCommand.model_validate(
        {"node": "cp-2", "address": "10.0.0.12", "role": "control-plane"}
    )
    run = Run(decide_provision(command, seen), handle)
    secrets: list[str] = []
    run.ctx.secret = secrets.append
    return run, secrets


def step(run: Run, name: str) -> Step:
    return next(each for each in run.steps if each.name == name)


async def test_the_certificate_key_is_secret_goes_only_into_the_join_config_and_its_secret_goes() -> (
    None
):
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    shell.reply(UPLOAD_CERTS.argv, Reply(stdout=UPLOADED), node="cp-1")
    run, secrets = await joining_a_control_plane(shell)
    result = await step(run, "join").run(run.ctx)
    assert result.ok and "(a control plane)" in result.summary and KEY not in result.summary
    assert KEY in secrets
    write, place, join, _remove = shell.ran("cp-2")
    assert (
        f'"certificateKey": "{KEY}"' in write[-1] and '"advertiseAddress": "10.0.0.12"' in write[-1]
    )
    assert KEY not in " ".join(place) and join == JOIN
    assert shell.ran("cp-1")[1:] == [
        UPLOAD_CERTS.argv,
        ("kubeadm", "token", "delete", "abcdef"),
        DELETE_CERTS_SECRET.argv,
    ]


async def test_an_upload_that_prints_no_key_joins_nothing_and_still_cleans_up() -> None:
    shell = FakeShell()
    shell.reply(CREATE, Reply(stdout=PRINTED), node="cp-1")
    shell.reply(
        UPLOAD_CERTS.argv, Reply(exit_status=1, stderr="error uploading certs"), node="cp-1"
    )
    run, _ = await joining_a_control_plane(shell)
    result = await step(run, "join").run(run.ctx)
    assert not result.ok and "printed no certificate key" in result.summary
    assert shell.ran("cp-2") == []
    assert shell.ran("cp-1")[-2:] == [
        ("kubeadm", "token", "delete", "abcdef"),
        DELETE_CERTS_SECRET.argv,
    ]
