"""`kubegate` command line: serve, console, demo, config check, audit verify/export."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.config import ConfigError, KubegateConfig, Settings, load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubegate", description="Slack chat-ops for Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the Slack app (HTTP mode: /slack/events, /healthz)")
    console = sub.add_parser("console", help="the same flow in this terminal, without Slack")
    console.add_argument("--as", dest="user", default=None, help="Slack user ID to start as")
    console.add_argument(
        "--channel", default=None, help="channel ID (default: the first cluster's)"
    )
    demo = sub.add_parser("demo", help="start the testbed and a console on it")
    demo.add_argument(
        "--dir", default=None, help="testbed directory (default: a new temporary one)"
    )
    # The testbed's shapes, so a newcomer can try HA care and provisioning from the demo too.
    demo.add_argument(
        "--control-planes",
        type=int,
        default=1,
        help="control planes cp-1..cp-N behind a load balancer, with a real N-member etcd (default 1)",
    )
    demo.add_argument("--workers", type=int, default=3, help="worker nodes (default 3)")
    demo.add_argument(
        "--spare", type=int, default=0, help="bare hosts spare-1..spare-N to provision (default 0)"
    )
    demo.add_argument(
        "--load-balancer",
        action="store_true",
        help="a load balancer even with one control plane, so more control planes can join",
    )
    config = sub.add_parser("config", help="configuration")
    config.add_argument("action", choices=["check"])
    config.add_argument(
        "file", nargs="?", default=None, help="the YAML config (default: $KUBEGATE_CONFIG)"
    )
    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="walk the hash chain; names the first broken link")
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="also check an anchor kept elsewhere (your SIEM's copy); repeatable",
    )
    export = audit_sub.add_parser("export", help="every event, one JSON object per line")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    backup = sub.add_parser("backup", help="kubegate's etcd backups")
    backup_sub = backup.add_subparsers(dest="action", required=True)
    decrypt = backup_sub.add_parser("decrypt", help="a sealed backup back to the etcd snapshot")
    decrypt.add_argument("file", type=Path, help="the backup (.db.enc) in KUBEGATE_BACKUP_DIR")
    decrypt.add_argument("--out", type=Path, required=True, help="where to write the snapshot")
    args = parser.parse_args(argv)
    try:
        sys.exit(_dispatch(args))
    except ConfigError as error:
        print("kubegate: the configuration has problems:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(2)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from bot.app import serve, setup_logging
        from bot.redact import Redactor

        redactor = Redactor()
        setup_logging(redactor)
        asyncio.run(serve(Settings(), redactor=redactor))
        return 0
    if args.command == "console":
        return asyncio.run(_console(Settings(), user=args.user, channel=args.channel))
    if args.command == "demo":
        return _demo(args.dir, _demo_shape(args))
    if args.command == "config":
        settings = Settings()
        if args.file is not None:
            settings = settings.model_copy(update={"config_path": Path(args.file)})
        return _config_check(settings)
    if args.command == "backup":
        from bot.backup_cli import decrypt_backup

        return decrypt_backup(Settings(), args.file, args.out)
    return _audit(Settings(), args.action, getattr(args, "anchor", []))


def _config_check(settings: Settings) -> int:
    from bot.config import config_path

    path = config_path(settings)
    config = load_config(path)
    print(
        f"{path}: OK — {len(config.clusters)} cluster(s), {len(config.roles)} role(s), "
        f"{len(config.policy)} policy rule(s)"
    )
    return 0


def _audit(settings: Settings, action: str, given: list[str]) -> int:
    from bot.anchors import Anchor
    from bot.audit import AuditLog
    from bot.audit_keys import AuditKeyError
    from bot.audit_setup import audit_places, reading_store
    from bot.config import config_path
    from bot.redact import Redactor

    if not settings.db.exists():
        print(f"kubegate: no database at {settings.db} (set KUBEGATE_DB)", file=sys.stderr)
        return 2
    # The config says where the key and the anchors are; without one, both sit beside the db.
    try:
        config = load_config(config_path(settings))
    except ConfigError:
        if settings.config_path is not None:
            raise
        config = None
    try:
        store = reading_store(settings, config)
    except AuditKeyError as error:
        print(f"kubegate: {error}", file=sys.stderr)
        return 2
    audit = AuditLog(store, Redactor())
    if action == "export":
        for line in audit.export_jsonl():
            print(line)
        return 0
    try:
        anchors = [Anchor.parse(text) for text in given]
    except ValueError as error:
        print(f"kubegate: {error}", file=sys.stderr)
        return 2
    report = audit.check(anchor_file=audit_places(settings, config).anchor_file, anchors=anchors)
    if report.broken is None:
        print("\n".join(report.summary()))
        return 0
    broken = report.broken
    where = f" at event {broken.event_id}" if broken.event_id else ""
    print(f"audit chain BROKEN{where}: {broken.reason}")
    return 1


async def _console(settings: Settings, *, user: str | None, channel: str | None) -> int:
    from bot.app import build
    from bot.console import ConsoleChat, run_console, stdin_reader

    holder: dict[str, ConsoleChat] = {}

    def console_chat(config: KubegateConfig) -> ConsoleChat:
        holder["chat"] = ConsoleChat(out=sys.stdout, names=config.users)
        return holder["chat"]

    runtime = build(settings, chat=console_chat)
    config = runtime.config
    first_user = user or next(iter(config.users), None) or "U0CONSOLE"
    first_channel = channel or next((c for cl in config.clusters for c in cl.channels), "C0CONSOLE")
    await runtime.resume_jobs()
    try:
        await run_console(
            runtime.kubegate,
            holder["chat"],
            names=config.users,
            user=first_user,
            channel=first_channel,
            read_line=stdin_reader(),
            out=sys.stdout,
            echo=not sys.stdin.isatty(),
        )
    finally:
        await runtime.close()
    return 0


def _demo_machines_can_run() -> bool:
    """The testbed's SSH nodes, etcd and Alertmanager need their Debian packages, and root."""
    programs = ("/usr/sbin/sshd", "/usr/bin/etcd", "/usr/bin/prometheus-alertmanager")
    return os.geteuid() == 0 and all(Path(program).exists() for program in programs)


def _demo_shape(args: argparse.Namespace) -> list[str]:
    """`python -m testbed up` options for the cluster the demo was asked for."""
    shape = ["--control-planes", str(args.control_planes), "--workers", str(args.workers)]
    shape += ["--spare", str(args.spare)] if args.spare else []
    return shape + (["--load-balancer"] if args.load_balancer else [])


def _demo_banner(info: dict[str, Any]) -> str:
    """What the testbed holds, from its own description."""
    planes = [plane["name"] for plane in info.get("control_planes") or []] or ["cp-1"]
    spares = [name for name in info.get("ssh", {}).get("nodes", {}) if name.startswith("spare-")]
    parts = [f"control planes {', '.join(planes)}"]
    if info.get("load_balancer_url"):
        parts.append(f"load balancer {info['load_balancer_url']}")
    if spares:
        parts.append(f"bare hosts to provision {', '.join(spares)}")
    return "; ".join(parts)


def _demo(directory: str | None, shape: list[str]) -> int:
    """Start the testbed as its own process, then a console on it, as a newcomer would."""
    # The testbed is test support, not in the installed package: only a checkout has it.
    if importlib.util.find_spec("testbed") is None:
        print(
            "kubegate demo needs a checkout of kubegate's repository (its testbed is not part of"
            " the installed package): in the checkout, run scripts/setup && .venv/bin/kubegate demo",
            file=sys.stderr,
        )
        return 1
    where = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="kubegate-demo-"))
    where.mkdir(parents=True, exist_ok=True)
    description = where / "testbed.json"
    description.unlink(missing_ok=True)
    log = (where / "testbed.log").open("w")
    command = [sys.executable, "-m", "testbed", "up", "--dir", str(where), *shape]
    if not _demo_machines_can_run():
        command.append("--no-fleet")
        print(
            "(no sshd/etcd here, or not root: the demo runs without SSH nodes; cordon and drain work)"
        )
    testbed = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not description.exists():
            if testbed.poll() is not None or time.monotonic() > deadline:
                print(
                    f"kubegate: the testbed did not start; see {where / 'testbed.log'}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.05)
        info = json.loads(description.read_text())
        print(f"Testbed up in {where}: a fake cluster and a Slack emulator.")
        print(f"  {_demo_banner(info)}")
        print(
            f"  kubectl --kubeconfig {info['kubeconfig']} get nodes   # the real kubectl works on it"
        )
        print("You are alice (U0ALICE, role sre). Try:  /kube cordon worker-2")
        print("then  :as U0BOB  and type the number shown next to [Approve].\n")
        os.environ["KUBEGATE_CONFIG"] = info["kubegate_config"]
        os.environ["KUBEGATE_DB"] = str(where / "kubegate.db")
        return asyncio.run(_console(Settings(), user="U0ALICE", channel=info["channel"]))
    finally:
        testbed.terminate()
        testbed.wait(timeout=10)
        log.close()
