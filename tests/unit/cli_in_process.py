"""`kubegate …` run in this process: the same argv, environment, output and exit status as the
installed command, without a new interpreter importing kubegate again for every call (each
took about 0.7 s of CPU, over half the unit tier's time). tests/meta and tests/e2e run the
real executable."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from unittest import mock

from bot.cli import main


def kubegate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`kubegate *args` with only `env` in its environment, as `subprocess.run` would give it."""
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode: int | str | None = 0
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            main(list(args))
        except SystemExit as exit_:  # argparse and main end this way, as the command does
            returncode = exit_.code
    if isinstance(returncode, str):  # sys.exit("message"): said on stderr, status 1
        stderr.write(returncode + "\n")
        returncode = 1
    return subprocess.CompletedProcess(
        ["kubegate", *args], returncode or 0, stdout.getvalue(), stderr.getvalue()
    )
