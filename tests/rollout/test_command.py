"""``manage.py parallel_execution``: status, enable, disable and clear."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from rollout.models import FlagChange, TenantOverride
from rollout.status import database_flag_values

pytestmark = pytest.mark.django_db


def run(*args):
    output = io.StringIO()
    call_command("parallel_execution", *args, stdout=output)
    return output.getvalue()


def test_status_lists_flags_with_source(monkeypatch):
    monkeypatch.setenv("EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED", "true")

    output = run("status")

    line = next(line for line in output.splitlines() if "parallel_execution_enabled" in line)
    assert "true" in line
    assert "(environment)" in line


def test_status_as_json():
    status = json.loads(run("status", "--json"))

    assert status["flags"]["parallel_execution_max_group_size"]["value"] == 5


def test_disable_tenant_records_command_change():
    run("disable", "--tenant", "acme", "--reason", "error rate up")

    entry = FlagChange.objects.get()
    assert TenantOverride.objects.get().enabled is False
    assert (entry.through, entry.target, entry.reason) == ("command", "acme", "error rate up")


def test_disable_without_target_turns_master_switch_off(monkeypatch):
    monkeypatch.setenv("EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED", "true")

    output = run("disable", "--reason", "rollback")

    assert database_flag_values()["parallel_execution_enabled"] is False
    assert "(database)" in next(line for line in output.splitlines() if "parallel_execution_enabled" in line)


def test_enable_with_empty_allowlist_needs_confirmation():
    with pytest.raises(CommandError, match="--confirm-all-tenants"):
        run("enable")

    assert FlagChange.objects.count() == 0
    run("enable", "--confirm-all-tenants")
    assert database_flag_values()["parallel_execution_enabled"] is True


def test_enable_unknown_policy_fails():
    with pytest.raises(CommandError, match="does not exist"):
        run("enable", "--policy", "ghost")


def test_clear_tenant_override():
    run("enable", "--tenant", "acme")

    output = run("clear", "--tenant", "acme")

    assert not TenantOverride.objects.exists()
    assert "tenant acme" not in output


def test_clear_needs_target():
    with pytest.raises(CommandError, match="--tenant or --policy"):
        run("clear")
