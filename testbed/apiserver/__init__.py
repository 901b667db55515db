"""A fake kube-apiserver for the testbed: HTTPS, bearer token, discovery, an in-memory store of
registered kinds with watches and patches, and nodes that heartbeat like real kubelets.
"""

from testbed.apiserver.errors import ApiError
from testbed.apiserver.kinds import ResourceKind, ResourceRegistry, TableColumn
from testbed.apiserver.nodes import NodeSpec
from testbed.apiserver.server import FakeApiServer
from testbed.apiserver.store import ObjectStore, WatchEvent

__all__ = [
    "ApiError",
    "FakeApiServer",
    "NodeSpec",
    "ObjectStore",
    "ResourceKind",
    "ResourceRegistry",
    "TableColumn",
    "WatchEvent",
]
