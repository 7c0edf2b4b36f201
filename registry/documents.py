"""The registry's JSON documents built from the models: registry entries, policies, tenants.

The API and the export both use these builders, so the router gets the
same shapes everywhere.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from registry.models import STAGES, Extension, ExtensionVersion, PolicyStep, RoutingPolicy, Tenant


def extensions_with_active_version() -> QuerySet[Extension]:
    """Return all extensions with their active version prefetched, in two queries."""
    active = ExtensionVersion.objects.filter(is_active=True)
    return Extension.objects.prefetch_related(Prefetch("versions", queryset=active, to_attr="active_versions"))


def registry_entries() -> QuerySet[Extension]:
    """Return the extensions that have a registry entry: those with an active version.

    An author's new extension has none until ops staff approve its first version.
    """
    active = ExtensionVersion.objects.filter(extension=OuterRef("pk"), is_active=True)
    return extensions_with_active_version().filter(Exists(active))


def policies_with_steps() -> QuerySet[RoutingPolicy]:
    """Return all policies with their tenant and steps, in two queries."""
    steps = PolicyStep.objects.order_by("stage", "position")
    return RoutingPolicy.objects.select_related("tenant").prefetch_related(Prefetch("steps", queryset=steps))


def extension_entry(extension: Extension) -> dict[str, Any]:
    """Return the registry entry of ``extension``, made from its active version.

    ``metadata`` always carries ``side_effect_free`` and ``description``, followed by any other
    metadata keys as they were given; ``version`` and ``config`` appear only when set.
    """
    active = extension.active_version
    entry: dict[str, Any] = {"id": extension.extension_id, "type": extension.type}
    if active is not None:
        entry.update(version_fields(active))
    entry["enabled"] = extension.enabled
    return _entry_in_contract_order(entry)


def version_fields(version: ExtensionVersion) -> dict[str, Any]:
    """Return the entry fields that a version carries: subject, limits, metadata, version, config."""
    fields: dict[str, Any] = {
        "subject": version.subject,
        "timeout_ms": version.timeout_ms,
        "retry": version.retry,
        "metadata": {
            "side_effect_free": version.side_effect_free,
            "description": version.description,
            **version.metadata_extra,
        },
    }
    if version.version:
        fields["version"] = version.version
    if version.config is not None:
        fields["config"] = version.config
    return fields


def version_document(version: ExtensionVersion) -> dict[str, Any]:
    """Return a version as the versions endpoint lists it."""
    document = version_fields(version)
    document["version"] = version.version
    document["is_active"] = version.is_active
    document["created_at"] = version.created_at.isoformat()
    document["review"] = {"status": version.review_status, "reason": version.review_reason}
    document["probe"] = {
        "status": version.probe_status,
        "detail": version.probe_detail,
        "probed_at": version.probed_at.isoformat() if version.probed_at else None,
    }
    return document


def policy_document(policy: RoutingPolicy) -> dict[str, Any]:
    """Return the policy document: ids, the stages it declared, then the router's keys by name."""
    document: dict[str, Any] = {"policy_id": policy.policy_id, "tenant_id": policy.tenant.tenant_id}
    steps_by_stage: dict[str, list[PolicyStep]] = {stage: [] for stage in STAGES}
    for step in sorted(policy.steps.all(), key=lambda step: step.position):
        steps_by_stage[step.stage].append(step)

    for stage in STAGES:
        if stage in policy.declared_stages:
            document[stage] = [step_document(step) for step in steps_by_stage[stage]]
    for key in sorted(policy.router_keys):
        document[key] = policy.router_keys[key]
    return document


def step_document(step: PolicyStep) -> dict[str, Any]:
    """Return a step as the policy document carries it; missing keys stay missing."""
    document: dict[str, Any] = {"id": step.extension_id}
    if step.stage == PolicyStep.Stage.VALIDATORS:
        document["on_fail"] = step.on_fail
    else:
        document["mode"] = step.mode
    if step.depends_on is not None:
        document["depends_on"] = step.depends_on
    if step.config is not None:
        document["config"] = step.config
    document.update(step.extra)
    return document


def tenant_document(tenant: Tenant) -> dict[str, Any]:
    """Return a tenant as the API and the export show it."""
    return {"tenant_id": tenant.tenant_id, "name": tenant.name, "description": tenant.description}


_ENTRY_KEY_ORDER = ("id", "type", "version", "subject", "timeout_ms", "retry", "enabled", "metadata", "config")


def _entry_in_contract_order(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in _ENTRY_KEY_ORDER if key in entry}
