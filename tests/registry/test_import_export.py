"""Import and export of the registry file, and their management commands."""
import copy
import json

import pytest
from django.core.management import CommandError, call_command

from registry import transfer
from registry.models import Extension, RoutingPolicy, Tenant
from registry.revision import current_revision
from registry.validation import InvalidDocument

from .conftest import DEPENDS_ON_POLICY, NORMALIZE_TEXT_ENTRY, entry

pytestmark = pytest.mark.django_db

REGISTRY_FILE = {
    "tenants": [
        {"tenant_id": "acme", "name": "Acme", "description": "Demo tenant"},
        {"tenant_id": "globex", "name": "Globex", "description": ""},
    ],
    "extensions": [
        entry("audit_log", "post", metadata={"side_effect_free": False, "description": "Writes the audit log"}),
        entry("detect_language", version="1.4.0", config={"languages": ["en", "de"]}),
        entry("enrich_context"),
        NORMALIZE_TEXT_ENTRY,
        entry("openai", "provider"),
        entry("schema_check", "validator"),
    ],
    "policies": [
        {
            **DEPENDS_ON_POLICY,
            "validators": [{"id": "schema_check", "on_fail": "block"}],
            "post": [{"id": "audit_log", "mode": "optional"}],
            "providers": [{"name": "openai", "weight": 100}],
            "sticky": {"enabled": False},
        },
        {"policy_id": "globex-main", "tenant_id": "globex", "pre": [{"id": "normalize_text", "mode": "optional"}]},
    ],
}


@pytest.fixture
def registry_file():
    return copy.deepcopy(REGISTRY_FILE)


def test_export_after_import_equals_file(registry_file):
    transfer.import_registry(registry_file)

    assert transfer.export_registry() == registry_file


def test_export_keys_in_stable_order(registry_file):
    transfer.import_registry(registry_file)

    exported = transfer.export_registry()

    assert list(exported) == ["tenants", "extensions", "policies"]
    assert list(exported["extensions"][1]) == [
        "id", "type", "version", "subject", "timeout_ms", "retry", "enabled", "metadata", "config",
    ]
    assert list(exported["policies"][0])[:5] == ["policy_id", "tenant_id", "pre", "validators", "post"]


def test_reimport_changes_nothing(registry_file):
    transfer.import_registry(registry_file)
    revision = current_revision()

    summary = transfer.import_registry(registry_file)

    assert summary.unchanged == {"tenants": 2, "extensions": 6, "policies": 2}
    assert not summary.created
    assert not summary.updated
    assert current_revision() == revision
    assert transfer.export_registry() == registry_file


def test_import_updates_existing_documents(registry_file):
    transfer.import_registry(registry_file)
    registry_file["extensions"][3]["timeout_ms"] = 400

    summary = transfer.import_registry(registry_file)

    assert summary.updated["extensions"] == 1
    assert Extension.objects.get(extension_id="normalize_text").active_version.timeout_ms == 400


def test_bad_import_saves_nothing_and_lists_every_error(registry_file):
    registry_file["extensions"][2]["timeout_ms"] = 1
    registry_file["policies"][0]["pre"][2]["depends_on"] = ["ghost"]
    registry_file["policies"][1]["tenant_id"] = "initech"

    with pytest.raises(InvalidDocument) as raised:
        transfer.import_registry(registry_file)

    paths = [error.path for error in raised.value.errors]
    assert paths == ["extensions[2].timeout_ms", "policies[0].pre[2].depends_on", "policies[1].tenant_id"]
    assert not Tenant.objects.exists()
    assert not Extension.objects.exists()
    assert not RoutingPolicy.objects.exists()


def test_error_found_while_saving_rolls_back_everything(registry_file, make_extension):
    make_extension("schema_check", "validator")
    transfer.import_registry({"tenants": registry_file["tenants"], "policies": [
        {"policy_id": "p", "tenant_id": "acme", "validators": [{"id": "schema_check", "on_fail": "warn"}]}
    ]})
    registry_file["extensions"][5]["type"] = "pre"
    registry_file["extensions"][5]["subject"] = "beamline.ext.pre.schema_check.v1"
    registry_file["policies"] = []

    with pytest.raises(InvalidDocument) as raised:
        transfer.import_registry(registry_file)

    assert raised.value.errors[0].code == "extension_in_use"
    assert raised.value.errors[0].path == "extensions[5]"
    assert not Extension.objects.filter(extension_id="normalize_text").exists()


def test_policy_may_refer_to_extension_in_same_file(registry_file):
    summary = transfer.import_registry(registry_file)

    assert summary.created == {"tenants": 2, "extensions": 6, "policies": 2}


def test_duplicate_ids_in_file_are_errors(registry_file):
    registry_file["tenants"].append(dict(registry_file["tenants"][0]))

    with pytest.raises(InvalidDocument) as raised:
        transfer.import_registry(registry_file)

    assert raised.value.errors[0].path == "tenants[2].tenant_id"


def test_unknown_section_is_an_error():
    with pytest.raises(InvalidDocument) as raised:
        transfer.import_registry({"flags": []})

    assert raised.value.errors[0].code == "unknown_field"


def test_import_and_export_commands_round_trip(registry_file, tmp_path):
    source = tmp_path / "registry.json"
    target = tmp_path / "export.json"
    source.write_text(json.dumps(registry_file))

    call_command("import_registry", str(source))
    call_command("export_registry", "--output", str(target))

    assert json.loads(target.read_text()) == registry_file


def test_import_command_prints_paths_and_fails(registry_file, tmp_path, capsys):
    registry_file["policies"][0]["pre"][0]["mode"] = "maybe"
    source = tmp_path / "registry.json"
    source.write_text(json.dumps(registry_file))

    with pytest.raises(CommandError):
        call_command("import_registry", str(source))

    assert "policies[0].pre[0].mode" in capsys.readouterr().err
    assert not Tenant.objects.exists()


def test_import_command_rejects_invalid_json(tmp_path):
    source = tmp_path / "broken.json"
    source.write_text("{")

    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_registry", str(source))


def test_policy_commands_round_trip(registry_file, tmp_path, capsys):
    transfer.import_registry({key: registry_file[key] for key in ("tenants", "extensions")})
    source = tmp_path / "policies.json"
    source.write_text(json.dumps({"policies": registry_file["policies"]}))

    call_command("import_policies", str(source))
    capsys.readouterr()
    call_command("export_policies")

    assert json.loads(capsys.readouterr().out) == {"policies": registry_file["policies"]}


def test_policy_import_refuses_other_sections(registry_file, tmp_path):
    source = tmp_path / "policies.json"
    source.write_text(json.dumps({"tenants": registry_file["tenants"]}))

    with pytest.raises(CommandError):
        call_command("import_policies", str(source))
