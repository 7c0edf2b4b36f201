"""``make traffic``: send the message set through the running executor for both demo tenants.

Every round sends each message of ``bench/messages/messages.jsonl`` once for
``tenant-parallel`` and once for ``tenant-sequential`` (their demo policies), with the
``pre`` and ``validators`` stages, over NATS request/reply on ``beamline.executor.v1.execute``.
A fixed number of requests is in flight at once. At the end it prints, per tenant and
execution mode, the message count, the outcomes and the p50/p95 latency: the round trip
measured here and the ``execution.latency_ms`` the executor reports.

The NATS URL is ``--nats-url``, else the ``NATS_URL`` environment variable, else the
``nats_url`` of ``var/run.json``, which ``make run`` writes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError

PROJECT_DIR = Path(__file__).resolve().parent.parent
MESSAGES_FILE = Path(__file__).resolve().parent / "messages" / "messages.jsonl"
EXECUTE_SUBJECT = "beamline.executor.v1.execute"
STAGES = ["pre", "validators"]
DEFAULT_CONCURRENCY = 8
DEFAULT_DURATION_S = 15.0
DEFAULT_TIMEOUT_S = 5.0
OUTCOMES = ("ok", "rejected", "failed")


@dataclass(frozen=True)
class Target:
    """A demo tenant and the policy its traffic runs."""

    tenant_id: str
    policy_id: str


DEMO_TARGETS = (
    Target("tenant-parallel", "policy-parallel-demo"),
    Target("tenant-sequential", "policy-sequential-demo"),
)


@dataclass(frozen=True)
class Outcome:
    """The result of one request; ``executor_ms`` is ``None`` without an executor reply."""

    tenant_id: str
    mode: str
    status: str
    round_trip_ms: float
    executor_ms: float | None


class TrafficError(RuntimeError):
    """The traffic run cannot start; the message states what to fix."""


# Configuration


def resolve_nats_url(flag: str | None, environ: Mapping[str, str], run_file: Path) -> str:
    """Return the NATS URL from the flag, the environment or ``make run``'s run file, in that order."""
    if flag:
        return flag
    if environ.get("NATS_URL"):
        return environ["NATS_URL"]

    try:
        run_info = json.loads(run_file.read_text())
    except FileNotFoundError:
        raise TrafficError(
            f"No NATS URL: pass --nats-url, set NATS_URL, or start the console with `make run` "
            f"(it writes {run_file})."
        ) from None
    except ValueError as error:
        raise TrafficError(f"{run_file} is not valid JSON ({error}); restart `make run` to rewrite it.") from error

    nats_url = run_info.get("nats_url") if isinstance(run_info, dict) else None
    if not isinstance(nats_url, str) or not nats_url:
        raise TrafficError(f"{run_file} has no nats_url; restart `make run` to rewrite it.")
    return nats_url


def default_run_file(environ: Mapping[str, str]) -> Path:
    """Return where ``make run`` writes its run file: ``run.json`` in ``BEAMLINE_VAR_DIR`` or ``var/``."""
    return Path(environ.get("BEAMLINE_VAR_DIR") or PROJECT_DIR / "var") / "run.json"


def load_messages(path: Path) -> list[dict[str, Any]]:
    """Return the messages of a JSONL file, skipping blank lines."""
    messages = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            message = json.loads(line)
            if not isinstance(message, dict):
                raise TrafficError(f"{path}, line {number}: expected a message object.")
            messages.append(message)
    if not messages:
        raise TrafficError(f"{path} has no messages.")
    return messages


# Sending


def execute_request(target: Target, message: dict[str, Any]) -> bytes:
    """Return the body of an execute request for ``message`` under ``target``'s policy."""
    request = {
        "tenant_id": target.tenant_id,
        "policy_id": target.policy_id,
        "payload": message,
        "metadata": {},
        "stages": STAGES,
    }
    return json.dumps(request, ensure_ascii=False).encode()


def execution_mode_of(reply: dict[str, Any]) -> str:
    """Return ``execution.mode``, or ``parallel`` when any group ran in parallel, else ``sequential``."""
    execution = reply.get("execution")
    if not isinstance(execution, dict):
        return "unknown"
    if isinstance(execution.get("mode"), str):
        return execution["mode"]

    stages = execution.get("stages")
    if not isinstance(stages, list):
        return "unknown"
    group_modes = {
        group.get("execution_mode")
        for stage in stages if isinstance(stage, dict)
        for group in stage.get("groups") or [] if isinstance(group, dict)
    }
    return "parallel" if "parallel" in group_modes else "sequential"


def outcome_of(target: Target, reply_data: bytes, round_trip_ms: float) -> Outcome:
    """Read an executor reply into an ``Outcome``; a reply that is not a JSON object is a failure."""
    try:
        reply = json.loads(reply_data)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        return Outcome(target.tenant_id, "bad reply", "failed", round_trip_ms, None)

    status = reply.get("status") if reply.get("status") in OUTCOMES else "failed"
    execution = reply.get("execution") if isinstance(reply.get("execution"), dict) else {}
    latency = execution.get("latency_ms")
    executor_ms = float(latency) if isinstance(latency, (int, float)) else None
    return Outcome(target.tenant_id, execution_mode_of(reply), status, round_trip_ms, executor_ms)


async def send_one(nc: Client, target: Target, message: dict[str, Any], timeout_s: float) -> Outcome:
    """Send one execute request and return its outcome; a timeout or no responders is a failure."""
    started = time.perf_counter()
    try:
        reply = await nc.request(EXECUTE_SUBJECT, execute_request(target, message), timeout=timeout_s)
    except NatsTimeoutError:
        return Outcome(target.tenant_id, "timed out", "failed", (time.perf_counter() - started) * 1000, None)
    except NoRespondersError:
        return Outcome(target.tenant_id, "no responders", "failed", (time.perf_counter() - started) * 1000, None)
    return outcome_of(target, reply.data, (time.perf_counter() - started) * 1000)


async def send_all(
    nc: Client,
    jobs: Sequence[tuple[Target, dict[str, Any]]],
    *,
    concurrency: int,
    timeout_s: float,
) -> list[Outcome]:
    """Send every job with at most ``concurrency`` requests in flight; return the outcomes."""
    pending = iter(jobs)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        # The shared iterator hands each job to exactly one worker; asyncio never switches
        # tasks inside next().
        for target, message in pending:
            outcomes.append(await send_one(nc, target, message, timeout_s))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def round_jobs(messages: Iterable[dict[str, Any]], targets: Sequence[Target]) -> list[tuple[Target, dict[str, Any]]]:
    """Return one round: every message for every target, the targets interleaved."""
    return [(target, message) for message in messages for target in targets]


async def check_executor_answers(nc: Client, target: Target, message: dict[str, Any], timeout_s: float) -> None:
    """Send one request; raises ``TrafficError`` when no executor listens on the subject."""
    try:
        await nc.request(EXECUTE_SUBJECT, execute_request(target, message), timeout=timeout_s)
    except NoRespondersError:
        raise TrafficError(
            f"No executor responds on {EXECUTE_SUBJECT}; is `make run` running?"
        ) from None
    except NatsTimeoutError:
        raise TrafficError(
            f"The executor did not respond on {EXECUTE_SUBJECT} within {timeout_s} s; "
            "check its log, or raise --timeout."
        ) from None


async def connect(nats_url: str) -> Client:
    """Connect once to ``nats_url``; raises ``TrafficError`` when the server cannot be reached."""
    try:
        return await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False, error_cb=_ignore_error)
    except (NoServersError, OSError, asyncio.TimeoutError) as error:
        raise TrafficError(
            f"Could not connect to NATS at {nats_url} ({error or type(error).__name__}); is `make run` running?"
        ) from error


async def _ignore_error(error: Exception) -> None:
    # connect() raises the same error; without this callback nats-py would also log it.
    return None


# Reporting


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``; ``fraction`` is 0.5 for p50."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary_rows(outcomes: Iterable[Outcome]) -> list[list[str]]:
    """Return one table row per tenant and execution mode, sorted by tenant and mode."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.tenant_id, outcome.mode), []).append(outcome)

    rows = []
    for (tenant_id, mode), group in sorted(groups.items()):
        round_trips = [outcome.round_trip_ms for outcome in group]
        executor_times = [outcome.executor_ms for outcome in group if outcome.executor_ms is not None]
        counts = {status: sum(outcome.status == status for outcome in group) for status in OUTCOMES}
        rows.append([
            tenant_id,
            mode,
            str(len(group)),
            *(str(counts[status]) for status in OUTCOMES),
            f"{percentile(round_trips, 0.5):.1f}",
            f"{percentile(round_trips, 0.95):.1f}",
            f"{percentile(executor_times, 0.5):.1f}" if executor_times else "-",
            f"{percentile(executor_times, 0.95):.1f}" if executor_times else "-",
        ])
    return rows


TABLE_HEADER = [
    "tenant", "mode", "messages", "ok", "rejected", "failed",
    "p50 ms", "p95 ms", "executor p50 ms", "executor p95 ms",
]


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Return ``rows`` under ``TABLE_HEADER`` as aligned plain text; text columns left, numbers right."""
    table = [TABLE_HEADER, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(TABLE_HEADER))]

    def format_row(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join(format_row(row) for row in table)


# Entry point


@dataclass(frozen=True)
class TrafficOptions:
    """The command-line options of one traffic run."""

    nats_url: str
    messages: list[dict[str, Any]]
    rounds: int | None
    duration_s: float
    concurrency: int
    timeout_s: float


async def run_traffic(options: TrafficOptions) -> tuple[list[Outcome], int, float]:
    """Send the rounds; return the outcomes, the rounds sent and the elapsed seconds.

    With ``rounds`` unset, rounds are sent until ``duration_s`` has passed, finishing the
    round in progress.
    """
    nc = await connect(options.nats_url)
    try:
        await check_executor_answers(nc, DEMO_TARGETS[0], options.messages[0], options.timeout_s)

        jobs = round_jobs(options.messages, DEMO_TARGETS)
        outcomes: list[Outcome] = []
        rounds_sent = 0
        started = time.perf_counter()
        while _another_round(options, rounds_sent, time.perf_counter() - started):
            outcomes += await send_all(nc, jobs, concurrency=options.concurrency, timeout_s=options.timeout_s)
            rounds_sent += 1
        return outcomes, rounds_sent, time.perf_counter() - started
    finally:
        await nc.close()


def _another_round(options: TrafficOptions, rounds_sent: int, elapsed_s: float) -> bool:
    if options.rounds is not None:
        return rounds_sent < options.rounds
    return elapsed_s < options.duration_s


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.traffic",
        description="Send the message set through the running executor over NATS for the demo tenants "
        "tenant-parallel and tenant-sequential, then print outcomes and latencies per tenant and "
        "execution mode. Start the product first with `make run`.",
    )
    parser.add_argument(
        "--nats-url",
        help="NATS server URL (default: the NATS_URL environment variable, else nats_url in var/run.json)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        help="number of rounds; a round sends every message once per demo tenant "
        "(default: as many rounds as fit in --duration)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=DEFAULT_DURATION_S,
        metavar="SECONDS",
        help=f"without --rounds, keep starting rounds for this many seconds (default: {DEFAULT_DURATION_S:g})",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for each reply (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--messages",
        type=Path,
        default=MESSAGES_FILE,
        metavar="FILE",
        help="JSONL file of messages to send (default: bench/messages/messages.jsonl)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        options = TrafficOptions(
            nats_url=resolve_nats_url(arguments.nats_url, os.environ, default_run_file(os.environ)),
            messages=load_messages(arguments.messages),
            rounds=arguments.rounds,
            duration_s=arguments.duration,
            concurrency=arguments.concurrency,
            timeout_s=arguments.timeout,
        )
        print(_start_line(options), flush=True)
        outcomes, rounds_sent, elapsed_s = asyncio.run(run_traffic(options))
    except TrafficError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    print(
        f"\n{rounds_sent} round(s), {len(outcomes)} requests in {elapsed_s:.1f} s "
        f"({len(outcomes) / elapsed_s:.0f} requests/s), {options.concurrency} in flight\n"
    )
    print(format_table(summary_rows(outcomes)))
    return 0


def _start_line(options: TrafficOptions) -> str:
    how_long = f"{options.rounds} round(s)" if options.rounds is not None else f"about {options.duration_s:g} s"
    return (
        f"Sending {len(options.messages)} messages per tenant per round to {EXECUTE_SUBJECT} "
        f"at {options.nats_url} for {how_long}..."
    )


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return number


if __name__ == "__main__":
    sys.exit(main())
