"""Names the test whose time limit ran out (pytest-timeout's thread method), then lets
pytest-timeout dump every thread's stack and end the process.

The thread method, not the signal one, because a hang in an async fixture's teardown (the
event loop waiting on a thread that never returns) ignores SIGALRM's exception and stalls the
run with every worker idle; a timer thread ending the process is the one way out. Under xdist
the controller then reports "worker crashed while running <test>" and starts a fresh worker;
without xdist this module's line is what names the test.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_timeout


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "thread":
        return None  # pytest-timeout's own implementation
    timer = threading.Timer(settings.timeout, _end_the_run, (item, settings))
    timer.name = f"timeout {item.nodeid}"
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    # pytest-timeout's pytest_timeout_cancel_timer calls this.
    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    timer.start()
    return True


def _end_the_run(item: pytest.Item, settings: Any) -> None:
    terminal = item.config.get_terminal_writer()
    terminal.line()
    terminal.line(f"TIMEOUT {item.nodeid} ran past its {settings.timeout:g} s limit", red=True)
    pytest_timeout.timeout_timer(item, settings)  # dumps the stacks, then os._exit(1)
