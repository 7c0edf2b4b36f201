"""The determinism probe: does a live extension give the same reply to the same request?

A side-effect-free extension must be idempotent, so the probe sends each sample message to the
extension's subject four times: twice one after the other, then twice at once. Every reply
must equal the first. An extension that adds a counter, a timestamp or a random id to its
reply fails, and the probe reports the first difference: which message, which reply and which
key. The result is stored on the version with ``registry.services.record_probe_result``, and
the snapshot loader plans a side-effect-free version that failed as having side effects.

A pass is evidence, not proof: the probe cannot see writes that leave the reply unchanged.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from django.conf import settings
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from executor.core import codec
from registry import services
from registry.models import ExtensionVersion

logger = logging.getLogger("executor.probe")

DEFAULT_MESSAGE_COUNT = 5
MIN_TIMEOUT_MS = 1000
PROBE_TENANT_ID = "determinism-probe"
PROBE_POLICY_ID = "determinism-probe"
SEND_ORDER = (
    "the first send",
    "the second send, made after the first reply",
    "the third send, made at the same time as the fourth",
    "the fourth send, made at the same time as the third",
)
MAX_VALUE_CHARS = 80


class ProbeError(RuntimeError):
    """The probe could not talk to the extension: no NATS, no responders, or a timeout."""


@dataclass(frozen=True)
class ProbeResult:
    """The outcome for one version: ``status`` is a ``ExtensionVersion.ProbeStatus`` value."""

    status: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == ExtensionVersion.ProbeStatus.PASSED


def default_messages_path() -> Path:
    return Path(settings.BASE_DIR) / "bench" / "messages" / "messages.jsonl"


def load_messages(path: Path | None = None, count: int = DEFAULT_MESSAGE_COUNT) -> list[dict[str, Any]]:
    """Read ``count`` messages, evenly spread, from a JSON Lines file of message objects."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    path = path or default_messages_path()
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} contains no messages; expected one JSON object per line.")

    step = max(1, len(lines) // count)
    messages = []
    for line_index in range(0, len(lines), step)[:count]:
        message = codec.decode(lines[line_index])
        if not isinstance(message, dict):
            raise ValueError(f"Message {line_index + 1} of {path} is not a JSON object; expected one per line.")
        messages.append(message)
    return messages


def probe_request(index: int, message: dict[str, Any]) -> dict[str, Any]:
    """Return the extension request for a sample message; every send of it uses these exact bytes."""
    return {
        "trace_id": f"{index + 1:032x}",
        "tenant_id": PROBE_TENANT_ID,
        "payload": message,
        "metadata": {"policy_id": PROBE_POLICY_ID},
    }


async def probe_subject(
    nc: Client, subject: str, messages: Sequence[dict[str, Any]], *, timeout_s: float
) -> ProbeResult:
    """Send each message four times to ``subject`` and compare the replies with the first.

    Raises ``ProbeError`` when a send gets no reply.
    """
    for index, message in enumerate(messages):
        request = probe_request(index, message)
        data = codec.encode(request)
        headers = {"traceparent": f"00-{request['trace_id']}-{index + 1:016x}-01"}

        async def send() -> Any:
            return await _send(nc, subject, data, headers, timeout_s)

        replies = [await send(), await send()]
        replies += await asyncio.gather(send(), send())

        for position in range(1, len(replies)):
            key = first_difference(replies[0], replies[position])
            if key is not None:
                detail = _difference_detail(index, message, position, key, replies[0], replies[position])
                return ProbeResult(ExtensionVersion.ProbeStatus.FAILED, detail)

    count = len(messages)
    return ProbeResult(
        ExtensionVersion.ProbeStatus.PASSED,
        f"All {count} sample messages got the same reply four times: twice in a row and twice at once.",
    )


async def _send(nc: Client, subject: str, data: bytes, headers: dict[str, str], timeout_s: float) -> Any:
    try:
        reply = await nc.request(subject, data, timeout=timeout_s, headers=headers)
    except NoRespondersError as error:
        raise ProbeError(f"No extension listens on {subject}; start it and probe again.") from error
    except NatsTimeoutError as error:
        raise ProbeError(f"{subject} did not reply within {timeout_s * 1000:.0f} ms.") from error

    try:
        return codec.decode(reply.data)
    except ValueError:
        # A reply that is not JSON is compared as text; the executor would report it as bad_reply.
        return reply.data.decode("utf-8", errors="replace")


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Return the path of the first key where ``actual`` differs from ``expected``, or None when equal.

    Paths read like ``metadata.calls`` or ``payload.tokens[2]``. Keys are visited in sorted order.
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in expected or key not in actual:
                return child
            found = first_difference(expected[key], actual[key], child)
            if found is not None:
                return found
        return None

    if isinstance(expected, list) and isinstance(actual, list):
        for position, (left, right) in enumerate(zip(expected, actual)):
            found = first_difference(left, right, f"{path}[{position}]")
            if found is not None:
                return found
        return None if len(expected) == len(actual) else f"{path}[{min(len(expected), len(actual))}]"

    if expected == actual and type(expected) is type(actual):
        return None
    return path or "(the whole reply)"


def _difference_detail(
    index: int, message: dict[str, Any], position: int, key: str, first: Any, other: Any
) -> str:
    message_id = message.get("message_id", f"#{index + 1}")
    return (
        f"Message {message_id} (sample {index + 1}): {SEND_ORDER[position]} got a different reply from the "
        f"first at {key}: {_value_at(first, key)} then {_value_at(other, key)}."
    )


def _value_at(reply: Any, path: str) -> str:
    value = reply
    for part in path.replace("[", ".[").split("."):
        if not part or path == "(the whole reply)":
            continue
        if part.startswith("["):
            position = int(part[1:-1])
            value = value[position] if isinstance(value, list) and position < len(value) else "(missing)"
        else:
            value = value.get(part, "(missing)") if isinstance(value, dict) else "(missing)"
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


# Running against registry versions


def probe_timeout_s(version: ExtensionVersion, timeout_ms: int | None = None) -> float:
    """Return the per-send timeout: ``timeout_ms`` if given, else the version's, at least one second."""
    return (timeout_ms or max(version.timeout_ms, MIN_TIMEOUT_MS)) / 1000


async def probe_versions(
    nats_url: str,
    versions: Iterable[ExtensionVersion],
    messages: Sequence[dict[str, Any]],
    *,
    timeout_ms: int | None = None,
) -> list[tuple[ExtensionVersion, ProbeResult]]:
    """Probe each version's subject over one NATS connection; a version that cannot be reached gets ``error``."""
    if not nats_url:
        raise ProbeError("NATS_URL is not set, so the probe cannot reach the extension; set it or pass --nats-url.")
    try:
        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception as error:  # noqa: BLE001 - nats-py raises several kinds; all mean the same here
        raise ProbeError(f"Could not connect to NATS at {nats_url}: {error}") from error

    results = []
    try:
        for version in versions:
            try:
                result = await probe_subject(nc, version.subject, messages, timeout_s=probe_timeout_s(version, timeout_ms))
            except ProbeError as error:
                result = ProbeResult(ExtensionVersion.ProbeStatus.ERROR, str(error))
            logger.info("Probed %s on %s: %s", version, version.subject, result.status)
            results.append((version, result))
    finally:
        await nc.close()
    return results


def probe_and_record(
    versions: Iterable[ExtensionVersion],
    *,
    messages: Sequence[dict[str, Any]] | None = None,
    nats_url: str | None = None,
    timeout_ms: int | None = None,
) -> list[tuple[ExtensionVersion, ProbeResult]]:
    """Probe the versions from synchronous code and store each result on its version.

    Raises ``ProbeError`` when NATS cannot be reached at all; nothing is recorded then.
    """
    versions = list(versions)
    messages = messages if messages is not None else load_messages()
    url = settings.NATS_URL if nats_url is None else nats_url
    results = asyncio.run(probe_versions(url, versions, messages, timeout_ms=timeout_ms))
    for version, result in results:
        services.record_probe_result(version, result.status, result.detail)
    return results
