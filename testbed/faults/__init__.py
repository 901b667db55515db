"""Fault switches of a running testbed: `python -m testbed fault --dir DIR NAME [ARGS]`.

The testbed serves them on a loopback control endpoint (URL and token in testbed.json under
`faults`); the command posts `{"name": ..., "args": [...]}` there. Each fault is one entry in a
table (`control_planes.FAULTS`, `machines.FAULTS`): its arguments, what it does, and, for
faults that last, what ends them (`NAME-clear`, or `--for DURATION`).
"""

from testbed.faults.base import Fault, FaultError, World
from testbed.faults.command import add_command, run_command, send_fault
from testbed.faults.switches import FAULTS, FaultSwitches

__all__ = [
    "FAULTS",
    "Fault",
    "FaultError",
    "FaultSwitches",
    "World",
    "add_command",
    "run_command",
    "send_fault",
]
