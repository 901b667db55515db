"""The testbed's SSH node fleet: one real OpenSSH sshd per node, with shims that record calls and
change the node's state (and the fake apiserver's Nodes) as a real host would."""

from testbed.fleet.account import FLEET_USER, FleetAccountError
from testbed.fleet.fleet import Call, Fleet, FleetNode, apiserver_nodes

__all__ = ["FLEET_USER", "Call", "Fleet", "FleetAccountError", "FleetNode", "apiserver_nodes"]
