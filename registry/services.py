"""Every change to the registry goes through these functions.

Each one validates its input, writes in one transaction and bumps the registry revision, so
executors hear of every change whether it came from the API, the admin, an import or a
management command. Validation failures raise ``InvalidDocument`` with every error found;
changes that would break other registry data raise ``RegistryConflict``.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from registry.documents import extension_entry, policy_document, version_fields
from registry.models import (
    STAGE_EXTENSION_TYPE,
    STAGES,
    ApiToken,
    Extension,
    ExtensionVersion,
    PolicyStep,
    RoutingPolicy,
    Tenant,
)
from registry.revision import bump_revision
from registry.validation import (
    Catalog,
    FieldError,
    InvalidDocument,
    validate_extension_entry,
    validate_policy,
    validate_tenant,
    validate_version_fields,
)

POLICY_IDENTITY_KEYS = ("policy_id", "tenant_id")
STEP_KNOWN_KEYS = {
    "pre": ("id", "mode", "depends_on", "config"),
    "validators": ("id", "on_fail", "depends_on", "config"),
    "post": ("id", "mode", "depends_on", "config"),
}


class RegistryConflict(Exception):
    """A change that the registry's other data forbids, such as deleting an extension in use."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


# Tenants


@transaction.atomic
def create_tenant(document: dict[str, Any]) -> Tenant:
    """Create a tenant from ``{tenant_id, name, description?}``."""
    _raise_if_invalid("invalid_tenant", "The tenant is invalid.", validate_tenant(document))
    if Tenant.objects.filter(tenant_id=document["tenant_id"]).exists():
        raise RegistryConflict("already_exists", f"Tenant {document['tenant_id']!r} already exists; update it instead.")

    tenant = Tenant.objects.create(
        tenant_id=document["tenant_id"], name=document["name"], description=document.get("description", "")
    )
    bump_revision()
    return tenant


@transaction.atomic
def update_tenant(tenant: Tenant, document: dict[str, Any]) -> Tenant:
    """Replace a tenant's name and description; ``tenant_id``, if given, must not change."""
    document = {"tenant_id": tenant.tenant_id, **document} if isinstance(document, dict) else document
    errors = validate_tenant(document)
    if not errors:
        errors = _identity_change_errors(document, "tenant_id", tenant.tenant_id)
    _raise_if_invalid("invalid_tenant", "The tenant is invalid.", errors)

    tenant.name = document["name"]
    tenant.description = document.get("description", "")
    tenant.save()
    bump_revision()
    return tenant


@transaction.atomic
def save_tenant(document: dict[str, Any]) -> tuple[Tenant, bool]:
    """Create or replace the tenant named by ``document["tenant_id"]``; return it and whether it was new."""
    tenant = Tenant.objects.filter(tenant_id=document.get("tenant_id")).first()
    if tenant is None:
        return create_tenant(document), True
    return update_tenant(tenant, document), False


@transaction.atomic
def delete_tenant(tenant: Tenant) -> None:
    """Delete a tenant that no policy belongs to."""
    policy_ids = list(tenant.policies.values_list("policy_id", flat=True))
    if policy_ids:
        raise RegistryConflict(
            "tenant_in_use",
            f"Tenant {tenant.tenant_id!r} still has policies {', '.join(policy_ids)}; delete or move them first.",
        )

    tenant.delete()
    bump_revision()


# Extensions


@transaction.atomic
def create_extension(
    entry: dict[str, Any], *, user: AbstractBaseUser | None = None, owner: AbstractBaseUser | None = None
) -> Extension:
    """Create an extension and its first, active version from a registry entry."""
    _raise_if_invalid("invalid_extension", "The extension entry is invalid.", validate_extension_entry(entry))
    if Extension.objects.filter(extension_id=entry["id"]).exists():
        raise RegistryConflict("already_exists", f"Extension {entry['id']!r} already exists; update it instead.")

    extension = Extension.objects.create(
        extension_id=entry["id"], type=entry["type"], enabled=entry.get("enabled", True), owner=owner
    )
    ExtensionVersion.objects.create(
        extension=extension,
        is_active=True,
        created_by=_real_user(user),
        **_version_model_fields(entry),
        **_approved_on_creation(user),
    )
    bump_revision()
    return extension


@transaction.atomic
def update_extension(extension: Extension, entry: dict[str, Any], *, user: AbstractBaseUser | None = None) -> Extension:
    """Replace a registry entry: the extension's own fields and its active version's, in place.

    ``id`` may be left out but not changed. Fields left out take their defaults, as on create.
    """
    extension = _lock_extension(extension)
    if isinstance(entry, dict):
        entry = {"id": extension.extension_id, **entry}
    errors = validate_extension_entry(entry)
    if not errors:
        errors = _identity_change_errors(entry, "id", extension.extension_id)
        errors += _version_label_clash_errors(extension, entry.get("version"), exclude=extension.active_version)
    _raise_if_invalid("invalid_extension", "The extension entry is invalid.", errors)
    _check_type_fits_policies(extension, entry["type"])

    extension.type = entry["type"]
    extension.enabled = entry.get("enabled", True)
    extension.save()
    active = extension.active_version
    if active is None:
        ExtensionVersion.objects.create(
            extension=extension,
            is_active=True,
            created_by=_real_user(user),
            **_version_model_fields(entry),
            **_approved_on_creation(user),
        )
    else:
        _apply_version_fields(active, _version_model_fields(entry))
        active.save()
    bump_revision()
    return extension


def patch_extension(extension: Extension, changes: dict[str, Any], *, user: AbstractBaseUser | None = None) -> Extension:
    """Apply a partial update and validate the result as a whole.

    Keys of ``changes`` replace the entry's keys, except that ``metadata`` merges key by key; a
    null removes the key (``version``, ``config``, or a metadata key).
    """
    if not isinstance(changes, dict):
        raise InvalidDocument("invalid_extension", "The extension entry is invalid.", [_not_an_object()])
    return update_extension(extension, merge_patch(extension_entry(extension), changes), user=user)


@transaction.atomic
def save_extension(entry: dict[str, Any], *, user: AbstractBaseUser | None = None) -> tuple[Extension, bool]:
    """Create or replace the extension named by ``entry["id"]``; return it and whether it was new."""
    extension = Extension.objects.filter(extension_id=entry.get("id")).first()
    if extension is None:
        return create_extension(entry, user=user), True
    return update_extension(extension, entry, user=user), False


@transaction.atomic
def update_extension_settings(
    extension: Extension, *, extension_type: str, enabled: bool, owner: AbstractBaseUser | None
) -> Extension:
    """Change an extension's type, enabled flag and owner, keeping its versions as they are.

    The caller checks that the versions' subjects fit a new type; the admin's form does.
    """
    _check_type_fits_policies(extension, extension_type)
    extension.type = extension_type
    extension.enabled = enabled
    extension.owner = owner
    extension.save()
    bump_revision()
    return extension


@transaction.atomic
def set_side_effect_free(extension: Extension, side_effect_free: bool) -> Extension:
    """Set ``side_effect_free`` on the extension's active version."""
    extension = _lock_extension(extension)
    active = extension.active_version
    if active is None:
        raise RegistryConflict("no_active_version", f"Extension {extension.extension_id!r} has no active version.")

    active.side_effect_free = side_effect_free
    active.save(update_fields=["side_effect_free"])
    bump_revision()
    return extension


@transaction.atomic
def delete_extension(extension: Extension) -> None:
    """Delete an extension, with its versions, that no policy step uses."""
    policy_ids = policies_using([extension.extension_id])
    if policy_ids:
        raise RegistryConflict(
            "extension_in_use",
            f"Extension {extension.extension_id!r} is used by policies {', '.join(policy_ids)}; "
            "remove it from them first.",
        )

    extension.delete()
    bump_revision()


# Versions


@transaction.atomic
def create_version(
    extension: Extension, data: dict[str, Any], *, activate: bool = False, user: AbstractBaseUser | None = None
) -> ExtensionVersion:
    """Add a version to ``extension``; it is inactive unless ``activate`` is true.

    ``data`` needs a ``version`` label; other fields left out are copied from the active version.
    """
    extension = _lock_extension(extension)
    active = extension.active_version
    if not isinstance(data, dict):
        raise InvalidDocument("invalid_version", "The version is invalid.", [_not_an_object()])

    merged = merge_patch(version_fields(active), data) if active else dict(data)
    errors = validate_version_fields(merged, extension.type)
    if not data.get("version"):
        errors.append(FieldError("missing_field", "version is required; give the new version a label.", "version", "version"))
    else:
        errors += _version_label_clash_errors(extension, data["version"], exclude=None)
    _raise_if_invalid("invalid_version", "The version is invalid.", errors)

    if activate:
        extension.versions.filter(is_active=True).update(is_active=False)
    version = ExtensionVersion.objects.create(
        extension=extension,
        is_active=activate,
        created_by=_real_user(user),
        **_version_model_fields(merged),
        **_approved_on_creation(user),
    )
    bump_revision()
    return version


@transaction.atomic
def update_version(version: ExtensionVersion, fields: dict[str, Any]) -> ExtensionVersion:
    """Replace a version's fields (``subject``, ``timeout_ms``, ``retry``, ``metadata``, ``version``, ``config``)."""
    extension = _lock_extension(version.extension)
    errors = validate_version_fields(fields, extension.type)
    if not errors and fields.get("version"):
        errors = _version_label_clash_errors(extension, fields["version"], exclude=version)
    _raise_if_invalid("invalid_version", "The version is invalid.", errors)

    _apply_version_fields(version, _version_model_fields(fields))
    version.save()
    bump_revision()
    return version


@transaction.atomic
def activate_version(version: ExtensionVersion) -> ExtensionVersion:
    """Make ``version`` its extension's active version, deactivating the one before.

    Raises ``RegistryConflict`` (``not_approved``) unless the version is approved.
    """
    extension = _lock_extension(version.extension)
    version.refresh_from_db(fields=["review_status"])
    if not version.is_approved:
        raise RegistryConflict(
            "not_approved",
            f"Version {version.version!r} of {extension.extension_id!r} is {version.get_review_status_display()}; "
            "only an approved version can become active.",
        )

    extension.versions.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    version.is_active = True
    version.save(update_fields=["is_active"])
    bump_revision()
    return version


@transaction.atomic
def delete_version(version: ExtensionVersion) -> None:
    """Delete an inactive version; the active one stays until another is activated."""
    if version.is_active:
        raise RegistryConflict(
            "active_version",
            f"Version {version.version!r} of {version.extension.extension_id!r} is active; activate another first.",
        )

    version.delete()
    bump_revision()


# Submissions and review


@transaction.atomic
def submit_extension(entry: dict[str, Any], *, author: AbstractBaseUser) -> ExtensionVersion:
    """Create an extension owned by ``author`` with a first version that waits for review.

    The extension has no active version, and so no registry entry, until ops staff approve it.
    """
    _raise_if_invalid("invalid_extension", "The extension entry is invalid.", validate_extension_entry(entry))
    if Extension.objects.filter(extension_id=entry["id"]).exists():
        raise RegistryConflict("already_exists", f"Extension {entry['id']!r} already exists; choose another id.")

    extension = Extension.objects.create(
        extension_id=entry["id"], type=entry["type"], enabled=entry.get("enabled", True), owner=author
    )
    version = ExtensionVersion.objects.create(
        extension=extension, is_active=False, created_by=author, **_version_model_fields(entry)
    )
    bump_revision()
    return version


@transaction.atomic
def submit_version(extension: Extension, data: dict[str, Any], *, author: AbstractBaseUser) -> ExtensionVersion:
    """Add a version to ``author``'s own extension; it waits for review and is not active."""
    if extension.owner_id != author.pk:
        raise RegistryConflict("not_owner", f"Extension {extension.extension_id!r} belongs to another author.")

    version = create_version(extension, data, user=author)
    version.review_status = ExtensionVersion.ReviewStatus.PENDING
    version.reviewed_by = None
    version.reviewed_at = None
    version.save(update_fields=["review_status", "reviewed_by", "reviewed_at"])
    return version


@transaction.atomic
def approve_version(version: ExtensionVersion, *, reviewer: AbstractBaseUser, reason: str = "") -> ExtensionVersion:
    """Approve a submitted version; the first approved version of an extension also becomes active.

    Raises ``RegistryConflict`` when ``reviewer`` submitted the version.
    """
    _check_reviewer(version, reviewer)
    _record_review(version, ExtensionVersion.ReviewStatus.APPROVED, reviewer, reason)
    if version.extension.active_version is None:
        activate_version(version)
    bump_revision()
    return version


@transaction.atomic
def reject_version(version: ExtensionVersion, *, reviewer: AbstractBaseUser, reason: str) -> ExtensionVersion:
    """Reject a version with a reason its author can read.

    Raises ``RegistryConflict`` when ``reviewer`` submitted the version, when the version is
    active, or when ``reason`` is blank.
    """
    _check_reviewer(version, reviewer)
    if not reason.strip():
        raise RegistryConflict("reason_required", "A rejection needs a reason the author can act on.")
    if version.is_active:
        raise RegistryConflict(
            "active_version",
            f"Version {version.version!r} of {version.extension.extension_id!r} is active; activate another first.",
        )

    _record_review(version, ExtensionVersion.ReviewStatus.REJECTED, reviewer, reason)
    bump_revision()
    return version


def _check_reviewer(version: ExtensionVersion, reviewer: AbstractBaseUser) -> None:
    if version.created_by_id is not None and version.created_by_id == reviewer.pk:
        raise RegistryConflict(
            "own_submission",
            f"{version} was submitted by {reviewer}; another member of ops staff must review it.",
        )


def _record_review(version: ExtensionVersion, status: str, reviewer: AbstractBaseUser, reason: str) -> None:
    version.review_status = status
    version.review_reason = reason.strip()
    version.reviewed_by = reviewer
    version.reviewed_at = timezone.now()
    version.save(update_fields=["review_status", "review_reason", "reviewed_by", "reviewed_at"])


# Determinism probe


@transaction.atomic
def record_probe_result(version: ExtensionVersion, status: str, detail: str = "") -> ExtensionVersion:
    """Store the determinism probe's result on ``version``.

    The revision is bumped because a failed probe changes how executors plan the extension.
    """
    if status not in ExtensionVersion.ProbeStatus.values:
        raise ValueError(f"Unknown probe status {status!r}; expected one of {', '.join(ExtensionVersion.ProbeStatus.values)}.")

    version.probe_status = status
    version.probe_detail = detail
    version.probed_at = timezone.now()
    version.save(update_fields=["probe_status", "probe_detail", "probed_at"])
    bump_revision()
    return version


# Policies


@transaction.atomic
def create_policy(document: dict[str, Any]) -> RoutingPolicy:
    """Create a policy from its document, after validating it whole."""
    _raise_if_invalid("invalid_policy", "The policy is invalid.", validate_policy(document))
    if RoutingPolicy.objects.filter(policy_id=document["policy_id"]).exists():
        raise RegistryConflict("already_exists", f"Policy {document['policy_id']!r} already exists; update it instead.")

    policy = RoutingPolicy(policy_id=document["policy_id"])
    return _write_policy(policy, document)


@transaction.atomic
def replace_policy(policy: RoutingPolicy, document: dict[str, Any], *, catalog: Catalog | None = None) -> RoutingPolicy:
    """Replace a policy with ``document``; ``policy_id`` may be left out but not changed."""
    if isinstance(document, dict):
        document = {"policy_id": policy.policy_id, **document}
    errors = validate_policy(document, catalog)
    errors += _identity_change_errors(document, "policy_id", policy.policy_id) if isinstance(document, dict) else []
    _raise_if_invalid("invalid_policy", "The policy is invalid.", errors)

    return _write_policy(policy, document)


def patch_policy(policy: RoutingPolicy, changes: dict[str, Any]) -> RoutingPolicy:
    """Merge top-level keys into the policy and validate the result whole.

    A stage given replaces that stage whole; a null removes a key.
    """
    if not isinstance(changes, dict):
        raise InvalidDocument("invalid_policy", "The policy is invalid.", [_not_an_object()])

    document = policy_document(policy)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return replace_policy(policy, document)


@transaction.atomic
def save_policy(document: dict[str, Any], *, catalog: Catalog | None = None) -> tuple[RoutingPolicy, bool]:
    """Create or replace the policy named by ``document["policy_id"]``; return it and whether it was new."""
    policy_id = document.get("policy_id") if isinstance(document, dict) else None
    policy = RoutingPolicy.objects.filter(policy_id=policy_id).first() if isinstance(policy_id, str) else None
    if policy is None:
        _raise_if_invalid("invalid_policy", "The policy is invalid.", validate_policy(document, catalog))
        return _write_policy(RoutingPolicy(policy_id=policy_id), document), True
    return replace_policy(policy, document, catalog=catalog), False


@transaction.atomic
def delete_policy(policy: RoutingPolicy) -> None:
    """Delete a policy and its steps."""
    policy.delete()
    bump_revision()


def _write_policy(policy: RoutingPolicy, document: dict[str, Any]) -> RoutingPolicy:
    policy.tenant = Tenant.objects.get(tenant_id=document["tenant_id"])
    policy.declared_stages = [stage for stage in STAGES if stage in document]
    policy.router_keys = {
        key: value for key, value in document.items() if key not in POLICY_IDENTITY_KEYS and key not in STAGES
    }
    policy.save()

    policy.steps.all().delete()
    PolicyStep.objects.bulk_create(
        [
            _step_model(policy, stage, position, step)
            for stage in STAGES
            for position, step in enumerate(document.get(stage, []))
        ]
    )
    bump_revision()
    return policy


def _step_model(policy: RoutingPolicy, stage: str, position: int, step: dict[str, Any]) -> PolicyStep:
    known = STEP_KNOWN_KEYS[stage]
    return PolicyStep(
        policy=policy,
        stage=stage,
        position=position,
        extension_id=step["id"],
        mode=step.get("mode", "") if stage != "validators" else "",
        on_fail=step.get("on_fail", "") if stage == "validators" else "",
        depends_on=step.get("depends_on"),
        config=step.get("config"),
        extra={key: value for key, value in step.items() if key not in known},
    )


# API tokens


def create_api_token(name: str, scope: str, *, user: AbstractBaseUser | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is not stored and cannot be shown again."""
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"Unknown token scope {scope!r}; expected one of {', '.join(ApiToken.Scope.values)}.")

    secret = ApiToken.generate_secret()
    token = ApiToken.objects.create(name=name, scope=scope, user=user, secret_hash=ApiToken.hash_secret(secret))
    return token, secret


def revoke_api_token(token: ApiToken) -> ApiToken:
    """Revoke a token; requests that present it are rejected from then on."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


# Helpers


def merge_patch(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Return ``document`` with ``changes`` applied: keys replace, ``metadata`` merges, null removes."""
    merged = dict(document)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif key == "metadata" and isinstance(value, dict) and isinstance(merged.get("metadata"), dict):
            metadata = {**merged["metadata"], **value}
            merged["metadata"] = {name: item for name, item in metadata.items() if item is not None}
        else:
            merged[key] = value
    return merged


def _version_model_fields(data: dict[str, Any]) -> dict[str, Any]:
    metadata = data.get("metadata") or {}
    return {
        "version": data.get("version") or "",
        "subject": data["subject"],
        "timeout_ms": data["timeout_ms"],
        "retry": data["retry"],
        "side_effect_free": metadata.get("side_effect_free", False),
        "description": metadata.get("description", ""),
        "metadata_extra": {
            key: value for key, value in metadata.items() if key not in ("side_effect_free", "description")
        },
        "config": data.get("config"),
    }


def _approved_on_creation(user: AbstractBaseUser | None) -> dict[str, Any]:
    # Ops staff, API tokens and imports create versions directly, and that counts as their review.
    return {
        "review_status": ExtensionVersion.ReviewStatus.APPROVED,
        "reviewed_by": _real_user(user),
        "reviewed_at": timezone.now(),
    }


def _apply_version_fields(version: ExtensionVersion, fields: dict[str, Any]) -> None:
    """Set ``fields`` on ``version``. A new subject clears the probe result, which was for the old subject."""
    if fields["subject"] != version.subject:
        version.probe_status = ExtensionVersion.ProbeStatus.NOT_RUN
        version.probe_detail = ""
        version.probed_at = None
    for name, value in fields.items():
        setattr(version, name, value)


def _lock_extension(extension: Extension) -> Extension:
    # Serializes writers of the same extension, so two activations cannot both succeed.
    return Extension.objects.select_for_update().get(pk=extension.pk)


def policies_that_block_type(extension: Extension, extension_type: str) -> list[str]:
    """Return the ids of policies that use ``extension`` in a stage that does not take ``extension_type``."""
    if extension_type == extension.type:
        return []
    steps = PolicyStep.objects.filter(extension_id=extension.extension_id).select_related("policy")
    return sorted({step.policy.policy_id for step in steps if STAGE_EXTENSION_TYPE[step.stage] != extension_type})


def policies_using(extension_ids: list[str]) -> list[str]:
    """Return the ids of policies with a step that uses any of ``extension_ids``."""
    steps = PolicyStep.objects.filter(extension_id__in=extension_ids)
    return sorted(set(steps.values_list("policy__policy_id", flat=True)))


def _check_type_fits_policies(extension: Extension, extension_type: str) -> None:
    misfits = policies_that_block_type(extension, extension_type)
    if misfits:
        raise RegistryConflict(
            "extension_in_use",
            f"Extension {extension.extension_id!r} cannot become type {extension_type!r}: policies "
            f"{', '.join(misfits)} use it in a stage that needs type {extension.type!r}.",
        )


def _version_label_clash_errors(
    extension: Extension, label: Any, *, exclude: ExtensionVersion | None
) -> list[FieldError]:
    """Return an error when a version of ``extension`` other than ``exclude`` already has ``label``."""
    if not label:
        return []

    others = extension.versions.filter(version=label)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if not others.exists():
        return []
    message = f"version {label!r} already exists for {extension.extension_id!r}; choose another label."
    return [FieldError("duplicate_version", message, "version", "version")]


def _identity_change_errors(document: dict[str, Any], key: str, current: str) -> list[FieldError]:
    if document.get(key) == current:
        return []
    message = f"{key} cannot be changed; expected {current!r} or no {key} at all."
    return [FieldError("immutable_field", message, key, key)]


def _raise_if_invalid(code: str, summary: str, errors: list[FieldError]) -> None:
    if errors:
        raise InvalidDocument(code, summary, errors)


def _not_an_object() -> FieldError:
    return FieldError("invalid_type", "The request body must be a JSON object.", "", "")


def _real_user(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None
