"""Import and export of the registry as one JSON document.

The format is ``{"tenants": [...], "extensions": [...], "policies": [...]}``: tenants as
``{tenant_id, name, description}``, extensions as registry entries and policies as policy
documents, exactly as the API shows them. Every key is optional on import. An import validates
the whole file before it writes anything, then upserts in one transaction, so a file with any
error changes nothing. Exporting what was imported returns the same documents.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from registry import services
from registry.documents import (
    extension_entry,
    registry_entries,
    policies_with_steps,
    policy_document,
    tenant_document,
)
from registry.models import EXTENSION_TYPES, Extension, RoutingPolicy, Tenant
from registry.validation import (
    Catalog,
    ExtensionFacts,
    FieldError,
    InvalidDocument,
    referenced_extension_ids,
    validate_extension_entry,
    validate_policy,
    validate_tenant,
)

SECTIONS = ("tenants", "extensions", "policies")
SECTION_ID_KEY = {"tenants": "tenant_id", "extensions": "id", "policies": "policy_id"}


@dataclass
class ImportSummary:
    """How many documents of each section an import created, updated or found unchanged."""

    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        parts = []
        for section in SECTIONS:
            counts = (self.created[section], self.updated[section], self.unchanged[section])
            if any(counts):
                parts.append(f"{section}: {counts[0]} created, {counts[1]} updated, {counts[2]} unchanged")
        return "; ".join(parts) or "nothing to import"


def export_registry() -> dict[str, Any]:
    """Return every tenant, extension and policy, each section sorted by id."""
    return {
        "tenants": [tenant_document(tenant) for tenant in Tenant.objects.order_by("tenant_id")],
        "extensions": [extension_entry(extension) for extension in registry_entries().order_by("extension_id")],
        "policies": export_policies()["policies"],
    }


def export_policies() -> dict[str, Any]:
    """Return every policy, sorted by ``policy_id``."""
    return {"policies": [policy_document(policy) for policy in policies_with_steps().order_by("policy_id")]}


def import_registry(
    document: Any, *, sections: tuple[str, ...] = SECTIONS, user: AbstractBaseUser | None = None
) -> ImportSummary:
    """Validate the whole file, then create or replace every document in it in one transaction.

    ``sections`` limits which top-level keys the file may have. Raises ``InvalidDocument`` with
    every error, paths included (``policies[0].pre[2].depends_on``), and then saves nothing.
    """
    _raise_if_invalid(validate_registry_file(document, sections=sections))

    summary = ImportSummary()
    errors: list[FieldError] = []
    with transaction.atomic():
        # Tenants and extensions first, because policies refer to them.
        for section in SECTIONS:
            for index, item in enumerate(document.get(section, [])):
                errors += _apply(section, index, item, summary, user)
        if errors:
            transaction.set_rollback(True)
    _raise_if_invalid(errors)
    return summary


def validate_registry_file(document: Any, *, sections: tuple[str, ...] = SECTIONS) -> list[FieldError]:
    """Return every error in a registry file, each with its path in the file."""
    if not isinstance(document, dict):
        return [FieldError("invalid_type", "The file must contain a JSON object.", "", "")]

    errors = _section_shape_errors(document, sections)
    if errors:
        return errors

    errors += _document_errors(document, "tenants", validate_tenant)
    errors += _document_errors(document, "extensions", validate_extension_entry)
    catalog = _catalog_for(document)
    errors += _document_errors(document, "policies", lambda policy: validate_policy(policy, catalog))
    for section in sections:
        errors += _duplicate_id_errors(document, section)
    return errors


def _section_shape_errors(document: dict[str, Any], sections: tuple[str, ...]) -> list[FieldError]:
    errors = []
    expected = ", ".join(sections)
    for key, value in document.items():
        if key not in sections:
            message = f"{key!r} is not a section this import takes; expected only: {expected}."
            errors.append(FieldError("unknown_field", message, key, key))
        elif not isinstance(value, list):
            errors.append(FieldError("invalid_type", f"{key} must be a list.", key, key))
    return errors


def _document_errors(document: dict[str, Any], section: str, validate: Any) -> list[FieldError]:
    errors = []
    for index, item in enumerate(document.get(section, [])):
        errors += [error.under(f"{section}[{index}]") for error in validate(item)]
    return errors


def _duplicate_id_errors(document: dict[str, Any], section: str) -> list[FieldError]:
    id_key = SECTION_ID_KEY[section]
    seen: set[Any] = set()
    errors = []
    for index, item in enumerate(document.get(section, [])):
        item_id = item.get(id_key) if isinstance(item, dict) else None
        if not isinstance(item_id, str):
            continue
        if item_id in seen:
            message = f"{id_key} {item_id!r} appears more than once in {section}; each may appear once."
            errors.append(FieldError("duplicate_id", message, f"{section}[{index}].{id_key}", id_key))
        seen.add(item_id)
    return errors


def _catalog_for(document: dict[str, Any]) -> Catalog:
    """Return what the file's policies may refer to: the database, overlaid with the file itself."""
    policies = document.get("policies", [])
    catalog = Catalog.for_policies(policies)
    for tenant in document.get("tenants", []):
        if isinstance(tenant, dict) and isinstance(tenant.get("tenant_id"), str):
            catalog.tenant_ids.add(tenant["tenant_id"])

    referenced = {step_id for policy in policies for step_id in referenced_extension_ids(policy)}
    for entry in document.get("extensions", []):
        if isinstance(entry, dict) and entry.get("id") in referenced and entry.get("type") in EXTENSION_TYPES:
            enabled = entry.get("enabled", True)
            catalog.extensions[entry["id"]] = ExtensionFacts(type=entry["type"], enabled=enabled is True)
    return catalog


def _apply(
    section: str, index: int, item: dict[str, Any], summary: ImportSummary, user: AbstractBaseUser | None
) -> list[FieldError]:
    """Save one document unless it equals what is stored; return its errors, placed in the file."""
    try:
        outcome = _save(section, item, user)
    except InvalidDocument as error:
        return [problem.under(f"{section}[{index}]") for problem in error.errors]
    except services.RegistryConflict as error:
        return [FieldError(error.code, error.message, f"{section}[{index}]", "")]

    getattr(summary, outcome)[section] += 1
    return []


def _save(section: str, item: dict[str, Any], user: AbstractBaseUser | None) -> str:
    if section == "tenants":
        existing_tenant = Tenant.objects.filter(tenant_id=item["tenant_id"]).first()
        if existing_tenant is not None and tenant_document(existing_tenant) == {"description": "", **item}:
            return "unchanged"
        _, created = services.save_tenant(item)
    elif section == "extensions":
        existing_extension = Extension.objects.filter(extension_id=item["id"]).first()
        if existing_extension is not None and extension_entry(existing_extension) == item:
            return "unchanged"
        _, created = services.save_extension(item, user=user)
    else:
        existing_policy = RoutingPolicy.objects.filter(policy_id=item["policy_id"]).first()
        if existing_policy is not None and policy_document(existing_policy) == item:
            return "unchanged"
        _, created = services.save_policy(item)
    return "created" if created else "updated"


def _raise_if_invalid(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidDocument("invalid_import", "The import file is invalid; nothing was saved.", errors)
