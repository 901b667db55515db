"""The deploy/ manifests are valid Kubernetes objects (kubectl's own client-side checks)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import yaml

from testbed.up import Testbed

MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubegate.yaml"


async def test_kubectl_accepts_the_deploy_manifests(testbed: Testbed, tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [
            "kubectl",
            "--kubeconfig",
            str(testbed.kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            "apply",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "name",
            "-f",
            str(MANIFESTS),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/kubegate" in result.stdout and "service/kubegate" in result.stdout


def test_the_deployment_runs_one_kubegate_with_its_config_as_a_non_root_user() -> None:
    objects = {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFESTS.read_text())}
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"]["type"] == "Recreate"
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    config = yaml.safe_load(objects["ConfigMap"]["data"]["kubegate.yaml"])
    assert config["policy"][0]["approvals"] >= 1
