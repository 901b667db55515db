"""The `/kube` grammar: chat text in, typed and validated request models out, plus help.

Pure code: no I/O, and nothing of kubegate's other packages is imported.
"""

from commands._errors import CommandError
from commands._grammar import parse_command
from commands._help import help_text
from commands._models import (
    DEFAULT_AUDIT_LOOKBACK,
    AuditCommand,
    BackupsCommand,
    CancelCommand,
    CertsCommand,
    Command,
    HelpCommand,
    JobCommand,
    JobsCommand,
    MutatingCommand,
    NodesCommand,
    PodsCommand,
    RetryCommand,
    StatusCommand,
)
from commands._mutating import (
    DEFAULT_DRAIN_TIMEOUT,
    BackupEtcdCommand,
    BackupPkiCommand,
    CordonCommand,
    DrainCommand,
    NewNodeTaint,
    ProvisionNodeCommand,
    RestoreEtcdCommand,
    RotateCertsCommand,
    ScaleHpaCommand,
    TaintCommand,
    UncordonCommand,
    UntaintCommand,
    UpgradeClusterCommand,
    UpgradeNodeCommand,
)
from commands._registry import VERB_SPECS, VERBS, find_verb
from commands._spec import Group, OptionSpec, VerbSpec
from commands._validators import TAINT_EFFECTS, format_duration, parse_duration

__all__ = [
    "DEFAULT_AUDIT_LOOKBACK",
    "DEFAULT_DRAIN_TIMEOUT",
    "TAINT_EFFECTS",
    "VERBS",
    "VERB_SPECS",
    "AuditCommand",
    "BackupEtcdCommand",
    "BackupPkiCommand",
    "BackupsCommand",
    "CancelCommand",
    "CertsCommand",
    "Command",
    "CommandError",
    "CordonCommand",
    "DrainCommand",
    "Group",
    "HelpCommand",
    "JobCommand",
    "JobsCommand",
    "MutatingCommand",
    "NewNodeTaint",
    "NodesCommand",
    "OptionSpec",
    "PodsCommand",
    "ProvisionNodeCommand",
    "RestoreEtcdCommand",
    "RetryCommand",
    "RotateCertsCommand",
    "ScaleHpaCommand",
    "StatusCommand",
    "TaintCommand",
    "UncordonCommand",
    "UntaintCommand",
    "UpgradeClusterCommand",
    "UpgradeNodeCommand",
    "VerbSpec",
    "find_verb",
    "format_duration",
    "help_text",
    "parse_command",
    "parse_duration",
]
