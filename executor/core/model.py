"""The executor's in-memory view of the registry: extensions, policies and flags.

An adapter outside this package builds a ``Snapshot`` from the database. Everything here
is immutable so one snapshot can be shared by every running pipeline.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.core.flags import ParallelFlags

STAGES = ("pre", "validators", "post")
"""Stage keys of a policy, in the order a full pipeline runs them."""

EXTENSION_TYPE_BY_STAGE = {"pre": "pre", "validators": "validator", "post": "post"}
"""The extension type each stage accepts."""


@dataclass(frozen=True)
class ExtensionSpec:
    """An extension as the executor calls it; ``side_effect_free`` is its active version's value."""

    id: str
    type: str
    subject: str
    timeout_ms: int
    retry: int
    side_effect_free: bool
    enabled: bool = True


@dataclass(frozen=True)
class StepSpec:
    """One step of a policy stage.

    ``mode`` (``required``/``optional``) applies to ``pre`` and ``post`` steps and ``on_fail``
    (``block``/``warn``/``ignore``) to validators; ``None`` is read as the fail-closed value,
    ``required`` or ``block``. ``depends_on`` is ``None`` when the step declares none, which
    differs from an empty tuple: only a step that declares it may run in a parallel group.
    """

    id: str
    mode: str | None = None
    on_fail: str | None = None
    depends_on: tuple[str, ...] | None = None
    config: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class PolicySpec:
    """A routing policy's pipeline stages, keyed ``pre``, ``validators`` and ``post``."""

    policy_id: str
    tenant_id: str
    stages: Mapping[str, tuple[StepSpec, ...]] = field(hash=False)


@dataclass(frozen=True)
class Snapshot:
    """Everything one pipeline run reads, at one ``revision`` of the registry and the flags."""

    revision: int
    extensions: Mapping[str, ExtensionSpec] = field(hash=False)
    policies: Mapping[str, PolicySpec] = field(hash=False)
    flags: ParallelFlags = field(default_factory=ParallelFlags)
