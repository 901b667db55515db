"""Disaster recovery: `restore etcd <backup>`. Its own module: it is no routine change, and
policy names it `restore` so that no rule for everyday changes covers it by accident."""

from __future__ import annotations

from commands._errors import CommandError
from commands._models import Command
from commands._mutating import RestoreEtcdCommand
from commands._spec import Arguments, Group, VerbSpec


def _build_restore(args: Arguments) -> Command:
    if not args.words or args.words[0].lower() != "etcd":
        given = f"'{args.words[0]}'" if args.words else "nothing"
        raise CommandError(
            f"/kube restore works on etcd only (got {given}): write /kube restore etcd <backup>.",
            usage=args.usage,
        )
    _, backup = args.take("etcd", "the backup's name, as /kube backups lists it")
    return args.build(RestoreEtcdCommand, backup=backup)


RESTORE = VerbSpec(
    name="restore",
    group=Group.CHANGES,
    synopsis="restore etcd <backup>",
    summary="disaster recovery: every API server stopped, every etcd member restored from a "
    "kept backup, the control plane brought back",
    usage="/kube restore etcd <backup>",
    build=_build_restore,
    examples=(
        '/kube restore etcd etcd-prod-job12-20261130T020000Z --break-glass "INC-7 etcd lost"',
        "/kube restore etcd etcd-prod-job12-20261130T020000Z --dry-run",
    ),
    default_approvals=2,
    reaches="SSH to every control-plane node, Vault (the backup key)",
    notes=(
        "Everything written to the cluster after the backup is lost.",
        "Runs only with --break-glass or under a policy rule for `restore` that asks for as "
        "many approvals as the policy's strictest rule.",
        "Refused, before anything changes, while an etcd member is down: restore needs every "
        "member's host.",
    ),
)

RECOVERY_VERBS = (RESTORE,)
