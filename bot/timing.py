"""When changes may run: the configured maintenance windows and change freezes, read for a
command's `--at` / `--window` and for the engine's last check before a step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from approvals import Freeze, MaintenanceWindow, active_freeze
from bot.config import FreezeConfig, MaintenanceWindowConfig
from bot.store import utcnow
from commands import Command


class ChangeCalendar:
    def __init__(
        self,
        *,
        maintenance_windows: Mapping[str, MaintenanceWindowConfig],
        freezes: Sequence[FreezeConfig],
    ) -> None:
        self._windows = maintenance_windows
        self._freezes = [freeze.as_freeze() for freeze in freezes]

    def active_freeze(self, cluster: str) -> Freeze | None:
        return active_freeze(self._freezes, now=utcnow(), cluster=cluster)

    def window(self, name: str | None) -> MaintenanceWindow | None:
        window = self._windows.get(name) if name else None
        return window.as_window(name) if window and name else None

    def schedule_problem(self, command: Command) -> str | None:
        """Why `--at`/`--window` cannot be honoured, in words; None when they can (or are absent)."""
        at, window = getattr(command, "at", None), getattr(command, "window", None)
        if at is not None and at <= utcnow():
            return f"--at {at:%Y-%m-%d %H:%M} UTC is in the past; pick a later time."
        if window is not None and window not in self._windows:
            known = ", ".join(sorted(self._windows)) or "none are configured"
            return f"There is no maintenance window `{window}` (known: {known})."
        return None
