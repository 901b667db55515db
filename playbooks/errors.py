"""The one error family the engine expects from playbooks: each carries a sentence for people."""

from __future__ import annotations


class OperationError(Exception):
    """Something outside kubegate refused or failed (API, SSH, Vault, a plan that cannot be)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
