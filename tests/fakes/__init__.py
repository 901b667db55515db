"""The fast fake tier: an in-memory Kubernetes API and SSH executor behind the interfaces the
playbooks use (`playbooks.kube.Kubernetes`, `playbooks.base.RemoteShell`), and a step runner
that drives steps as the engine does. Test support only: the product never imports it."""

from tests.fakes.kube import FakeKube, hpa, node, pdb, pod
from tests.fakes.running import Run, cluster_of
from tests.fakes.ssh import Call, FakeShell, Reply

__all__ = [
    "Call",
    "FakeKube",
    "FakeShell",
    "Reply",
    "Run",
    "cluster_of",
    "hpa",
    "node",
    "pdb",
    "pod",
]
