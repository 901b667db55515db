"""Anchors: the audit chain's head {seq, hash, time} written outside the database.

A chain alone cannot show that its newest events were cut off, nor that it was recomputed by
someone holding the key file too. An anchor can: `audit verify` compares the newest anchor in
the file with the chain, and a SIEM receiving the same anchors keeps a copy an attacker on the
kubegate host cannot rewrite. Anchors are written at every job end and every N minutes, by one
worker thread, so a slow SIEM never holds up the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import socket
import threading
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from bot.private_files import append_private

log = logging.getLogger("kubegate.anchors")


@dataclass(frozen=True)
class Anchor:
    seq: int  # the id of the newest event
    hash: str  # its (keyed) hash
    time: str
    keyed_from: int | None  # the first keyed event, so an unkeyed rewrite of the chain shows

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """`SEQ:HASH`, as an operator copies it from the SIEM."""
        seq, _, digest = text.partition(":")
        if not (seq.isdigit() and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ValueError(f"'{text}' is not an anchor; give SEQ:HASH (event number, 64 hex)")
        return cls(int(seq), digest, "given on the command line", None)


class AnchorSink(Protocol):
    name: str

    def send(self, anchor: Anchor) -> None: ...


def anchor_file_next_to(database: Path) -> Path:
    return database.with_name(database.name + ".anchors")


class AnchorFile:
    """Append-only, one JSON anchor per line, 0600."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, anchor: Anchor) -> None:
        append_private(self.path, anchor.as_json() + "\n")

    def newest(self) -> Anchor | None:
        """The last anchor written; ValueError when that line is not an anchor."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as file:  # the tail only: the file grows for years
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            lines = file.read().decode(errors="replace").splitlines()
        if not lines:
            return None
        try:
            fields = json.loads(lines[-1])
            return Anchor(
                seq=int(fields["seq"]),
                hash=str(fields["hash"]),
                time=str(fields["time"]),
                keyed_from=fields.get("keyed_from"),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the last line of {self.path} is not an anchor") from error


class SyslogSink:
    """One RFC 5424 message per anchor in a UDP datagram (RFC 5426), facility 13 "log audit"."""

    name = "syslog"
    PRIORITY = 13 * 8 + 6  # facility log audit, severity informational (RFC 5424 §6.2.1)

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = (host.strip("[]") or "127.0.0.1", int(port))

    def send(self, anchor: Anchor) -> None:
        # HEADER: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then no STRUCTURED-DATA.
        message = (
            f"<{self.PRIORITY}>1 {anchor.time} {socket.gethostname()} kubegate {os.getpid()} "
            f"audit-anchor - {anchor.as_json()}"
        )
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.sendto(message.encode(), self.address)


class HttpSink:
    """POST {seq, hash, time, keyed_from} as JSON to a SIEM's HTTP collector."""

    name = "http"

    def __init__(self, url: str, *, timeout: float = 5) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"audit.anchor_url must be http(s)://…, not {url!r}")
        self.url, self.timeout = url, timeout

    def send(self, anchor: Anchor) -> None:
        request = urllib.request.Request(  # noqa: S310 — the scheme is checked above
            self.url,
            data=anchor.as_json().encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()


_PERIODIC, _JOB_END, _STOP = "periodic", "job end", "stop"


class Anchoring:
    """Writes the chain head to every sink: now, when asked (a job ended), and every `every`."""

    def __init__(
        self,
        head: Callable[[], tuple[int, str, int | None] | None],
        sinks: Sequence[AnchorSink],
        *,
        every: timedelta,
    ) -> None:
        self._head, self._sinks, self._every = head, list(sinks), every
        self._requests: queue.Queue[str] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="audit-anchors", daemon=True)
        self._anchored = False
        self._last: tuple[int, str, int | None] | None = None  # the head anchored last

    def start(self) -> None:
        self._anchor_file_now()
        self._worker.start()
        self._requests.put(_PERIODIC)

    def event_recorded(self) -> None:
        """Until the first anchor exists (a new, empty chain), anchor the first event at once."""
        if not self._anchored:
            self._anchor_file_now()
            self._requests.put(_PERIODIC)

    def _anchor_file_now(self) -> None:
        # The file at once, so `audit verify` finds an anchor from the first event on; a SIEM
        # that is slow to answer is the worker's business, never the caller's.
        self.anchor_now([sink for sink in self._sinks if isinstance(sink, AnchorFile)])

    def job_ended(self) -> None:
        self._requests.put(_JOB_END)

    def stop(self) -> None:
        """Write a last anchor (the head at shutdown) and end the worker."""
        if self._worker.is_alive():
            self._requests.put(_STOP)
            self._worker.join(timeout=30)

    def _run(self) -> None:
        while True:
            try:
                why = self._requests.get(timeout=self._every.total_seconds())
            except queue.Empty:
                why = _PERIODIC
            if self._head() != self._last:  # an idle chain's head is not written again
                self.anchor_now()
            if why == _STOP:
                return

    def anchor_now(self, sinks: Sequence[AnchorSink] | None = None) -> Anchor | None:
        head = self._head()
        if head is None:
            return None  # an empty chain has nothing to vouch for
        seq, digest, keyed_from = head
        anchor = Anchor(seq, digest, datetime.now(UTC).isoformat(timespec="seconds"), keyed_from)
        self._anchored = True
        if sinks is None:  # every sink has it now; a file-only anchor still owes the SIEM one
            self._last = head
        for sink in self._sinks if sinks is None else sinks:
            try:
                sink.send(anchor)
            except (OSError, ValueError) as error:
                # The chain is still whole; only this copy of its head is missing.
                log.warning("could not anchor the audit chain to %s: %s", sink.name, error)
        return anchor
