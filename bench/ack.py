"""`python -m bench.ack`: how fast kubegate acknowledges `/kube` against a bare slack-bolt app.

Both apps are served in this process on the same testbed Slack emulator (kubegate exactly as the
e2e tests serve it); signed slash commands come from 1 and 50 concurrent clients in a separate
process. The apps take turns in ABBA order per level (`--rounds` repeats it). With `--with-job`
a kubegate job (a drain held by a PodDisruptionBudget, bench/ack_job.py) runs throughout. The last
line printed is JSON with p50/p99 per app and level and `ratio` = kubegate p99 ÷ bare p99
(DESIGN.md §11: ≤ 1.25, all under 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp

import bot.app as bot_app
from bench import ack_job
from bench.ack_load import Sample, run_load
from bot.app import Runtime, serve
from bot.chat import Chat
from bot.config import KubegateConfig, Settings
from bot.redact import Redactor
from bot.slack_app import web_client
from testbed.slack.payloads import slash_command_form
from testbed.slack.responses import ResponseTarget
from testbed.up import CHANNEL, USERS, Testbed, start_testbed

# Commands that do real work in kubegate: answered in the ack, acked then answered in the
# background, planned in the background, and refused by the parser.
MIX = (
    "/kube help",
    "/kube nodes",
    "/kube cordon worker-2 --dry-run",
    "/kube cordn worker-2",
)
USER = "U0ALICE"  # in the sre role, so cordon is planned rather than refused
SLACK_LIMIT_S = 3.0
APPS = ("kubegate", "bolt")


@dataclass
class Target:
    """One app under load: where it listens and how to wait until its background work is done."""

    name: str
    url: str
    settle: Callable[[], Awaitable[None]]


@dataclass
class Measured:
    samples: list[Sample] = field(default_factory=list)
    phase_p99_ms: list[float] = field(default_factory=list)
    rounds: list[list[Sample]] = field(default_factory=list)  # one ABBA round's samples each


# --- the apps -----------------------------------------------------------------------------------


def bare_bolt(testbed: Testbed) -> AsyncApp:
    """The smallest Bolt app answering `/kube`, configured as kubegate's (bot/slack_app.py)."""
    client = web_client(token=testbed.slack.bot_token, api_url=testbed.slack.api_url)
    app = AsyncApp(
        client=client, signing_secret=testbed.slack.signing_secret, process_before_response=False
    )

    @app.command("/kube")
    async def kube_command(ack: AsyncAck) -> None:
        await ack("ok")

    return app


def bolt_over_aiohttp(app: AsyncApp) -> web.Application:
    """Bolt's own aiohttp adapter with nothing in front: no body cap, no replay cache."""

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    application = web.Application()
    application.router.add_post("/slack/events", events)
    return application


@contextlib.asynccontextmanager
async def serving_bolt(testbed: Testbed) -> AsyncIterator[str]:
    runner = web.AppRunner(bolt_over_aiohttp(bare_bolt(testbed)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="127.0.0.1", port=0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def capturing_runtime() -> Iterator[list[Runtime]]:
    """Let `serve` build kubegate as usual, keeping the Runtime so the bench can await idle()."""
    built: list[Runtime] = []
    original = bot_app.build

    def build(
        settings: Settings,
        *,
        chat: Callable[[KubegateConfig], Chat],
        redactor: Redactor | None = None,
        outbox: bool = False,
    ) -> Runtime:
        runtime = original(settings, chat=chat, redactor=redactor, outbox=outbox)
        built.append(runtime)
        return runtime

    with mock.patch.object(bot_app, "build", new=build):
        yield built


@contextlib.asynccontextmanager
async def serving_kubegate(testbed: Testbed, db: Path) -> AsyncIterator[tuple[str, Runtime]]:
    """As tests/e2e/conftest.py `serving()` does it: `serve(settings, ready=…, stop=…)`."""
    settings = Settings.model_validate(
        {"KUBEGATE_CONFIG": str(testbed.config_path), "KUBEGATE_DB": str(db), "KUBEGATE_PORT": 0}
    )
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    with capturing_runtime() as built:
        task = asyncio.create_task(serve(settings, ready=port.set_result, stop=stop))
        started: list[asyncio.Future[Any]] = [port, task]
        done, _ = await asyncio.wait(started, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong at start-up
    url = f"http://127.0.0.1:{port.result()}/slack/events"
    testbed.slack.app_url = url
    try:
        yield url, built[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def nothing_to_settle() -> None:
    """The bare app spawns nothing beyond Bolt's own listener task, done by the time it acks."""


# --- the load -----------------------------------------------------------------------------------


def slash_bodies(testbed: Testbed, commands: Sequence[str], count: int) -> list[bytes]:
    """`count` slash-command forms as Slack posts them, cycling through `commands`."""
    emulator = testbed.slack
    target = ResponseTarget(channel=CHANNEL, user=USER)
    return [
        slash_command_form(
            workspace=emulator.workspace,
            command_line=commands[i % len(commands)],
            user_id=USER,
            user_name=USERS[USER],
            channel_id=CHANNEL,
            channel_name=emulator.channel_name(CHANNEL),
            response_url=emulator.responses.issue(emulator.url, target),
        )
        for i in range(count)
    ]


def percentile_ms(samples: Sequence[Sample], p: float) -> float:
    """Nearest-rank percentile: the smallest latency at least p % of the requests did not exceed."""
    ordered = sorted(s.seconds for s in samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 2)


async def phase(
    pool: ProcessPoolExecutor,
    testbed: Testbed,
    target: Target,
    *,
    commands: Sequence[str],
    concurrency: int,
    requests: int,
    warmup: int,
) -> list[Sample]:
    bodies = slash_bodies(testbed, commands, warmup + requests)
    load = partial(
        run_load,
        url=target.url,
        signing_secret=testbed.slack.signing_secret,
        bodies=bodies,
        concurrency=concurrency,
        warmup=warmup,
    )
    samples = await asyncio.get_running_loop().run_in_executor(pool, load)
    # Background work (kubegate's planning, Bolt's listener tasks) ends before the next turn.
    await target.settle()
    await asyncio.sleep(0.2)
    # Garbage is collected between turns, as pyperf does between runs: this process also holds
    # the testbed (the Slack emulator's transcript grows with every answer) and the bench's
    # records, and a full collection of all that would otherwise land in whichever turn (almost
    # always kubegate's, whose answers grow the transcript) crossed the threshold. Collections
    # of what a turn itself makes still happen inside it.
    gc.collect()
    return samples


async def measure(
    pool: ProcessPoolExecutor,
    testbed: Testbed,
    targets: dict[str, Target],
    *,
    commands: Sequence[str],
    levels: Sequence[int],
    requests: int,
    warmup: int,
    rounds: int = 1,
) -> dict[int, dict[str, Measured]]:
    results: dict[int, dict[str, Measured]] = {}
    for name in APPS:  # first requests pay for auth.test, connection set-up, imports
        await phase(
            pool,
            testbed,
            targets[name],
            commands=commands,
            concurrency=1,
            requests=0,
            warmup=warmup,
        )
    for level in levels:
        results[level] = {name: Measured() for name in APPS}
        for _ in range(rounds):
            for name in APPS:
                results[level][name].rounds.append([])
            order = ("kubegate", "bolt", "bolt", "kubegate")  # ABBA: drift in load hits both alike
            for name in order:
                samples = await phase(
                    pool,
                    testbed,
                    targets[name],
                    commands=commands,
                    concurrency=level,
                    requests=max(1, requests // (2 * rounds)),
                    warmup=max(warmup, 2 * level),
                )
                measured = results[level][name]
                measured.samples += samples
                measured.rounds[-1] += samples
                measured.phase_p99_ms.append(percentile_ms(samples, 99))
                print(
                    f"c={level:<3} {name:<9} {len(samples)} requests: "
                    f"p50 {percentile_ms(samples, 50):7.2f} ms  "
                    f"p99 {percentile_ms(samples, 99):7.2f} ms  "
                    f"max {percentile_ms(samples, 100):7.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return results


# --- the figures ---------------------------------------------------------------------------------


def failures_of(samples: Sequence[Sample]) -> list[str]:
    return [
        f"HTTP {s.status} after {s.seconds * 1000:.0f} ms {s.error}".strip()
        for s in samples
        if s.status != 200 or s.seconds > SLACK_LIMIT_S
    ]


def level_figures(measured: dict[str, Measured]) -> dict[str, Any]:
    kubegate, bolt = measured["kubegate"].samples, measured["bolt"].samples
    figures: dict[str, Any] = {}
    for name, samples in (("kubegate", kubegate), ("bolt", bolt)):
        for p in (50, 95, 99):
            figures[f"{name}_p{p}_ms"] = percentile_ms(samples, p)
        figures[f"{name}_max_ms"] = percentile_ms(samples, 100)
        figures[f"{name}_phase_p99_ms"] = measured[name].phase_p99_ms
        figures[f"{name}_failures"] = len(failures_of(samples))
    figures["ratio"] = round(figures["kubegate_p99_ms"] / figures["bolt_p99_ms"], 3)
    # One ratio per ABBA round: a stall of the shared machine spoils one round, not the median.
    by_round = zip(measured["kubegate"].rounds, measured["bolt"].rounds, strict=True)
    figures["round_ratios"] = [
        round(percentile_ms(k, 99) / percentile_ms(b, 99), 3) for k, b in by_round
    ]
    figures["median_round_ratio"] = round(statistics.median(figures["round_ratios"]), 3)
    figures["requests"] = min(len(kubegate), len(bolt))
    return figures


def report(
    results: dict[int, dict[str, Measured]], context: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    figures: dict[str, Any] = {}
    failures: list[str] = []
    for level, measured in results.items():
        figures[f"concurrency_{level}"] = level_figures(measured)
        for name in APPS:
            failures += [f"c={level} {name}: {f}" for f in failures_of(measured[name].samples)]
    everything = [s for measured in results.values() for m in measured.values() for s in m.samples]
    figures["max_ms"] = percentile_ms(everything, 100)
    figures["failures"] = len(failures)
    figures["all_ok"] = not failures
    return figures | context, failures


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    commands = args.command or list(MIX)
    context: dict[str, Any] = {
        "commands": commands,
        "cpus": os.cpu_count(),
        "load_1m_before": round(os.getloadavg()[0], 2),
        "rounds": args.rounds,
        "with_job": args.with_job,
    }
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="bench-ack-") as scratch,
        ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool,
    ):
        testbed = await start_testbed(Path(scratch) / "testbed", fleet=False)
        try:
            async with (
                serving_kubegate(testbed, Path(scratch) / "kubegate.db") as (url, runtime),
                serving_bolt(testbed) as bolt_url,
            ):
                job_id = None
                if args.with_job:
                    job_id = await ack_job.start_held_drain(testbed, runtime)
                    context["job"] = f"#{job_id} {ack_job.COMMAND}"
                calls_before = Counter(testbed.slack.calls)
                targets = {
                    # The commands' answers, not the job: it runs on through every turn.
                    "kubegate": Target("kubegate", url, runtime.kubegate.answered),
                    "bolt": Target("bolt", bolt_url, nothing_to_settle),
                }
                results = await measure(
                    pool,
                    testbed,
                    targets,
                    commands=commands,
                    levels=args.levels,
                    requests=args.requests,
                    warmup=args.warmup,
                    rounds=args.rounds,
                )
                calls = Counter(testbed.slack.calls)
                calls.subtract(calls_before)
                if job_id is not None:
                    # Still RUNNING here, or the figures were not measured beside a running job.
                    context["job_state_after"] = ack_job.job_state(runtime, job_id)
                    context["job_state_end"] = await ack_job.let_it_finish(testbed, runtime, job_id)
        finally:
            await testbed.stop()
    context["slack_api_calls"] = dict(sorted((+calls).items()))
    context["load_1m_after"] = round(os.getloadavg()[0], 2)
    return report(results, context)


def levels_arg(text: str) -> list[int]:
    return [int(level) for level in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack", description=__doc__)
    parser.add_argument(
        "--levels",
        type=levels_arg,
        default=[1, 50],
        help="comma-separated client counts (default 1,50)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=400,
        help="measured requests per app and level, split over two turns (default 400)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="unmeasured requests before each turn (at least 2 × clients; default 20)",
    )
    parser.add_argument(
        "--command", action="append", help="a slash command to send instead of the mix (repeatable)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="ABBA rounds per level, the requests split over them (default 1)",
    )
    parser.add_argument(
        "--with-job",
        action="store_true",
        help="measure while a kubegate job runs: a drain of worker-3 held by a PDB",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures, failures = asyncio.run(run(args))
    if args.with_job and figures.get("job_state_after") != ack_job.RUNNING:
        failures.append(f"the job was {figures.get('job_state_after')} after the turns")
        figures["failures"] += 1
        figures["all_ok"] = False
    for failure in failures[:20]:
        print(f"failed: {failure}", file=sys.stderr)
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(json.dumps(figures))
    return 0 if figures["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
