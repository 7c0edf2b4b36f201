"""Validation of a pipeline request against the ``beamline.executor.v1.execute`` contract.

A request is ``{tenant_id, policy_id, payload, metadata?, trace_id?, stages?}``. Unknown keys
are ignored so the router can add fields without breaking older executors.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executor.core.errors import InvalidRequest, PolicyNotFound
from executor.core.model import STAGES, PolicySpec, Snapshot

DEFAULT_STAGES = ("pre", "validators")

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ZERO_TRACE_ID = "0" * 32


@dataclass(frozen=True)
class PipelineRequest:
    """A validated request; ``metadata`` already carries ``policy_id``."""

    tenant_id: str
    policy_id: str
    payload: Any
    metadata: dict[str, Any]
    trace_id: str
    stages: tuple[str, ...]


def parse_request(request: Any) -> PipelineRequest:
    """Validate ``request`` and return it as a ``PipelineRequest``.

    Raises ``InvalidRequest`` with the path of the first invalid field. A missing ``trace_id``
    gets a new random one. A given one must be 32 lower-case hex digits, not all zeros,
    because it becomes the trace id of the W3C ``traceparent`` header.
    """
    if not isinstance(request, Mapping):
        raise InvalidRequest("$", "the request must be a JSON object.")

    tenant_id = _required_id(request, "tenant_id")
    policy_id = _required_id(request, "policy_id")
    if "payload" not in request or request["payload"] is None:
        raise InvalidRequest("payload", "missing; send the message to process as payload.")

    metadata = dict(_optional_object(request, "metadata"))
    metadata["policy_id"] = policy_id

    return PipelineRequest(
        tenant_id=tenant_id,
        policy_id=policy_id,
        payload=request["payload"],
        metadata=metadata,
        trace_id=_trace_id(request.get("trace_id")),
        stages=_stages(request.get("stages")),
    )


def find_policy(snapshot: Snapshot, request: PipelineRequest) -> PolicySpec:
    """Return the request's policy; raises ``PolicyNotFound`` when it is unknown or another tenant's."""
    policy = snapshot.policies.get(request.policy_id)
    if policy is None or policy.tenant_id != request.tenant_id:
        raise PolicyNotFound(
            f"Policy {request.policy_id!r} was not found for tenant {request.tenant_id!r}."
        )
    return policy


def new_trace_id() -> str:
    """Return a random W3C trace id: 32 lower-case hex digits."""
    return secrets.token_hex(16)


def _required_id(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        raise InvalidRequest(key, "missing; it is required.")
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(key, f"must be a non-empty string, got {value!r}.")
    return value


def _optional_object(request: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if key not in request:
        return {}
    value = request[key]
    if not isinstance(value, Mapping):
        raise InvalidRequest(key, f"must be a JSON object, got {type(value).__name__}.")
    return value


def _trace_id(value: Any) -> str:
    if value is None:
        return new_trace_id()
    if not isinstance(value, str) or not _TRACE_ID.fullmatch(value) or value == _ZERO_TRACE_ID:
        raise InvalidRequest("trace_id", f"must be 32 lower-case hex digits, not all zeros, got {value!r}.")
    return value


def _stages(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_STAGES
    if not isinstance(value, list) or not value:
        raise InvalidRequest("stages", f"must be a non-empty list of {', '.join(STAGES)}, got {value!r}.")

    for index, stage in enumerate(value):
        if stage not in STAGES:
            raise InvalidRequest(f"stages[{index}]", f"unknown stage {stage!r}; use {', '.join(STAGES)}.")
        if stage in value[:index]:
            raise InvalidRequest(f"stages[{index}]", f"stage {stage!r} is listed twice.")
    return tuple(value)
