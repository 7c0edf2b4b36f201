"""The services: validation, the guard, the audit trail and the revision, under concurrency too."""
import threading

import pytest
from django.db import connection, connections

from registry.revision import bump_revision, current_revision
from registry.validation import InvalidDocument
from rollout import services
from rollout.models import FlagChange, FlagOverride, TenantOverride
from rollout.services import Actor, ConfirmationRequired
from rollout.status import database_flag_values

pytestmark = pytest.mark.django_db


def error_codes(excinfo):
    return [(error.path, error.code) for error in excinfo.value.errors]


@pytest.mark.parametrize("name, value, code", [
    ("parallel_execution_max_group_size", 0, "out_of_range"),
    ("parallel_execution_max_group_size", 65, "out_of_range"),
    ("parallel_execution_max_group_size", 2.5, "invalid_type"),
    ("parallel_execution_max_group_size", True, "invalid_type"),
    ("parallel_execution_timeout_multiplier", 0.99, "out_of_range"),
    ("parallel_execution_timeout_multiplier", 10.01, "out_of_range"),
    ("parallel_execution_timeout_multiplier", float("nan"), "out_of_range"),
    ("parallel_execution_timeout_multiplier", "2", "invalid_type"),
    ("parallel_execution_enabled", "true", "invalid_type"),
    ("parallel_execution_tenant_allowlist", "acme", "invalid_type"),
    ("no_such_flag", True, "unknown_flag"),
])
def test_invalid_value_is_rejected(actor, name, value, code):
    with pytest.raises(InvalidDocument) as excinfo:
        services.change_flags({name: value}, actor=actor)

    assert error_codes(excinfo) == [(name, code)]
    assert FlagOverride.objects.count() == 0
    assert FlagChange.objects.count() == 0


@pytest.mark.parametrize("name, value", [
    ("parallel_execution_max_group_size", 1),
    ("parallel_execution_max_group_size", 64),
    ("parallel_execution_timeout_multiplier", 1.0),
    ("parallel_execution_timeout_multiplier", 10),
])
def test_range_bounds_are_accepted(actor, name, value):
    services.set_flag(name, value, actor=actor)

    assert database_flag_values()[name] == value


@pytest.mark.parametrize("items, expected", [
    (["acme", ""], [("parallel_execution_tenant_allowlist[1]", "blank")]),
    (["  "], [("parallel_execution_tenant_allowlist[0]", "blank")]),
    ([" acme"], [("parallel_execution_tenant_allowlist[0]", "invalid")]),
    (["a,b"], [("parallel_execution_tenant_allowlist[0]", "invalid")]),
    ([None], [("parallel_execution_tenant_allowlist[0]", "blank")]),
    (["acme", "acme"], [("parallel_execution_tenant_allowlist[1]", "duplicate")]),
])
def test_allowlist_rejects_empty_and_malformed_ids(actor, items, expected):
    with pytest.raises(InvalidDocument) as excinfo:
        services.set_flag("parallel_execution_tenant_allowlist", items, actor=actor)

    assert error_codes(excinfo) == expected


def test_policy_allowlist_needs_existing_policies(actor, policies):
    with pytest.raises(InvalidDocument) as excinfo:
        services.set_flag("parallel_execution_policy_allowlist", ["acme-default", "ghost"], actor=actor)

    assert error_codes(excinfo) == [("parallel_execution_policy_allowlist[1]", "unknown_policy")]
    assert "ghost" in excinfo.value.errors[0].message


def test_policy_override_needs_existing_policy(actor):
    with pytest.raises(InvalidDocument) as excinfo:
        services.set_policy_override("ghost", False, actor=actor)

    assert error_codes(excinfo) == [("policy_id", "unknown_policy")]


def test_tenant_override_rejects_empty_id(actor):
    with pytest.raises(InvalidDocument) as excinfo:
        services.set_tenant_override("", False, actor=actor)

    assert error_codes(excinfo) == [("tenant_id", "blank")]
    assert TenantOverride.objects.count() == 0


def test_removing_last_allowlisted_tenant_needs_confirmation(actor):
    services.set_flag("parallel_execution_tenant_allowlist", ["acme"], actor=actor)
    revision = current_revision()
    entries = FlagChange.objects.count()

    with pytest.raises(ConfirmationRequired) as excinfo:
        services.set_flag("parallel_execution_tenant_allowlist", [], actor=actor)

    assert excinfo.value.code == "confirmation_required"
    assert "acme" in excinfo.value.message
    assert database_flag_values()["parallel_execution_tenant_allowlist"] == ("acme",)
    assert FlagChange.objects.count() == entries
    assert current_revision() == revision


def test_clearing_override_that_empties_allowlist_needs_confirmation(actor):
    services.set_flag("parallel_execution_policy_allowlist", [], actor=actor)  # an empty list is not "emptying"
    services.set_flag("parallel_execution_tenant_allowlist", ["acme"], actor=actor)

    with pytest.raises(ConfirmationRequired):
        services.clear_flag("parallel_execution_tenant_allowlist", actor=actor)


def test_environment_allowlist_counts_for_guard(actor, monkeypatch):
    monkeypatch.setenv("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST", "acme")

    with pytest.raises(ConfirmationRequired):
        services.set_flag("parallel_execution_tenant_allowlist", [], actor=actor)


def test_master_switch_on_with_empty_allowlist_needs_confirmation(actor):
    with pytest.raises(ConfirmationRequired) as excinfo:
        services.set_flag("parallel_execution_enabled", True, actor=actor)

    assert "master switch" in excinfo.value.message
    assert FlagOverride.objects.count() == 0
    assert FlagChange.objects.count() == 0


def test_master_switch_on_with_allowlist_needs_no_confirmation(actor):
    services.change_flags(
        {"parallel_execution_enabled": True, "parallel_execution_tenant_allowlist": ["acme"]}, actor=actor
    )

    assert database_flag_values()["parallel_execution_enabled"] is True


def test_confirmed_change_is_applied(actor):
    services.set_flag("parallel_execution_tenant_allowlist", ["acme"], actor=actor)

    services.set_flag("parallel_execution_tenant_allowlist", [], actor=actor, confirm_all_tenants=True)

    assert database_flag_values()["parallel_execution_tenant_allowlist"] == ()


def test_change_records_audit_entry_and_bumps_revision(actor):
    revision = current_revision()

    [entry] = services.set_flag(
        "parallel_execution_max_group_size", 8, actor=Actor("ops", FlagChange.Through.AUTOMATIC_ROLLBACK), reason="canary"
    )

    assert current_revision() == revision + 1
    assert (entry.actor, entry.through, entry.target_type, entry.target) == (
        "ops", "automatic_rollback", "flag", "parallel_execution_max_group_size",
    )
    assert (entry.old_value, entry.new_value, entry.reason, entry.revision) == (None, 8, "canary", revision + 1)


def test_clear_records_old_value(actor):
    services.set_flag("parallel_execution_tenant_allowlist", ["acme", "beta"], actor=actor)

    [entry] = services.clear_flag("parallel_execution_tenant_allowlist", actor=actor, confirm_all_tenants=True)

    assert (entry.old_value, entry.new_value) == (["acme", "beta"], None)
    assert not FlagOverride.objects.filter(name="parallel_execution_tenant_allowlist").exists()


def test_unchanged_value_writes_nothing(actor):
    services.set_tenant_override("acme", False, actor=actor)
    revision = current_revision()

    assert services.set_tenant_override("acme", False, actor=actor) is None
    assert services.change_flags({"parallel_execution_enabled": None}, actor=actor) == []
    assert services.clear_tenant_override("beta", actor=actor) is None
    assert current_revision() == revision
    assert FlagChange.objects.count() == 1


def test_tenant_override_set_and_cleared(actor):
    first = services.set_tenant_override("acme", True, actor=actor, reason="pilot")
    second = services.set_tenant_override("acme", False, actor=actor, reason="rollback")
    third = services.clear_tenant_override("acme", actor=actor)

    assert [(entry.old_value, entry.new_value) for entry in (first, second, third)] == [
        (None, True), (True, False), (False, None),
    ]
    assert {entry.target_type for entry in (first, second, third)} == {"tenant"}
    assert TenantOverride.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
def test_concurrent_changes_are_all_kept():
    bump_revision()  # the revision row exists before the threads race for its lock
    start = threading.Barrier(8)
    failures = []

    def change(index):
        try:
            start.wait(timeout=5)
            services.set_tenant_override(f"tenant-{index}", index % 2 == 0, actor=Actor(f"ops-{index}", "api"))
            services.set_flag("parallel_execution_max_group_size", index + 1, actor=Actor(f"ops-{index}", "api"))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=change, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert TenantOverride.objects.count() == 8
    flag_entries = list(FlagChange.objects.filter(target_type="flag").order_by("revision"))
    assert len(flag_entries) == 8
    assert FlagChange.objects.filter(target_type="tenant").count() == 8
    # Each change saw the one before it: the old values chain from no value to the last value.
    assert flag_entries[0].old_value is None
    for previous, entry in zip(flag_entries, flag_entries[1:]):
        assert entry.old_value == previous.new_value
    assert database_flag_values()["parallel_execution_max_group_size"] == flag_entries[-1].new_value
    revisions = list(FlagChange.objects.values_list("revision", flat=True))
    assert len(set(revisions)) == 16
