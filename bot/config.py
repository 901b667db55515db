"""kubegate's configuration: environment (pydantic-settings) and the YAML file it names.

A bad config is reported whole, every problem with its path, before anything starts: the
schema's problems and those of `bot.config_checks` (typos in verbs, roles, windows) together.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from approvals import Freeze, MaintenanceWindow, PolicyRule, Windows
from bot.config_checks import config_problems, unique
from playbooks.inventory import Inventory, YamlDuration
from playbooks.vault import VaultSettings

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ClusterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    context: str | None = None
    kubeconfig: Path | None = None
    channels: list[str] = Field(default_factory=list)
    inventory: Inventory = Field(default_factory=Inventory)
    # Each Kubernetes API request (a hanging API server fails it, not the whole job).
    api_request_timeout: YamlDuration = timedelta(seconds=10)
    # The most nodes that may be unschedulable at once, whatever verb takes them down.
    max_unavailable: int = Field(default=1, ge=1)

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("must be lowercase letters, digits and '-' (a DNS-1123 label)")
        return value

    @field_validator("channels")
    @classmethod
    def _channels_are_ids(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not CHANNEL_ID.match(channel):
                raise ValueError(f"'{channel}' is not a Slack channel ID (like C0123ABCD)")
        return value


class WindowsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approval: YamlDuration = timedelta(minutes=30)
    execution: YamlDuration = timedelta(hours=2)

    def as_windows(self) -> Windows:
        return Windows(approval=self.approval, execution=self.execution)


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None  # Socket Mode (`xapp-…`): no public endpoint needed
    api_url: str | None = None


class VaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    auth: Literal["token", "approle", "kubernetes"] = "token"
    token: SecretStr | None = None  # VAULT_TOKEN wins
    role_id: str | None = None
    secret_id: SecretStr | None = None
    kubernetes_role: str | None = None
    kv_mount: str = "secret"
    ssh_mount: str = "ssh-client-signer"
    ssh_role: str = "kubegate"
    ca_cert: str | None = None


class BackupsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = None  # KUBEGATE_BACKUP_DIR wins; default ./backups
    keep: int = Field(default=7, ge=1)
    max_age: YamlDuration = timedelta(hours=24)
    check_every: YamlDuration = timedelta(minutes=15)


class CertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check_every: YamlDuration = timedelta(hours=12)
    warn_days: list[int] = Field(default_factory=lambda: [30, 14, 7], min_length=1)


class MaintenanceWindowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: time  # UTC, e.g. "02:00"
    duration: YamlDuration

    def as_window(self, name: str) -> MaintenanceWindow:
        return MaintenanceWindow(
            name=name, weekdays=tuple(self.weekdays), start=self.start, duration=self.duration
        )


class FreezeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    start: datetime  # UTC when no zone is given
    end: datetime
    clusters: list[str] | None = None
    reason: str = ""

    def as_freeze(self) -> Freeze:
        def utc(moment: datetime) -> datetime:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

        clusters = tuple(self.clusters) if self.clusters is not None else None
        return Freeze(self.name, utc(self.start), utc(self.end), clusters, self.reason)


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None  # KUBEGATE_ALERTS_TOKEN wins; Alertmanager sends it as Bearer
    alertmanager_url: str | None = None  # for [Silence 1h]
    channel: str | None = None  # default: the cluster's first channel
    node_not_ready_after: YamlDuration = timedelta(minutes=5)  # kubegate's own NodeNotReady alert
    node_check_every: YamlDuration = timedelta(seconds=30)


class AuditConfig(BaseModel):
    """Where the audit chain's key lives and where its head is anchored (bot/anchors.py)."""

    model_config = ConfigDict(extra="forbid")

    key_file: Path | None = None  # default: beside the database; unused when Vault holds the key
    vault_key_path: str = "kubegate/audit-chain-key"  # KV v2, when the config has `vault:`
    anchor_file: Path | None = None  # default: beside the database, `<db>.anchors`
    anchor_every: YamlDuration = timedelta(minutes=10)
    anchor_url: str | None = None  # a SIEM's HTTP collector: POST {seq, hash, time, keyed_from}
    anchor_syslog: str | None = None  # "host:port": one RFC 5424 datagram per anchor (UDP)

    @field_validator("anchor_syslog")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"(\[[0-9a-fA-F:]+\]|[^\s:\[\]]+):\d{1,5}", value
        ):
            raise ValueError(f"'{value}' is not host:port (like 10.0.0.5:514 or [::1]:514)")
        return value

    @field_validator("anchor_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http:// or https:// URL")
        return value


class KubegateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clusters: list[ClusterConfig] = Field(min_length=1)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    policy: list[PolicyRule] = Field(default_factory=list)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    vault: VaultConfig | None = None
    backups: BackupsConfig = Field(default_factory=BackupsConfig)
    certs: CertsConfig = Field(default_factory=CertsConfig)
    maintenance_windows: dict[str, MaintenanceWindowConfig] = Field(default_factory=dict)
    freezes: list[FreezeConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    # Display names for the console and messages; identity is always the ID.
    users: dict[str, str] = Field(default_factory=dict)

    def cluster_named(self, name: str) -> ClusterConfig | None:
        return next((c for c in self.clusters if c.name == name), None)

    def cluster_for_channel(self, channel: str) -> ClusterConfig | None:
        return next((c for c in self.clusters if channel in c.channels), None)


class Settings(BaseSettings):
    """Environment variables; these win over the YAML's `slack:` block."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, validation_alias="KUBEGATE_SLACK_API_URL")
    config_path: Path | None = Field(default=None, validation_alias="KUBEGATE_CONFIG")
    kubeconfig: Path | None = Field(default=None, validation_alias=AliasChoices("KUBECONFIG"))
    db: Path = Field(default=Path("kubegate.db"), validation_alias="KUBEGATE_DB")
    port: int = Field(default=3000, validation_alias="KUBEGATE_PORT")
    backup_dir: Path | None = Field(default=None, validation_alias="KUBEGATE_BACKUP_DIR")
    vault_addr: str | None = Field(default=None, validation_alias="VAULT_ADDR")
    vault_token: SecretStr | None = Field(default=None, validation_alias="VAULT_TOKEN")
    alerts_token: SecretStr | None = Field(default=None, validation_alias="KUBEGATE_ALERTS_TOKEN")


def load_config(path: Path) -> KubegateConfig:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror}"]) from error
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from error
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping with clusters, roles and policy"])
    # Schema errors and cross-reference problems together: one run of `config check` shows all.
    try:
        config = KubegateConfig.model_validate(raw)
        schema: list[str] = []
    except ValidationError as error:
        schema = [_problem(e) for e in error.errors()]
    problems = unique([*schema, *config_problems(raw)])
    if problems:
        raise ConfigError(problems)
    base = path.parent
    for cluster in config.clusters:
        if cluster.kubeconfig is not None:
            cluster.kubeconfig = base / cluster.kubeconfig
        ssh = cluster.inventory.ssh
        updates = {
            f: base / getattr(ssh, f) for f in ("known_hosts", "private_key") if getattr(ssh, f)
        }
        if updates:
            inventory = cluster.inventory.model_copy(update={"ssh": ssh.model_copy(update=updates)})
            cluster.inventory = inventory
    if config.backups.dir is not None:
        config.backups.dir = base / config.backups.dir
    return config


def config_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _problem(error: Any) -> str:
    location = ""
    for part in error["loc"]:
        location += (
            f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location or '(top)'}: {message}"


def config_path(settings: Settings) -> Path:
    if settings.config_path is not None:
        return settings.config_path
    if Path("kubegate.yaml").exists():
        return Path("kubegate.yaml")
    raise ConfigError(["KUBEGATE_CONFIG is not set and there is no ./kubegate.yaml"])


def vault_settings(settings: Settings, config: KubegateConfig) -> VaultSettings | None:
    """Vault from the config, with the usual VAULT_ADDR / VAULT_TOKEN variables winning."""
    vault = config.vault
    url = settings.vault_addr or (vault.url if vault else None)
    if url is None:
        return None
    token = settings.vault_token or (vault.token if vault else None)
    secret_id = vault.secret_id if vault else None
    return VaultSettings(
        url=url,
        auth=vault.auth if vault else "token",
        token=token.get_secret_value() if token else None,
        role_id=vault.role_id if vault else None,
        secret_id=secret_id.get_secret_value() if secret_id else None,
        kubernetes_role=vault.kubernetes_role if vault else None,
        kv_mount=vault.kv_mount if vault else "secret",
        ssh_mount=vault.ssh_mount if vault else "ssh-client-signer",
        ssh_role=vault.ssh_role if vault else "kubegate",
        ca_cert=vault.ca_cert if vault else None,
    )
