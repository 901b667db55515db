"""Keeps secrets out of Slack, logs and the audit log: known values and secret-named keys."""

from __future__ import annotations

import logging
import re
from typing import Any

_FORMATTER = logging.Formatter()
SECRET_KEY = re.compile(r"(token|secret|password|passwd|private_key|join_command|credential)", re.I)
MASK = "[redacted]"


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()

    def register(self, *values: str | None) -> None:
        """Remember secret values; too-short ones would mask ordinary words, so they are refused."""
        for value in values:
            if value and len(value) >= 8:
                self._values.add(value)

    def text(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: MASK if SECRET_KEY.search(str(key)) else self.scrub(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secret values in every record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self._redactor.text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # A traceback quotes the exception's text, which may carry a secret: the handler
            # prints exc_text as given, so it is masked here once.
            record.exc_text = self._redactor.text(_FORMATTER.formatException(record.exc_info))
        return True
