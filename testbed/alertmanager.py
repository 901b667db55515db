"""`Alertmanager`: the real Prometheus Alertmanager from Debian, with one webhook receiver (kubegate)
and a port, config and storage dir of its own; tests push alerts to it as Prometheus would."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from testbed.daemons import free_port, stop_daemon

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
READY_TIMEOUT_S = 30.0
# Alerts are grouped per alert name and node, so each node's trouble is one Slack message (§6).
# An alert without a `node` label groups by alertname alone (node="" for all of them).
GROUP_BY = ["alertname", "node"]
# How long a test must allow for a webhook (measured on 0.25 with the 1s defaults):
#   firing:   group_wait after the group's first alert — about 1s;
#   resolved: at the group's next group_interval tick — up to 1s after resolve();
#   refused:  a 5xx or an unreachable receiver is retried in the same flush with exponential
#             backoff (0.5s, x1.5, jittered; gaps grow to ~4s) for 10s, then a new flush starts at
#             once; a 4xx is not retried in that flush but again at the next group_interval tick.
#             So a receiver that comes back is reached within ~5s. A flush that is still retrying
#             a firing notification finishes it even after resolve(): wait for status "resolved",
#             not for "the next webhook".
WEBHOOK_TIMEOUT_S = 15.0  # a generous bound for a test waiting on one webhook
FAILED_REQUESTS_METRIC = 'alertmanager_notification_requests_failed_total{integration="webhook"}'


class AlertmanagerError(RuntimeError):
    pass


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_config(
    *,
    webhook_url: str,
    bearer_token: str,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
    group_by: list[str] | None = None,
) -> dict[str, Any]:
    """One route, one receiver: every alert goes to kubegate's webhook with its bearer token."""
    return {
        "route": {
            "receiver": "kubegate",
            "group_by": group_by or GROUP_BY,
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "kubegate",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials": bearer_token}
                        },
                    }
                ],
            }
        ],
    }


class Alertmanager:
    """`prometheus-alertmanager` on 127.0.0.1:<free port>, no gossip (`--cluster.listen-address=`).

    Timings are strings in Alertmanager's duration syntax; 0.25 accepts group_wait "0s" and any
    group_interval/repeat_interval above zero ("100ms" works), but rejects zero for those two.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        webhook_url: str,
        bearer_token: str,
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        group_by: list[str] | None = None,
    ) -> None:
        # Teams group as they like (route.group_by, Alertmanager's configuration docs); e.g.
        # ["severity"] puts unrelated alerts in one group whose only common label is severity.
        self.group_by = group_by or GROUP_BY
        self.workdir = Path(workdir).resolve()
        self.config_path = self.workdir / "alertmanager.yml"
        self.storage_dir = self.workdir / "data"
        self.log_path = self.workdir / "alertmanager.log"
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        # Resolving re-sends an alert with its original startsAt, as Prometheus does.
        self._started_at: dict[frozenset[tuple[str, str]], datetime.datetime] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def description(self) -> dict[str, Any]:
        """What testbed.json says about it."""
        return {
            "url": self.url,
            "webhook_url": self.webhook_url,
            "config": str(self.config_path),
            "group_by": self.group_by,
        }

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(mode=0o700, exist_ok=True)
        self._write_config()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for _attempt in range(5):
            self.port = free_port()
            if await self._spawn():
                return
        await self.stop()
        raise AlertmanagerError(f"alertmanager did not start; see {self.log_path}")

    async def stop(self) -> None:
        await stop_daemon(self._process)
        self._process = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fire(
        self,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        *,
        ends_at: datetime.datetime | None = None,
    ) -> None:
        """Push a firing alert (startsAt now; endsAt, if given, is when it resolves by itself)."""
        now = datetime.datetime.now(datetime.UTC)
        self._started_at[frozenset(labels.items())] = now
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations or {},
            "startsAt": _timestamp(now),
        }
        if ends_at is not None:
            alert["endsAt"] = _timestamp(ends_at)
        await self._post_alerts([alert])

    async def resolve(self, labels: dict[str, str]) -> None:
        """Push the same alert again with endsAt now: Alertmanager sends it as resolved."""
        now = datetime.datetime.now(datetime.UTC)
        started = self._started_at.pop(frozenset(labels.items()), now)
        alert = {"labels": labels, "startsAt": _timestamp(started), "endsAt": _timestamp(now)}
        await self._post_alerts([alert])

    async def silences(self) -> list[dict[str, Any]]:
        """GET /api/v2/silences: every silence, including expired ones, as Alertmanager has it."""
        async with self._http().get(f"{self.url}/api/v2/silences") as response:
            if response.status != 200:
                raise AlertmanagerError(f"GET silences: {response.status} {await response.text()}")
            silences: list[dict[str, Any]] = await response.json()
            return silences

    async def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: each alert with `status.state` ("active" or "suppressed") and
        `status.silencedBy`, as Alertmanager's API v2 (openapi.yaml) gives them."""
        async with self._http().get(f"{self.url}/api/v2/alerts") as response:
            if response.status != 200:
                raise AlertmanagerError(f"GET alerts: {response.status} {await response.text()}")
            alerts: list[dict[str, Any]] = await response.json()
            return alerts

    async def failed_webhook_requests(self) -> int:
        """How many webhook POSTs failed (refused, unreachable, non-2xx), from its own /metrics."""
        async with self._http().get(f"{self.url}/metrics") as response:
            metrics = await response.text()
        for line in metrics.splitlines():
            if line.startswith(FAILED_REQUESTS_METRIC):
                return int(float(line.split()[-1]))
        return 0

    async def set_webhook(self, url: str) -> None:
        """Point the receiver at `url` and reload; alerts already firing are notified again."""
        self.webhook_url = url
        self._write_config()
        async with self._http().post(f"{self.url}/-/reload") as response:
            if response.status != 200:
                raise AlertmanagerError(f"reload: {response.status} {await response.text()}")

    def _write_config(self) -> None:
        config = alertmanager_config(
            webhook_url=self.webhook_url,
            bearer_token=self.bearer_token,
            group_wait=self.group_wait,
            group_interval=self.group_interval,
            repeat_interval=self.repeat_interval,
            group_by=self.group_by,
        )
        partial = self.config_path.with_suffix(".yml.tmp")
        partial.write_text(yaml.safe_dump(config, sort_keys=False))
        partial.chmod(0o600)  # it holds the bearer token
        partial.replace(self.config_path)  # a reload never reads half a file

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise AlertmanagerError("alertmanager is not started")
        return self._session

    async def _post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        async with self._http().post(f"{self.url}/api/v2/alerts", json=alerts) as response:
            if response.status != 200:
                raise AlertmanagerError(f"POST alerts: {response.status} {await response.text()}")

    async def _spawn(self) -> bool:
        args = [
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",
        ]
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                ALERTMANAGER, *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                return False  # most likely the port was taken between probe and bind
            if await self._ready():
                return True
            await asyncio.sleep(0.05)
        self._process.kill()
        await self._process.wait()
        return False

    async def _ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._http().get(f"{self.url}/-/ready") as response:
                return response.status == 200
        return False
