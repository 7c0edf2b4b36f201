"""One step's extension call: the request body, retries, and the reply contract of its stage.

Retries: a call is repeated, up to the extension's ``retry`` count and after a short backoff,
only when the failure proves the request never reached the extension (no responders, or NATS
unavailable before sending). A timeout is never repeated because the extension may have run.
An error reply is not repeated either, because the extension ran and replied, and repeating a
deterministic failure only adds latency.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.core import codec
from executor.core.errors import (
    BadReply,
    ExtensionCallError,
    ExtensionDisabled,
    ExtensionReplyError,
    ExtensionTypeMismatch,
    UnknownExtension,
)
from executor.core.model import EXTENSION_TYPE_BY_STAGE, ExtensionSpec, StepSpec
from executor.core.tracing import GroupSpan
from executor.core.transport import Transport

OK = "ok"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"
SKIPPED = "skipped"

VALIDATORS = "validators"


@dataclass
class CallInput:
    """The input every member of a group receives: the message and context before the group."""

    trace_id: str
    tenant_id: str
    payload: Any
    metadata: dict[str, Any]
    span: GroupSpan | None = None
    _encoded: bytes | None = field(default=None, init=False, repr=False)

    def encoded(self) -> bytes:
        """Return ``{trace_id, tenant_id, payload, metadata}`` as JSON, encoded once per group."""
        if self._encoded is None:
            self._encoded = codec.encode({
                "trace_id": self.trace_id,
                "tenant_id": self.tenant_id,
                "payload": self.payload,
                "metadata": self.metadata,
            })
        return self._encoded


@dataclass
class MemberOutcome:
    """The end state of one step; ``reply`` is the decoded reply of a processor that succeeded."""

    step: StepSpec
    status: str = OK
    attempts: int = 0
    latency_ms: float = 0.0
    error: ExtensionCallError | None = None
    reply: dict[str, Any] | None = None
    reject_reason: str | None = None
    reject_details: Any = None
    started_at: float = field(default_factory=time.perf_counter)

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else self.error.error_type

    def finish(self, status: str, error: ExtensionCallError | None = None) -> MemberOutcome:
        """Set the final status and error and stamp the latency; returns ``self``."""
        self.status = status
        self.error = error
        self.latency_ms = (time.perf_counter() - self.started_at) * 1000.0
        return self


def call_budget_s(extension: ExtensionSpec, retry_backoff_s: float) -> float:
    """Return the longest a call with all its retries may take, in seconds."""
    return extension.timeout_ms / 1000.0 * (extension.retry + 1) + retry_backoff_s * extension.retry


def traceparent(trace_id: str) -> str:
    """Return a W3C ``traceparent`` header value with a new span id for ``trace_id``."""
    span_id = random.getrandbits(64) or 1
    return f"00-{trace_id}-{span_id:016x}-01"


class ExtensionCaller:
    """Calls a step's extension through a transport and applies its stage's reply rules."""

    def __init__(self, transport: Transport, retry_backoff_s: float) -> None:
        self._transport = transport
        self._retry_backoff_s = retry_backoff_s

    async def call(self, stage: str, step: StepSpec, extension: ExtensionSpec | None,
                   call_input: CallInput, outcome: MemberOutcome) -> MemberOutcome:
        """Run the step and fill ``outcome`` in; never raises except ``CancelledError``.

        ``outcome`` is passed in so a caller that cancels the call still sees the attempts made.
        When ``call_input`` carries a group span, the call gets a member span of its own, which
        is the parent named in the call's ``traceparent``.
        """
        member_span = None if call_input.span is None else call_input.span.start_member(step.id)
        try:
            extension = _usable_extension(stage, step, extension)
            data = _request_body(step, call_input)
            parent = call_input.trace_id if member_span is None else member_span.traceparent
            reply = await self._request_with_retries(extension, data, parent, member_span is not None, outcome)
            _apply_reply_contract(stage, reply, outcome)
        except ExtensionCallError as error:
            outcome.finish(FAILED, error)
        except asyncio.CancelledError:
            if member_span is not None:
                elapsed_ms = (time.perf_counter() - outcome.started_at) * 1000.0
                member_span.end(CANCELLED, CANCELLED, outcome.attempts, elapsed_ms)
            raise
        if member_span is not None:
            member_span.end(outcome.status, outcome.error_type, outcome.attempts, outcome.latency_ms)
        return outcome

    async def _request_with_retries(self, extension: ExtensionSpec, data: bytes, parent: str, parent_is_header: bool,
                                    outcome: MemberOutcome) -> bytes:
        # ``parent`` is the member span's traceparent, or else the trace id to send a new span id in.
        timeout_s = extension.timeout_ms / 1000.0
        while True:
            outcome.attempts += 1
            headers = {"traceparent": parent if parent_is_header else traceparent(parent)}
            try:
                return await self._transport.request(extension.subject, data, headers, timeout_s)
            except ExtensionCallError as error:
                if not error.retryable or outcome.attempts > extension.retry:
                    raise
            await asyncio.sleep(self._retry_backoff_s)


def _usable_extension(stage: str, step: StepSpec, extension: ExtensionSpec | None) -> ExtensionSpec:
    if extension is None:
        raise UnknownExtension(f"Extension {step.id!r} is not in the registry.")
    if not extension.enabled:
        raise ExtensionDisabled(f"Extension {step.id!r} is disabled.")
    if extension.type != EXTENSION_TYPE_BY_STAGE[stage]:
        raise ExtensionTypeMismatch(
            f"Extension {step.id!r} has type {extension.type!r}, which does not belong in stage {stage!r}."
        )
    return extension


def _request_body(step: StepSpec, call_input: CallInput) -> bytes:
    shared = call_input.encoded()
    if step.config is None:
        return shared
    # The shared body is a JSON object, so it ends in "}"; the step's config goes in before it.
    return shared[:-1] + b',"config":' + codec.encode(step.config) + b"}"


def _apply_reply_contract(stage: str, data: bytes, outcome: MemberOutcome) -> MemberOutcome:
    reply = _decode_reply(data)
    if stage == VALIDATORS:
        return _validator_outcome(reply, outcome)

    metadata = reply.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise BadReply(f"The reply's metadata must be a JSON object, got {type(metadata).__name__}.")
    outcome.reply = reply
    return outcome.finish(OK)


def _decode_reply(data: bytes) -> dict[str, Any]:
    try:
        reply = codec.decode(data)
    except ValueError as error:
        raise BadReply(f"The reply is not valid JSON: {error}.") from error
    if not isinstance(reply, dict):
        raise BadReply(f"The reply must be a JSON object, got {type(reply).__name__}.")

    reply_error = reply.get("error")
    if reply_error is None:
        return reply
    if not isinstance(reply_error, Mapping):
        raise BadReply(f"The reply's error must be a JSON object, got {type(reply_error).__name__}.")
    raise ExtensionReplyError(_optional_text(reply_error.get("code")), _optional_text(reply_error.get("message")))


def _validator_outcome(reply: dict[str, Any], outcome: MemberOutcome) -> MemberOutcome:
    status = reply.get("status")
    reason = reply.get("reason")
    if status not in (None, "ok", "reject"):
        raise BadReply(f"A validator's status must be 'ok' or 'reject', got {status!r}.")
    if reason is not None and not isinstance(reason, str):
        raise BadReply(f"A validator's reason must be a string, got {type(reason).__name__}.")

    if status == "reject":
        outcome.reject_reason = reason
        outcome.reject_details = reply.get("details")
        return outcome.finish(REJECTED)
    return outcome.finish(OK)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)
