"""Validation of registry documents: extension entries, version fields and routing policies.

The API, the admin and the import all call these functions, so a document is accepted or
rejected the same way wherever it comes from. Each function returns every error it finds
rather than stopping at the first, and each error names its path, field and a stable code.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from registry.dependencies import StepDependencies, find_dependency_errors
from registry.models import (
    EXTENSION_ID_PATTERN,
    EXTENSION_TYPES,
    MODES,
    ON_FAIL_CHOICES,
    STAGE_EXTENSION_TYPE,
    STAGES,
    TENANT_ID_PATTERN,
    Extension,
    Tenant,
)

TIMEOUT_MS_RANGE = (10, 5000)
RETRY_RANGE = (0, 3)

SUBJECT_PREFIXES = {
    "pre": "beamline.ext.pre.",
    "validator": "beamline.ext.validate.",
    "post": "beamline.ext.post.",
    "provider": "beamline.provider.",
}
SUBJECT_TAIL_PATTERN = r"[a-z][a-z0-9_]*\.v[0-9]+"
VERSION_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
POLICY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

VERSION_KEYS = ("subject", "timeout_ms", "retry", "metadata", "version", "config")
ENTRY_KEYS = ("id", "type", "enabled") + VERSION_KEYS
ENTRY_REQUIRED_KEYS = ("id", "type", "subject", "timeout_ms", "retry")
POLICY_IDENTITY_KEYS = ("policy_id", "tenant_id")
STEP_CHOICE_FIELD = {"pre": ("mode", MODES), "validators": ("on_fail", ON_FAIL_CHOICES), "post": ("mode", MODES)}


@dataclass(frozen=True)
class FieldError:
    """One problem in a document: its location (``path``, ``field``, for policies ``stage`` and
    ``step``), a stable ``code`` and a message that states what was expected."""

    code: str
    message: str
    path: str
    field: str
    stage: str | None = None
    index: int | None = None
    step: str | None = None
    step_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the error in the API's ``details`` shape."""
        body: dict[str, Any] = {"path": self.path}
        if self.stage is not None:
            body["stage"] = self.stage
        if self.step is not None:
            body["step"] = self.step
        body["field"] = self.field
        body["code"] = self.code
        body["message"] = self.message
        if self.step_ids:
            body["step_ids"] = list(self.step_ids)
        return body

    def under(self, prefix: str) -> FieldError:
        """Return this error with its path placed under ``prefix``, for a document inside a file."""
        path = f"{prefix}.{self.path}" if self.path else prefix
        return replace(self, path=path)


class InvalidDocument(Exception):
    """A document failed validation; ``errors`` lists every problem found."""

    def __init__(self, code: str, summary: str, errors: list[FieldError]) -> None:
        self.code = code
        self.summary = summary
        self.errors = errors
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.errors:
            return self.summary
        first = self.errors[0]
        more = f" ({len(self.errors) - 1} more in details)" if len(self.errors) > 1 else ""
        location = f"{first.path}: " if first.path else ""
        return f"{self.summary} {location}{first.message}{more}"


@dataclass(frozen=True)
class ExtensionFacts:
    """The facts about an extension that policy validation checks."""

    type: str
    enabled: bool


@dataclass
class Catalog:
    """The extensions and tenants a policy may refer to."""

    extensions: dict[str, ExtensionFacts] = field(default_factory=dict)
    tenant_ids: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, extension_ids: Iterable[str], tenant_ids: Iterable[str]) -> Catalog:
        """Read the named extensions and tenants from the database, in two queries."""
        extensions = {
            extension_id: ExtensionFacts(type=extension_type, enabled=enabled)
            for extension_id, extension_type, enabled in Extension.objects.filter(
                extension_id__in=set(extension_ids)
            ).values_list("extension_id", "type", "enabled")
        }
        known_tenants = set(Tenant.objects.filter(tenant_id__in=set(tenant_ids)).values_list("tenant_id", flat=True))
        return cls(extensions=extensions, tenant_ids=known_tenants)

    @classmethod
    def for_policies(cls, documents: Iterable[Any]) -> Catalog:
        """Load what the given policy documents refer to."""
        documents = list(documents)
        extension_ids = [step_id for document in documents for step_id in referenced_extension_ids(document)]
        tenant_ids = [
            document["tenant_id"]
            for document in documents
            if isinstance(document, dict) and isinstance(document.get("tenant_id"), str)
        ]
        return cls.load(extension_ids, tenant_ids)


def referenced_extension_ids(document: Any) -> list[str]:
    """Return the step ids of every stage of a policy document, skipping malformed steps."""
    if not isinstance(document, dict):
        return []
    step_ids = []
    for stage in STAGES:
        steps = document.get(stage)
        if not isinstance(steps, list):
            continue
        step_ids += [step["id"] for step in steps if isinstance(step, dict) and isinstance(step.get("id"), str)]
    return step_ids


# Extension entries


def validate_extension_entry(entry: Any) -> list[FieldError]:
    """Validate a whole registry entry: ``id``, ``type``, ``enabled`` and the version fields."""
    if not isinstance(entry, dict):
        return [_root_not_an_object("extension entry")]

    errors = _unknown_key_errors(entry, ENTRY_KEYS)
    errors += _missing_key_errors(entry, ENTRY_REQUIRED_KEYS)
    if "id" in entry:
        errors += _extension_id_errors(entry["id"])
    if "type" in entry:
        errors += _extension_type_errors(entry["type"])
    if "enabled" in entry and not isinstance(entry["enabled"], bool):
        errors.append(_error("invalid_type", "enabled", f"enabled must be true or false, not {entry['enabled']!r}."))

    extension_type = entry.get("type") if entry.get("type") in EXTENSION_TYPES else None
    errors += _version_field_errors(entry, extension_type)
    return errors


def validate_version_fields(data: Any, extension_type: str) -> list[FieldError]:
    """Validate the fields of a new version of an extension of type ``extension_type``."""
    if not isinstance(data, dict):
        return [_root_not_an_object("version")]

    errors = _unknown_key_errors(data, VERSION_KEYS)
    errors += _missing_key_errors(data, ("subject", "timeout_ms", "retry"))
    errors += _version_field_errors(data, extension_type)
    return errors


def _version_field_errors(data: Mapping[str, Any], extension_type: str | None) -> list[FieldError]:
    errors = []
    if "subject" in data:
        errors += _subject_errors(data["subject"], extension_type)
    if "timeout_ms" in data:
        errors += _integer_range_errors("timeout_ms", data["timeout_ms"], TIMEOUT_MS_RANGE, "milliseconds")
    if "retry" in data:
        errors += _integer_range_errors("retry", data["retry"], RETRY_RANGE, "retries")
    if "metadata" in data:
        errors += _metadata_errors(data["metadata"])
    if data.get("version") is not None:
        errors += _version_label_errors(data["version"])
    if data.get("config") is not None and not isinstance(data["config"], dict):
        errors.append(_error("invalid_type", "config", "config must be a JSON object, or null for none."))
    return errors


def _extension_id_errors(value: Any) -> list[FieldError]:
    if isinstance(value, str) and len(value) <= 100 and re.fullmatch(EXTENSION_ID_PATTERN, value):
        return []
    return [
        _error(
            "invalid_format",
            "id",
            f"id {value!r} is invalid; expected lower-case letters, digits and underscores, starting "
            "with a letter, at most 100 characters, for example normalize_text.",
        )
    ]


def _extension_type_errors(value: Any) -> list[FieldError]:
    if value in EXTENSION_TYPES:
        return []
    expected = ", ".join(EXTENSION_TYPES)
    return [_error("invalid_choice", "type", f"type {value!r} is not allowed; expected one of: {expected}.")]


def _subject_errors(value: Any, extension_type: str | None) -> list[FieldError]:
    if not isinstance(value, str):
        return [_error("invalid_type", "subject", f"subject must be a string, not {value!r}.")]
    if extension_type is None:
        return []

    prefix = SUBJECT_PREFIXES[extension_type]
    if re.fullmatch(re.escape(prefix) + SUBJECT_TAIL_PATTERN, value):
        return []
    return [
        _error(
            "invalid_subject",
            "subject",
            f"subject {value!r} does not fit a {extension_type!r} extension; expected "
            f"{prefix}<name>.v<N>, where <name> is lower-case letters, digits and underscores.",
        )
    ]


def _integer_range_errors(name: str, value: Any, bounds: tuple[int, int], unit: str) -> list[FieldError]:
    low, high = bounds
    # bool is a subclass of int in Python, but true is not a valid timeout in JSON terms.
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return []
    return [
        _error(
            "out_of_range" if isinstance(value, int) and not isinstance(value, bool) else "invalid_type",
            name,
            f"{name} must be a whole number of {unit} from {low} to {high}, not {value!r}.",
        )
    ]


def _metadata_errors(value: Any) -> list[FieldError]:
    if not isinstance(value, dict):
        return [_error("invalid_type", "metadata", "metadata must be a JSON object.")]

    errors = []
    if "side_effect_free" in value and not isinstance(value["side_effect_free"], bool):
        errors.append(
            _error(
                "invalid_type",
                "side_effect_free",
                f"metadata.side_effect_free must be true or false, not {value['side_effect_free']!r}.",
                path="metadata.side_effect_free",
            )
        )
    if "description" in value and not isinstance(value["description"], str):
        errors.append(
            _error(
                "invalid_type",
                "description",
                "metadata.description must be a string.",
                path="metadata.description",
            )
        )
    return errors


def _version_label_errors(value: Any) -> list[FieldError]:
    if isinstance(value, str) and len(value) <= 50 and re.fullmatch(VERSION_LABEL_PATTERN, value):
        return []
    return [
        _error(
            "invalid_format",
            "version",
            f"version {value!r} is invalid; expected a label of letters, digits, '.', '_', '+' and "
            "'-', at most 50 characters, for example 1.2.0.",
        )
    ]


# Tenants


def validate_tenant(document: Any) -> list[FieldError]:
    """Validate a tenant document: ``tenant_id``, ``name`` and an optional ``description``."""
    if not isinstance(document, dict):
        return [_root_not_an_object("tenant")]

    errors = _unknown_key_errors(document, ("tenant_id", "name", "description"))
    errors += _missing_key_errors(document, ("tenant_id", "name"))
    tenant_id = document.get("tenant_id")
    if "tenant_id" in document and not (
        isinstance(tenant_id, str) and len(tenant_id) <= 100 and re.fullmatch(TENANT_ID_PATTERN, tenant_id)
    ):
        errors.append(
            _error(
                "invalid_format",
                "tenant_id",
                f"tenant_id {tenant_id!r} is invalid; expected lower-case letters, digits, '-' and '_', "
                "starting with a letter or digit, at most 100 characters, for example acme-prod.",
            )
        )
    for name in ("name", "description"):
        if name in document and not isinstance(document[name], str):
            errors.append(_error("invalid_type", name, f"{name} must be a string."))
    if isinstance(document.get("name"), str) and not document["name"].strip():
        errors.append(_error("blank", "name", "name must not be blank."))
    return errors


# Routing policies


def validate_policy(document: Any, catalog: Catalog | None = None) -> list[FieldError]:
    """Validate a whole policy document and return every error, in document order.

    ``catalog`` lists the extensions and tenants that exist; it is read from the database when not
    given. Keys other than ``policy_id``, ``tenant_id`` and the stages belong to the router and
    are not checked.
    """
    if not isinstance(document, dict):
        return [_root_not_an_object("policy")]
    if catalog is None:
        catalog = Catalog.for_policies([document])

    errors = _policy_identity_errors(document, catalog)
    for stage in STAGES:
        if stage in document:
            errors += validate_stage(stage, document[stage], catalog)
    return errors


def validate_stage(stage: str, steps: Any, catalog: Catalog) -> list[FieldError]:
    """Validate one stage's step list: each step, then the ``depends_on`` graph."""
    if not isinstance(steps, list):
        return [
            FieldError(
                code="invalid_type",
                message=f"Stage {stage} must be a list of steps, not {type(steps).__name__}.",
                path=stage,
                field=stage,
                stage=stage,
            )
        ]

    errors = []
    for index, step in enumerate(steps):
        errors += _step_errors(stage, index, step, catalog)
    errors += _dependency_errors(stage, steps)
    errors.sort(key=lambda error: -1 if error.index is None else error.index)
    return errors


def _policy_identity_errors(document: Mapping[str, Any], catalog: Catalog) -> list[FieldError]:
    errors = validate_policy_id(document.get("policy_id"))
    tenant_id = document.get("tenant_id")
    if not _is_filled_string(tenant_id):
        errors.append(_missing_or_blank("tenant_id", tenant_id, "the id of an existing tenant"))
    elif tenant_id not in catalog.tenant_ids:
        errors.append(
            _error(
                "unknown_tenant",
                "tenant_id",
                f"Tenant {tenant_id!r} does not exist; create the tenant first or use an existing tenant_id.",
            )
        )
    return errors


def validate_policy_id(policy_id: Any) -> list[FieldError]:
    """Check that ``policy_id`` is a non-blank id made of URL-safe characters."""
    if not _is_filled_string(policy_id):
        return [_missing_or_blank("policy_id", policy_id, "a policy id such as acme-default")]
    if len(policy_id) > 200 or not re.fullmatch(POLICY_ID_PATTERN, policy_id):
        message = (
            f"policy_id {policy_id!r} is invalid; expected letters, digits, '_', '-', '.' and ':', "
            "starting with a letter or digit, at most 200 characters."
        )
        return [_error("invalid_format", "policy_id", message)]
    return []


def _step_errors(stage: str, index: int, step: Any, catalog: Catalog) -> list[FieldError]:
    where = f"{stage}[{index}]"
    if not isinstance(step, dict):
        return [
            FieldError(
                code="invalid_type",
                message=f"{where} must be a JSON object with an id, not {type(step).__name__}.",
                path=where,
                field="",
                stage=stage,
                index=index,
            )
        ]

    step_id = step.get("id")
    if not _is_filled_string(step_id):
        errors = [_step_error(stage, index, None, "id", "missing_field", f"{where} has no id; expected an extension id.")]
    else:
        where = f"{where} ({step_id})"
        errors = _step_extension_errors(stage, index, step_id, catalog)

    step_name = step_id if _is_filled_string(step_id) else None
    errors += _step_choice_errors(stage, index, step_name, step, where)
    errors += _step_json_errors(stage, index, step_name, step, where)
    return errors


def _step_extension_errors(stage: str, index: int, step_id: str, catalog: Catalog) -> list[FieldError]:
    where = f"{stage}[{index}] ({step_id})"
    facts = catalog.extensions.get(step_id)
    if facts is None:
        message = f"{where}: extension {step_id!r} is not in the registry; register it first or fix the id."
        return [_step_error(stage, index, step_id, "id", "unknown_extension", message)]

    errors = []
    if not facts.enabled:
        message = f"{where}: extension {step_id!r} is disabled; enable it or remove the step."
        errors.append(_step_error(stage, index, step_id, "id", "extension_disabled", message))
    expected_type = STAGE_EXTENSION_TYPE[stage]
    if facts.type != expected_type:
        message = (
            f"{where}: extension {step_id!r} has type {facts.type!r}, but the {stage} stage takes "
            f"extensions of type {expected_type!r}."
        )
        errors.append(_step_error(stage, index, step_id, "id", "wrong_extension_type", message))
    return errors


def _step_choice_errors(
    stage: str, index: int, step_id: str | None, step: Mapping[str, Any], where: str
) -> list[FieldError]:
    name, choices = STEP_CHOICE_FIELD[stage]
    expected = " or ".join(repr(choice) for choice in choices)
    if name not in step:
        message = f"{where}: {name} is missing; expected {expected}."
        return [_step_error(stage, index, step_id, name, "missing_field", message)]
    if step[name] not in choices:
        message = f"{where}: {name} {step[name]!r} is not allowed; expected {expected}."
        return [_step_error(stage, index, step_id, name, "invalid_choice", message)]
    return []


def _step_json_errors(
    stage: str, index: int, step_id: str | None, step: Mapping[str, Any], where: str
) -> list[FieldError]:
    errors = []
    if "depends_on" in step and not _is_string_list(step["depends_on"]):
        message = (
            f"{where}: depends_on must be a list of step ids of the {stage} stage, for example "
            '["normalize_text"]; leave the key out to declare nothing.'
        )
        errors.append(_step_error(stage, index, step_id, "depends_on", "invalid_type", message))
    if "config" in step and not isinstance(step["config"], dict):
        message = f"{where}: config must be a JSON object; leave the key out for no config."
        errors.append(_step_error(stage, index, step_id, "config", "invalid_type", message))
    return errors


def _dependency_errors(stage: str, steps: list[Any]) -> list[FieldError]:
    graph_steps = []
    indexes: dict[str, list[int]] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not _is_filled_string(step.get("id")):
            continue
        depends_on = step.get("depends_on")
        declared = tuple(depends_on) if _is_string_list(depends_on) else None
        graph_steps.append(StepDependencies(step_id=step["id"], depends_on=declared))
        indexes.setdefault(step["id"], []).append(index)

    errors = []
    for problem in find_dependency_errors(graph_steps):
        positions = indexes[problem.step_id]
        # A duplicate is reported at its first repeat, every other problem at the step itself.
        index = positions[1] if problem.code == "duplicate_step" else positions[0]
        field_name = "id" if problem.code == "duplicate_step" else "depends_on"
        errors.append(
            FieldError(
                code=problem.code,
                message=f"{stage} stage: {problem.message}",
                path=f"{stage}[{index}].{field_name}",
                field=field_name,
                stage=stage,
                index=index,
                step=problem.step_id,
                step_ids=problem.step_ids,
            )
        )
    return errors


# Helpers


def _error(code: str, field_name: str, message: str, *, path: str | None = None) -> FieldError:
    return FieldError(code=code, message=message, path=path or field_name, field=field_name)


def _step_error(stage: str, index: int, step_id: str | None, field_name: str, code: str, message: str) -> FieldError:
    return FieldError(
        code=code,
        message=message,
        path=f"{stage}[{index}].{field_name}",
        field=field_name,
        stage=stage,
        index=index,
        step=step_id,
        step_ids=(step_id,) if step_id else (),
    )


def _root_not_an_object(what: str) -> FieldError:
    return FieldError(code="invalid_type", message=f"The {what} must be a JSON object.", path="", field="")


def _unknown_key_errors(document: Mapping[str, Any], allowed: tuple[str, ...]) -> list[FieldError]:
    expected = ", ".join(allowed)
    return [
        _error("unknown_field", str(key), f"{key!r} is not a known field; expected only: {expected}.")
        for key in document
        if key not in allowed
    ]


def _missing_key_errors(document: Mapping[str, Any], required: tuple[str, ...]) -> list[FieldError]:
    return [_error("missing_field", key, f"{key} is required.") for key in required if key not in document]


def _missing_or_blank(name: str, value: Any, expected: str) -> FieldError:
    if value is None:
        return _error("missing_field", name, f"{name} is missing; expected {expected}.")
    if not isinstance(value, str):
        return _error("invalid_type", name, f"{name} must be a string, not {value!r}; expected {expected}.")
    return _error("blank", name, f"{name} is blank; expected {expected}.")


def _is_filled_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
