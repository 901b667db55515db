"""What anyone who reaches kubegate's port can send to /slack/events: oversized, badly signed,
malformed and replayed requests are refused cheaply, each adding at most one short escaped log
line (never the body), and a replayed slash command opens no second job."""

from __future__ import annotations

import logging
import time

import pytest

from bot.store import Store
from testbed.slack.delivery import SignedRequest
from testbed.slack.signing import signed_headers
from testbed.up import Testbed

from .conftest import Served
from .slack_steps import CHANNEL, click, request, root_messages, wait_text

# A line that would pass for kubegate's own if a body reached the log unescaped.
FORGED_LINE = "\n2026-11-30 04:00:00 INFO bot.engine: job #1 approved by U0CAROL"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def refusals(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The log records about refused requests at /slack/events."""
    return [record for record in log.records if "/slack/events" in record.getMessage()]


def assert_short_and_bodiless(record: logging.LogRecord) -> None:
    line = record.getMessage()
    assert "\n" not in line and len(line) < 200, line
    assert "U0CAROL" not in line and "xxxx" not in line, line


@pytest.mark.parametrize(("size", "status"), [(1_000_000, 413), (500_000, 401)])
async def test_a_large_badly_signed_body_is_refused_with_one_short_log_line(
    testbed: Testbed,
    kubegate: Served,
    log: pytest.LogCaptureFixture,
    size: int,
    status: int,
) -> None:
    body = (b"command=%2Fkube&text=" + b"x" * size + FORGED_LINE.encode())[:size]
    started = time.monotonic()
    response = await testbed.slack.send_signed(body, signing_secret="not-the-secret")

    assert response.status == status
    assert time.monotonic() - started < 3  # Slack's own limit for an answer
    assert len(refusals(log)) == 1
    assert_short_and_bodiless(refusals(log)[0])


async def test_a_badly_signed_body_with_a_newline_adds_one_escaped_line_and_no_forged_one(
    testbed: Testbed, kubegate: Served, log: pytest.LogCaptureFixture
) -> None:
    body = ("command=/kube&text=jobs" + FORGED_LINE).encode()
    response = await testbed.slack.send_signed(body, signing_secret="not-the-secret")

    assert response.status == 401
    (record,) = refusals(log)
    assert_short_and_bodiless(record)
    assert "bad signature" in record.getMessage()


@pytest.mark.parametrize("timestamp", ["soon", "1e9", "-5", "١٧٠٠٠٠٠٠٠٠", "1" * 40, ""])
async def test_a_malformed_timestamp_is_answered_401_never_500(
    testbed: Testbed, kubegate: Served, log: pytest.LogCaptureFixture, timestamp: str
) -> None:
    body = b"command=%2Fkube&text=jobs"
    headers = signed_headers(
        signing_secret=testbed.slack.signing_secret, timestamp=int(time.time()), body=body
    )
    headers["X-Slack-Request-Timestamp"] = timestamp
    url = testbed.slack.app_url
    assert url is not None
    response = await testbed.slack.delivery.send(SignedRequest(url, body, headers))

    assert response.status == 401, response.body
    assert "Traceback" not in response.body
    (record,) = refusals(log)
    assert_short_and_bodiless(record)
    assert "malformed timestamp" in record.getMessage()


async def test_a_body_that_is_not_utf8_is_refused_with_one_line_never_500(
    testbed: Testbed, kubegate: Served, log: pytest.LogCaptureFixture
) -> None:
    response = await testbed.slack.send_signed(
        b"command=%2Fkube&text=\xff\xfe" + FORGED_LINE.encode()
    )

    assert response.status == 400
    (record,) = refusals(log)
    assert_short_and_bodiless(record)


async def test_refusals_beyond_ten_a_minute_add_no_more_lines(
    testbed: Testbed, kubegate: Served, log: pytest.LogCaptureFixture
) -> None:
    for _ in range(25):
        response = await testbed.slack.send_signed(
            b"command=%2Fkube&text=jobs", signing_secret="not-the-secret"
        )
        assert response.status == 401
    assert len(refusals(log)) == 10


async def test_a_replayed_slash_command_opens_no_second_job(
    testbed: Testbed, kubegate: Served, log: pytest.LogCaptureFixture
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    original = testbed.slack.last_request
    assert original is not None
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED")

    replayed = await testbed.slack.replay(original)

    assert replayed.status == 401  # refused at the edge: nothing behind it saw the request
    assert len(root_messages(testbed)) == 1
    store = Store(kubegate.db)
    try:
        assert [job.id for job in store.recent_jobs()] == [1]
    finally:
        store.close()
    assert "replayed slash command" in refusals(log)[0].getMessage()


async def test_the_same_command_typed_again_is_a_new_request_and_is_answered(
    testbed: Testbed, kubegate: Served
) -> None:
    alice = testbed.slack.user("U0ALICE")
    first = await alice.slash("/kube cordon worker-1 --dry-run", channel=CHANNEL)
    again = await alice.slash("/kube cordon worker-1 --dry-run", channel=CHANNEL)
    assert (first.status, again.status) == (200, 200)


async def test_a_200_kb_command_is_answered_within_slacks_3_s(
    testbed: Testbed, kubegate: Served
) -> None:
    started = time.monotonic()
    response = await testbed.slack.user("U0ALICE").slash(
        "/kube cordon " + "<@UA|" * 40_000, channel=CHANNEL
    )
    assert response.status == 200
    assert time.monotonic() - started < 3
