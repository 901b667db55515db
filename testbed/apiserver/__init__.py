"""A fake kube-apiserver for the testbed: HTTPS, bearer token, discovery, an in-memory store with
watches and patches, controllers (workloads, PDBs, eviction, HPAs) and scenario files.
"""

from testbed.apiserver.errors import ApiError
from testbed.apiserver.kinds import ResourceKind, ResourceRegistry, TableColumn
from testbed.apiserver.nodes import NodeSpec
from testbed.apiserver.scenarios import SCENARIOS, Scenario, parse_scenario
from testbed.apiserver.server import FakeApiServer
from testbed.apiserver.store import ObjectStore, WatchEvent

__all__ = [
    "SCENARIOS",
    "ApiError",
    "FakeApiServer",
    "NodeSpec",
    "ObjectStore",
    "ResourceKind",
    "ResourceRegistry",
    "Scenario",
    "TableColumn",
    "WatchEvent",
    "parse_scenario",
]
