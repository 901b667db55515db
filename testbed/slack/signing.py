"""Slack's request signing (v0 HMAC-SHA256) and the random secrets a fresh workspace gets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class SlackSecrets:
    """The credentials an app is given when installed into the emulated workspace."""

    bot_token: str
    signing_secret: str
    verification_token: str


def generate_secrets() -> SlackSecrets:
    """Fresh credentials shaped like Slack's, so format checks in the app pass."""
    team, user = secrets.randbelow(10**12), secrets.randbelow(10**12)
    return SlackSecrets(
        bot_token=f"xoxb-{team}-{user}-{secrets.token_urlsafe(18)}",
        signing_secret=secrets.token_hex(16),
        verification_token=secrets.token_urlsafe(18),
    )


def signature(*, signing_secret: str, timestamp: int, body: bytes) -> str:
    """The X-Slack-Signature value Slack computes for a request body."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(
    *,
    signing_secret: str,
    timestamp: int,
    body: bytes,
    content_type: str = "application/x-www-form-urlencoded",
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """The headers Slack sends with a request to an app, including redelivery markers."""
    headers = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(
            signing_secret=signing_secret, timestamp=timestamp, body=body
        ),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers
