"""Parallel-execution flags, read from the environment, and the decision they lead to.

Every flag is named as in the rollout plan and read from ``EXTENSION_PIPELINE_`` followed by
the flag name in capitals, for example ``EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED``.
Lists are comma-separated. The executor reads flags only through a ``FlagSource``, so a source
that also reads database overrides can replace ``EnvironmentFlagSource`` without other changes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

# The flag definitions and their strict parsing live in rollout.flags, which imports nothing
# from Django either, so the console's status page and the executor parse variables alike.
from rollout.flags import InvalidFlagEnvironment, environment_values

_STAGE_SWITCHES = {
    "pre": "parallel_pre_processors_enabled",
    "validators": "parallel_validators_enabled",
    "post": "parallel_post_processors_enabled",
}


class FlagConfigError(ValueError):
    """An environment variable contains a value its flag cannot take."""


@dataclass(frozen=True)
class ParallelFlags:
    """The parallel-execution flags, with the rollout plan's names and defaults.

    ``tenant_overrides`` and ``policy_overrides`` map an id to an explicit on or off, which
    beats the allowlists.
    """

    parallel_execution_enabled: bool = False
    parallel_pre_processors_enabled: bool = False
    parallel_validators_enabled: bool = False
    parallel_post_processors_enabled: bool = False
    parallel_execution_tenant_allowlist: tuple[str, ...] = ()
    parallel_execution_policy_allowlist: tuple[str, ...] = ()
    parallel_execution_max_group_size: int = 5
    parallel_execution_timeout_multiplier: float = 1.5
    tenant_overrides: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    policy_overrides: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True)
class ParallelDecision:
    """Whether a stage may run parallel groups for one tenant and policy, and why."""

    allowed: bool
    reason: str


class FlagSource(Protocol):
    """The source of the flags in force right now."""

    def current(self) -> ParallelFlags:
        """Return the flags in force now."""
        ...


class EnvironmentFlagSource:
    """Flags from environment variables, parsed again on every ``current()`` call."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def current(self) -> ParallelFlags:
        """Return the flags the environment sets now; raises ``FlagConfigError`` on a bad value."""
        return flags_from_environ(os.environ if self._environ is None else self._environ)


def flags_from_environ(environ: Mapping[str, str]) -> ParallelFlags:
    """Parse the flags from ``environ``; unset variables keep their defaults.

    Raises ``FlagConfigError`` naming the variable and the accepted values when one is invalid.
    """
    try:
        values = environment_values(environ)
    except InvalidFlagEnvironment as error:
        raise FlagConfigError(str(error)) from error
    return ParallelFlags(**values)


def parallel_decision(flags: ParallelFlags, tenant_id: str | None, policy_id: str | None,
                      stage: str) -> ParallelDecision:
    """Decide whether ``stage`` of ``policy_id`` may run parallel groups for ``tenant_id``.

    The master switch and the stage's switch must be on. A per-tenant override, on or off,
    beats the tenant allowlist. An empty allowlist admits every tenant, and a missing tenant id
    never matches a non-empty one. Policies follow the same rules. Raises ``ValueError`` for an
    unknown stage.
    """
    if stage not in _STAGE_SWITCHES:
        raise ValueError(f"Unknown stage {stage!r}; expected one of {', '.join(_STAGE_SWITCHES)}.")

    if not flags.parallel_execution_enabled:
        return ParallelDecision(False, "master switch off")
    if not getattr(flags, _STAGE_SWITCHES[stage]):
        return ParallelDecision(False, "stage switch off")

    tenant_denial = _allowlist_denial(
        "tenant", tenant_id, flags.tenant_overrides, flags.parallel_execution_tenant_allowlist
    )
    if tenant_denial:
        return ParallelDecision(False, tenant_denial)

    policy_denial = _allowlist_denial(
        "policy", policy_id, flags.policy_overrides, flags.parallel_execution_policy_allowlist
    )
    if policy_denial:
        return ParallelDecision(False, policy_denial)
    return ParallelDecision(True, "parallel execution on")


def _allowlist_denial(kind: str, item_id: str | None, overrides: Mapping[str, bool],
                       allowlist: tuple[str, ...]) -> str | None:
    if item_id and item_id in overrides:
        return None if overrides[item_id] else f"{kind} disabled by override"
    if not allowlist:
        return None
    if not item_id:
        return f"{kind} id missing"
    if item_id not in allowlist:
        return f"{kind} not in allowlist"
    return None
