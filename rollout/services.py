"""Every change to the parallel-execution flags and overrides goes through these functions.

Each one runs in one transaction. It locks the registry revision row, so concurrent changes
queue one behind the other. Then it validates the change and applies the guard against
opening parallel execution to every tenant by accident. Last, it writes the audit entry and
bumps the revision, whose change notice makes running executors reload after the commit.
A change that leaves everything as it was writes nothing and returns no audit entries.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from registry.models import RegistryRevision, RoutingPolicy
from registry.revision import REVISION_ROW_ID, bump_revision
from registry.services import RegistryConflict
from registry.validation import FieldError, InvalidDocument
from rollout.flags import (
    FLAGS,
    FLAGS_BY_NAME,
    ID_LIST,
    INTEGER,
    MASTER_SWITCH,
    NUMBER,
    POLICY_ALLOWLIST,
    SWITCH,
    TENANT_ALLOWLIST,
    FlagDefinition,
    flag_states,
    stored_value,
)
from rollout.models import FlagChange, FlagOverride, PolicyOverride, TenantOverride
from rollout.status import database_flag_values

logger = logging.getLogger("rollout.audit")

MAX_ID_LENGTH = 100
MAX_REASON_LENGTH = 1000


@dataclass(frozen=True)
class Actor:
    """The maker of a change, and the channel it came through: ``admin``, ``api``, ``command`` or ``automatic_rollback``."""

    name: str
    through: str
    user: AbstractBaseUser | None = None


class ConfirmationRequired(RegistryConflict):
    """A change that would give every tenant or every policy parallel execution, sent without confirmation."""

    def __init__(self, message: str) -> None:
        super().__init__("confirmation_required", message)


# Flags


def set_flag(name: str, value: Any, *, actor: Actor, reason: str = "",
             confirm_all_tenants: bool = False) -> list[FlagChange]:
    """Set the database override of flag ``name``; see ``change_flags``."""
    if value is None:
        raise InvalidDocument("invalid_flags", "The flags are invalid.", [
            FieldError("required", f"{name}: a value is required; use clear_flag to remove the override.", name, name)
        ])
    return change_flags({name: value}, actor=actor, reason=reason, confirm_all_tenants=confirm_all_tenants)


def clear_flag(name: str, *, actor: Actor, reason: str = "", confirm_all_tenants: bool = False) -> list[FlagChange]:
    """Delete the database override of flag ``name``, so the environment or the default applies again."""
    return change_flags({name: None}, actor=actor, reason=reason, confirm_all_tenants=confirm_all_tenants)


@transaction.atomic
def change_flags(changes: Mapping[str, Any], *, actor: Actor, reason: str = "",
                 confirm_all_tenants: bool = False) -> list[FlagChange]:
    """Set or clear (``None``) the database overrides of several flags at once, and return the audit entries.

    Raises ``InvalidDocument`` for an unknown flag or a value out of its range, and
    ``ConfirmationRequired`` when the change empties a non-empty allowlist or turns the
    master switch on while the tenant allowlist is empty, unless ``confirm_all_tenants``.
    Nothing is saved when either is raised.
    """
    _lock_rollout_state()
    _raise_if_invalid(_flag_change_errors(changes) + _reason_errors(reason))

    before = database_flag_values()
    after = dict(before)
    for name, value in changes.items():
        if value is None:
            after.pop(name, None)
        else:
            after[name] = stored_value(FLAGS_BY_NAME[name], value)
    if not confirm_all_tenants:
        _raise_unless_confirmed(before, after, actor)

    changed = [flag.name for flag in FLAGS if flag.name in changes and before.get(flag.name) != after.get(flag.name)]
    for name in changed:
        _store_flag(name, after.get(name))
    return _record(
        actor, reason,
        [(FlagChange.TargetType.FLAG, name, _jsonable(before.get(name)), _jsonable(after.get(name))) for name in changed],
    )


# Tenant and policy overrides


@transaction.atomic
def set_tenant_override(tenant_id: str, enabled: bool, *, actor: Actor, reason: str = "") -> FlagChange | None:
    """Turn parallel execution on or off for ``tenant_id``, overriding the tenant allowlist."""
    _lock_rollout_state()
    _raise_if_invalid(id_errors("tenant_id", tenant_id) + _enabled_errors(enabled) + _reason_errors(reason))
    return _set_override(TenantOverride, "tenant_id", FlagChange.TargetType.TENANT, tenant_id, enabled, actor, reason)


@transaction.atomic
def clear_tenant_override(tenant_id: str, *, actor: Actor, reason: str = "") -> FlagChange | None:
    """Delete ``tenant_id``'s override, so the allowlist decides again; None when there was none."""
    _lock_rollout_state()
    _raise_if_invalid(_reason_errors(reason))
    return _clear_override(TenantOverride, "tenant_id", FlagChange.TargetType.TENANT, tenant_id, actor, reason)


@transaction.atomic
def set_policy_override(policy_id: str, enabled: bool, *, actor: Actor, reason: str = "") -> FlagChange | None:
    """Turn parallel execution on or off for routing policy ``policy_id``, overriding the policy allowlist."""
    _lock_rollout_state()
    errors = id_errors("policy_id", policy_id) + _enabled_errors(enabled) + _reason_errors(reason)
    if not errors:
        errors = _unknown_policy_errors("policy_id", [policy_id])
    _raise_if_invalid(errors)
    return _set_override(PolicyOverride, "policy_id", FlagChange.TargetType.POLICY, policy_id, enabled, actor, reason)


@transaction.atomic
def clear_policy_override(policy_id: str, *, actor: Actor, reason: str = "") -> FlagChange | None:
    """Delete ``policy_id``'s override, so the allowlist decides again; None when there was none."""
    _lock_rollout_state()
    _raise_if_invalid(_reason_errors(reason))
    return _clear_override(PolicyOverride, "policy_id", FlagChange.TargetType.POLICY, policy_id, actor, reason)


def _set_override(model: Any, id_field: str, target_type: str, target: str, enabled: bool,
                  actor: Actor, reason: str) -> FlagChange | None:
    existing = model.objects.filter(**{id_field: target}).first()
    old_value = None if existing is None else existing.enabled
    if old_value == enabled:
        return None

    model.objects.update_or_create(**{id_field: target}, defaults={"enabled": enabled})
    return _record(actor, reason, [(target_type, target, old_value, enabled)])[0]


def _clear_override(model: Any, id_field: str, target_type: str, target: str,
                    actor: Actor, reason: str) -> FlagChange | None:
    existing = model.objects.filter(**{id_field: target}).first()
    if existing is None:
        return None

    existing.delete()
    return _record(actor, reason, [(target_type, target, existing.enabled, None)])[0]


# Steps shared by every change


def _lock_rollout_state() -> None:
    # Every rollout change and every registry change locks this row (bump_revision does it
    # too), so on PostgreSQL concurrent changes queue here until the holder commits. Each one
    # then reads the values the previous one wrote, which keeps the audit trail's old values
    # right. SQLite serializes writers with its database lock.
    RegistryRevision.objects.select_for_update().get_or_create(pk=REVISION_ROW_ID)


def _store_flag(name: str, value: Any) -> None:
    if value is None:
        FlagOverride.objects.filter(name=name).delete()
    else:
        FlagOverride.objects.update_or_create(name=name, defaults={"value": _jsonable(value)})


def _record(actor: Actor, reason: str, changes: list[tuple[str, str, Any, Any]]) -> list[FlagChange]:
    if not changes:
        return []

    revision = bump_revision()
    entries = FlagChange.objects.bulk_create([
        FlagChange(
            actor=actor.name,
            user=_real_user(actor.user),
            through=actor.through,
            target_type=target_type,
            target=target,
            old_value=old_value,
            new_value=new_value,
            reason=reason,
            revision=revision,
        )
        for target_type, target, old_value, new_value in changes
    ])
    for entry in entries:
        logger.info(
            "%s %s changed from %r to %r by %s through %s (revision %s): %s",
            entry.target_type, entry.target, entry.old_value, entry.new_value,
            entry.actor, entry.through, revision, reason or "no reason given",
        )
    return entries


def _raise_unless_confirmed(before: dict[str, Any], after: dict[str, Any], actor: Actor) -> None:
    message = _opening_message(before, after)
    if message is None:
        return

    logger.warning("Rejected a flag change by %s through %s without confirmation: %s", actor.name, actor.through, message)
    raise ConfirmationRequired(message)


def _opening_message(before_overrides: dict[str, Any], after_overrides: dict[str, Any]) -> str | None:
    """Return why the change needs confirmation, or None when it needs none."""
    before = {state.definition.name: state.value for state in flag_states(before_overrides)}
    after = {state.definition.name: state.value for state in flag_states(after_overrides)}
    confirm = (
        'Confirm it to go ahead: "confirm_all_tenants": true in the API, --confirm-all-tenants in the '
        "command, or the confirmation page in the admin."
    )

    for name, kind in ((TENANT_ALLOWLIST, "tenant"), (POLICY_ALLOWLIST, "policy")):
        if before[name] and not after[name]:
            return (
                f"This change empties the {kind} allowlist ({', '.join(before[name])}); an empty allowlist "
                f"means every {kind} gets parallel execution. {confirm}"
            )
    if after[MASTER_SWITCH] and not before[MASTER_SWITCH] and not after[TENANT_ALLOWLIST]:
        return (
            "This change turns the master switch on while the tenant allowlist is empty, which gives "
            f"every tenant parallel execution. {confirm}"
        )
    return None


# Validation


def _flag_change_errors(changes: Mapping[str, Any]) -> list[FieldError]:
    if not isinstance(changes, Mapping):
        return [FieldError("invalid_type", "Expected an object of flag names and values.", "", "")]

    errors: list[FieldError] = []
    for name, value in changes.items():
        flag = FLAGS_BY_NAME.get(name)
        if flag is None:
            known = ", ".join(FLAGS_BY_NAME)
            errors.append(FieldError("unknown_flag", f"Unknown flag {name!r}; expected one of {known}.", name, name))
        elif value is not None:
            errors += _value_errors(flag, value)
    return errors


def _value_errors(flag: FlagDefinition, value: Any) -> list[FieldError]:
    name = flag.name
    if flag.kind == SWITCH:
        if not isinstance(value, bool):
            return [FieldError("invalid_type", f"Expected true or false, got {value!r}.", name, name)]
        return []
    if flag.kind == ID_LIST:
        return _id_list_errors(name, value)
    return _number_errors(flag, value)


def _id_list_errors(name: str, value: Any) -> list[FieldError]:
    if not isinstance(value, (list, tuple)):
        return [FieldError("invalid_type", f"Expected a list of ids, got {value!r}.", name, name)]

    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        path = f"{name}[{index}]"
        errors += id_errors(path, item)
        if not isinstance(item, str):
            continue
        if item in seen:
            errors.append(FieldError("duplicate", f"{item!r} is listed twice.", path, name))
        seen.add(item)
    if not errors and name == POLICY_ALLOWLIST:
        errors = _unknown_policy_errors(name, list(value))
    return errors


def id_errors(path: str, value: Any) -> list[FieldError]:
    """Return what is wrong with ``value`` as a tenant or policy id at ``path``; empty when it is valid."""
    field = path.split("[", 1)[0]
    if not isinstance(value, str) or not value.strip():
        return [FieldError("blank", f"Expected a non-empty id, got {value!r}.", path, field)]
    if value != value.strip() or "," in value or len(value) > MAX_ID_LENGTH:
        return [FieldError(
            "invalid", f"{value!r} is not a valid id; ids have no commas or surrounding spaces and at most "
            f"{MAX_ID_LENGTH} characters.", path, field,
        )]
    return []


def _unknown_policy_errors(name: str, policy_ids: list[str]) -> list[FieldError]:
    known = set(RoutingPolicy.objects.filter(policy_id__in=policy_ids).values_list("policy_id", flat=True))
    return [
        FieldError("unknown_policy", f"Routing policy {policy_id!r} does not exist; create it first.",
                   name if name == "policy_id" else f"{name}[{index}]", name)
        for index, policy_id in enumerate(policy_ids)
        if policy_id not in known
    ]


def _number_errors(flag: FlagDefinition, value: Any) -> list[FieldError]:
    name = flag.name
    low, high = flag.bounds or (-math.inf, math.inf)
    if flag.kind == INTEGER:
        expected = f"a whole number from {int(low)} to {int(high)}"
        valid_type = isinstance(value, int) and not isinstance(value, bool)
    else:
        expected = f"a number from {low} to {high}"
        valid_type = isinstance(value, (int, float)) and not isinstance(value, bool)

    if not valid_type:
        return [FieldError("invalid_type", f"Expected {expected}, got {value!r}.", name, name)]
    if (flag.kind == NUMBER and not math.isfinite(value)) or not low <= value <= high:
        return [FieldError("out_of_range", f"{value!r} is out of range; expected {expected}.", name, name)]
    return []


def _enabled_errors(enabled: Any) -> list[FieldError]:
    if not isinstance(enabled, bool):
        return [FieldError("invalid_type", f"Expected true or false, got {enabled!r}.", "enabled", "enabled")]
    return []


def _reason_errors(reason: Any) -> list[FieldError]:
    if not isinstance(reason, str):
        return [FieldError("invalid_type", f"Expected the reason as a string, got {reason!r}.", "reason", "reason")]
    if len(reason) > MAX_REASON_LENGTH:
        return [FieldError("too_long", f"The reason has more than {MAX_REASON_LENGTH} characters.", "reason", "reason")]
    return []


def _raise_if_invalid(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidDocument("invalid_flags", "The parallel-execution change is invalid.", errors)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _real_user(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None
