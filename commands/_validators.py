"""The rules a value must meet before kubegate acts on it, each refusal naming its rule.

Each check raises ValueError with a message for the user; the models attach them to fields so
a command built from a button is held to the same rules as one typed in chat.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL)
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_QUALIFIED_NAME_RE = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VERSION_RE = re.compile(r"v(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")
_DURATION_RE = re.compile(
    r"(?:(?P<d>[0-9]{1,5})d)?(?:(?P<h>[0-9]{1,6})h)?(?:(?P<m>[0-9]{1,7})m)?(?:(?P<s>[0-9]{1,9})s)?"
)
_SLACK_USER_RE = re.compile(r"<?@?(?P<id>[UW][A-Z0-9]{2,20})(?:\|[^>]*)?>?")
_SCHEDULE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2}):(\d{2})(:\d{2})?(Z|[+-]\d{2}:?\d{2})?")

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
TAINT_EFFECTS: tuple[TaintEffect, ...] = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NodeRole = Literal["worker", "control-plane"]
KUBERNETES_MANAGED_TAINT_PREFIX = "node.kubernetes.io/"

SUBDOMAIN_RULE = (
    "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit "
    "(DNS-1123 subdomain, at most 253 characters)"
)
LABEL_RULE = (
    "use lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(DNS-1123 label, at most 63 characters)"
)


def check_node_name(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a valid node name: {SUBDOMAIN_RULE}.")
    return value


def _label_check(noun: str) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > 63 or not _LABEL_RE.fullmatch(value):
            raise ValueError(f"'{value}' is not a valid {noun}: {LABEL_RULE}.")
        return value

    return AfterValidator(check)


def check_version(value: str) -> str:
    if _VERSION_RE.fullmatch(value):
        return value
    hint = f" (did you mean v{value}?)" if _VERSION_RE.fullmatch(f"v{value}") else ""
    raise ValueError(
        f"'{value}' is not a Kubernetes version kubegate understands{hint}: "
        "write 'v' then major.minor.patch, e.g. v1.31.2."
    )


def check_taint_key(value: str) -> str:
    prefix, slash, name = value.rpartition("/")
    prefix_ok = not slash or (len(prefix) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(prefix)))
    name_ok = len(name) <= 63 and bool(_QUALIFIED_NAME_RE.fullmatch(name))
    if not (prefix_ok and name_ok):
        raise ValueError(
            f"'{value}' is not a valid taint key: use an optional DNS prefix and '/', then at "
            "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
            "digit (Kubernetes qualified name), e.g. dedicated or example.com/gpu."
        )
    if value.startswith(KUBERNETES_MANAGED_TAINT_PREFIX):
        raise ValueError(
            f"'{value}': kubegate never touches node.kubernetes.io/* taints: "
            "Kubernetes manages them."
        )
    return value


def check_taint_value(value: str | None) -> str | None:
    if not value:  # Kubernetes treats an empty value as no value
        return None
    if len(value) > 63 or not _QUALIFIED_NAME_RE.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid taint value: use at most 63 letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit."
        )
    return value


def check_taint_effect(value: object) -> object:
    if value is None or value in TAINT_EFFECTS:
        return value
    raise ValueError(
        f"'{value}' is not a taint effect: the effect must be NoSchedule, PreferNoSchedule "
        "or NoExecute (exactly so written)."
    )


def parse_duration(text: str) -> timedelta:
    """`30s`, `10m`, `2h`, `1h30m`, `7d` as a timedelta."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(
            f"'{text}' is not a duration: write a number with a unit, "
            "e.g. 30s, 10m, 2h, 1h30m or 7d."
        )
    parts = {unit: int(amount) for unit, amount in match.groupdict().items() if amount}
    duration = timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )
    return _check_duration_bounds(duration, shown=text)


# Ten years: anything longer is a typo, and `now - since` must stay a valid datetime.
_LONGEST_DURATION = timedelta(days=3650)


def _check_duration_bounds(duration: timedelta, *, shown: str | None = None) -> timedelta:
    shown = format_duration(duration) if shown is None else shown
    if duration <= timedelta(0):
        raise ValueError(f"'{shown}' is not a usable duration: it must be longer than zero.")
    if duration > _LONGEST_DURATION:
        raise ValueError(f"'{shown}' is too long a duration: at most 3650d (ten years).")
    return duration


def format_duration(duration: timedelta) -> str:
    """The inverse of `parse_duration`: 5400 s reads `1h30m`."""
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        return "0s"
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    amounts = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    return "".join(f"{amount}{unit}" for amount, unit in amounts if amount)


def _accept_duration_text(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _whole_number(noun: str, *, minimum: int, maximum: int) -> BeforeValidator:
    def check(value: object) -> object:
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?[0-9]{1,12}", text):
            raise ValueError(f"'{value}' is not a {noun}: use a whole number, e.g. {minimum}.")
        number = int(text)
        if not minimum <= number <= maximum:
            raise ValueError(f"{number} is not a usable {noun}: use {minimum} to {maximum}.")
        return number

    return BeforeValidator(check)


def parse_job_id(value: object) -> object:
    """Job ids are positive; people copy `#42` from the channel, so the `#` is fine."""
    text = str(value).strip().removeprefix("#")
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,18}", text) or int(text) == 0:
        raise ValueError(f"'{value}' is not a job id: use the job's number, e.g. 42 or #42.")
    return int(text)


def parse_slack_user(value: str) -> str:
    match = _SLACK_USER_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"'{value}' is not a Slack user ID: use the ID (U… or W…, e.g. U024BE7LH), "
            "not a display name, since anyone can change theirs. It is under the person's "
            "profile → ⋮ → Copy member ID."
        )
    return match.group("id")


def parse_schedule_time(value: object) -> object:
    """`2026-12-01 02:00` (taken as UTC) or ISO 8601 with a zone, as an aware UTC datetime."""
    moment = value if isinstance(value, datetime) else _read_schedule_text(str(value))
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31 23:00-05:00 is past the last datetime
        raise ValueError(f"'{value}' is out of range: pick a time in the coming years.") from None


def _read_schedule_text(value: str) -> datetime:
    text = value.strip().removesuffix("UTC").strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"'{text}' needs a time of day too, in UTC: e.g. --at \"{text} 02:00\".")
    match = _SCHEDULE_RE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        date, hour, minute, seconds, zone = match.groups()
        return datetime.fromisoformat(f"{date}T{int(hour):02}:{minute}{seconds or ''}{zone or ''}")
    except ValueError:
        raise ValueError(
            f"'{value}' is not a time kubegate understands: write the date and time in UTC, "
            'e.g. --at "2026-12-01 02:00" or --at 2026-12-01T02:00Z.'
        ) from None


def parse_address(value: object) -> object:
    """A single IPv4 or IPv6 host address; no networks, zones or wildcards."""
    text = str(value).strip()
    try:
        if "%" in text:  # an IPv6 zone id would reach SSH and shell commands unchecked
            raise ValueError(text)
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IP address: give the host's own address, e.g. 10.0.0.15 "
            "or fd00::15 (no /prefix)."
        ) from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"'{value}' cannot be a host's address: give the node's own address.")
    return address


# What a kubelet may set on its own Node (the NodeRestriction admission plugin): in the
# kubernetes.io and k8s.io namespaces only these; node-role.kubernetes.io/* is refused.
KUBELET_LABEL_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")


def check_node_label(text: str) -> tuple[str, str]:
    """`key=value` for a new node's --node-labels, as Kubernetes checks label keys and values."""
    key, equals, value = text.partition("=")
    prefix, slash, name = key.rpartition("/")
    prefix_ok = not slash or (len(prefix) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(prefix)))
    name_ok = len(name) <= 63 and bool(_QUALIFIED_NAME_RE.fullmatch(name))
    value_ok = not value or (len(value) <= 63 and bool(_QUALIFIED_NAME_RE.fullmatch(value)))
    if not (equals and prefix_ok and name_ok and value_ok):
        raise ValueError(
            f"'{text}' is not a node label: write key=value, e.g. --label pool=batch; the key "
            "is an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or "
            "'.'; the value the same, or empty."
        )
    restricted = prefix.endswith(("kubernetes.io", "k8s.io"))
    if restricted and not key.startswith(KUBELET_LABEL_PREFIXES):
        raise ValueError(
            f"'{key}' is a label a kubelet may not give its own node (NodeRestriction): pick "
            "a label outside kubernetes.io and k8s.io, or set it later with kubectl."
        )
    return key, value


def parse_node_labels(value: object) -> object:
    """--label k=v, given once or more, to a dict (a later key wins, as kubectl label's)."""
    if not isinstance(value, list):
        return value
    return dict(check_node_label(str(item)) for item in value)


def check_node_role(value: object) -> object:
    if value in ("worker", "control-plane"):
        return value
    raise ValueError(f"'{value}' is not a node role: use worker or control-plane.")


def check_reason(value: str) -> str:
    reason = value.strip()
    if not reason:
        raise ValueError('--break-glass needs a reason, e.g. --break-glass "INC-123 API down".')
    if len(reason) > 500:
        raise ValueError("The break-glass reason is too long: keep it under 500 characters.")
    return reason


NodeName = Annotated[str, AfterValidator(check_node_name)]
Namespace = Annotated[str, _label_check("namespace")]
ObjectName = Annotated[str, _label_check("name")]
ClusterName = Annotated[str, _label_check("cluster name")]
WindowName = Annotated[str, _label_check("maintenance window name")]
KubernetesVersion = Annotated[str, AfterValidator(check_version)]
TaintKey = Annotated[str, AfterValidator(check_taint_key)]
TaintValue = Annotated[str | None, AfterValidator(check_taint_value)]
Effect = Annotated[TaintEffect, BeforeValidator(check_taint_effect)]
Role = Annotated[NodeRole, BeforeValidator(check_node_role)]
Duration = Annotated[
    timedelta,
    BeforeValidator(_accept_duration_text),
    AfterValidator(lambda duration: _check_duration_bounds(duration)),
]
ReplicaCount = Annotated[int, _whole_number("replica count", minimum=1, maximum=100_000)]
MaxUnavailable = Annotated[int, _whole_number("node count", minimum=1, maximum=1_000)]
JobId = Annotated[int, BeforeValidator(parse_job_id)]
SlackUserId = Annotated[str, AfterValidator(parse_slack_user)]
ScheduleTime = Annotated[datetime, BeforeValidator(parse_schedule_time)]
HostAddress = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(parse_address)
]
Reason = Annotated[str, AfterValidator(check_reason)]
NodeLabels = Annotated[dict[str, str], BeforeValidator(parse_node_labels)]
