"""The admin actions that run the determinism probe, added to the registry's admin.

The registry cannot import the executor, which depends on it, so the executor app adds these
actions to the registry's ModelAdmins when it is ready. The probe runs within the request,
over one NATS connection, with the sample messages from ``bench/messages``.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from executor.probe import ProbeError, probe_and_record
from registry.models import Extension, ExtensionVersion


@admin.action(description="Run the determinism probe on the active version", permissions=["probe"])
def probe_active_versions(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Extension]) -> None:
    versions = [extension.active_version for extension in queryset]
    _probe(model_admin, request, [version for version in versions if version is not None])


@admin.action(description="Run the determinism probe", permissions=["probe"])
def probe_selected_versions(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ExtensionVersion]
) -> None:
    _probe(model_admin, request, list(queryset.select_related("extension")))


def _probe(model_admin: admin.ModelAdmin, request: HttpRequest, versions: list[ExtensionVersion]) -> None:
    try:
        results = probe_and_record(versions)
    except ProbeError as error:
        model_admin.message_user(request, f"The probe did not run: {error}", messages.ERROR)
        return

    for version, result in results:
        model_admin.log_change(request, version, f"Determinism probe {result.status}: {result.detail}")
        level = messages.SUCCESS if result.passed else messages.WARNING
        model_admin.message_user(request, f"{version}: probe {result.status}. {result.detail}", level)


def register_probe_actions(site: admin.AdminSite = admin.site) -> None:
    """Add the probe actions to the Extension and ExtensionVersion admins, once."""
    for model, action in ((Extension, probe_active_versions), (ExtensionVersion, probe_selected_versions)):
        model_admin = site.get_model_admin(model)
        if action not in model_admin.actions:
            model_admin.actions = [*model_admin.actions, action]
