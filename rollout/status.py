"""Reading the flags in force: database overrides over environment over defaults."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.revision import current_revision
from rollout.flags import FLAGS_BY_NAME, FlagState, flag_states, stored_value
from rollout.models import FlagOverride, PolicyOverride, TenantOverride


def database_flag_values() -> dict[str, Any]:
    """Return the database override of every flag that has one."""
    return {
        override.name: stored_value(FLAGS_BY_NAME[override.name], override.value)
        for override in FlagOverride.objects.all()
        if override.name in FLAGS_BY_NAME
    }


def current_flag_states(environ: Mapping[str, str] | None = None) -> list[FlagState]:
    """Return every flag's state from the database and ``environ`` (``os.environ`` by default)."""
    return flag_states(database_flag_values(), environ)


def tenant_overrides() -> dict[str, bool]:
    return dict(TenantOverride.objects.values_list("tenant_id", "enabled"))


def policy_overrides() -> dict[str, bool]:
    return dict(PolicyOverride.objects.values_list("policy_id", "enabled"))


def effective_values(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return every flag's effective value by name, plus ``tenant_overrides`` and ``policy_overrides``.

    Raises ``InvalidFlagEnvironment`` when an environment variable is invalid.
    """
    values: dict[str, Any] = {state.definition.name: state.value for state in current_flag_states(environ)}
    values["tenant_overrides"] = tenant_overrides()
    values["policy_overrides"] = policy_overrides()
    return values


def status_document(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the parallel-execution status as ``GET /api/v1/parallel-execution`` shows it.

    The revision is read first, as the executor's snapshot loader does, so a change that
    commits while the rest is read leaves the document stamped with the older revision.
    """
    revision = current_revision()
    states = current_flag_states(environ)
    return {
        "enabled": next(state.value for state in states if state.definition.name == "parallel_execution_enabled"),
        "flags": {state.definition.name: state.as_dict() for state in states},
        "tenant_overrides": [
            {"tenant_id": override.tenant_id, "enabled": override.enabled, "updated_at": override.updated_at}
            for override in TenantOverride.objects.all()
        ],
        "policy_overrides": [
            {"policy_id": override.policy_id, "enabled": override.enabled, "updated_at": override.updated_at}
            for override in PolicyOverride.objects.all()
        ],
        "revision": revision,
    }
