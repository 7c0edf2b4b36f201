"""Every validation rule, each with input it accepts and input it rejects."""
import pytest

from registry.validation import (
    Catalog,
    ExtensionFacts,
    validate_extension_entry,
    validate_policy,
    validate_tenant,
    validate_version_fields,
)

from .conftest import entry

CATALOG = Catalog(
    extensions={
        "normalize_text": ExtensionFacts("pre", True),
        "detect_language": ExtensionFacts("pre", True),
        "enrich_context": ExtensionFacts("pre", True),
        "legacy_filter": ExtensionFacts("pre", False),
        "schema_check": ExtensionFacts("validator", True),
        "audit_log": ExtensionFacts("post", True),
    },
    tenant_ids={"acme"},
)


def policy(**changes):
    document = {
        "policy_id": "acme-default",
        "tenant_id": "acme",
        "pre": [
            {"id": "normalize_text", "mode": "required", "depends_on": []},
            {"id": "detect_language", "mode": "optional", "depends_on": []},
            {"id": "enrich_context", "mode": "required", "depends_on": ["normalize_text"]},
        ],
        "validators": [{"id": "schema_check", "on_fail": "block"}],
        "post": [{"id": "audit_log", "mode": "optional"}],
    }
    document.update(changes)
    return document


def codes(errors):
    return [(error.path, error.code) for error in errors]


def test_valid_policy_has_no_errors():
    assert validate_policy(policy(), CATALOG) == []


def test_router_keys_are_not_checked():
    assert validate_policy(policy(providers="anything", sticky=None), CATALOG) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"policy_id": None}, [("policy_id", "missing_field")]),
        ({"policy_id": "  "}, [("policy_id", "blank")]),
        ({"policy_id": "a/b"}, [("policy_id", "invalid_format")]),
        ({"tenant_id": ""}, [("tenant_id", "blank")]),
        ({"tenant_id": 7}, [("tenant_id", "invalid_type")]),
        ({"tenant_id": "initech"}, [("tenant_id", "unknown_tenant")]),
        ({"pre": {"id": "normalize_text"}}, [("pre", "invalid_type")]),
        ({"post": ["audit_log"]}, [("post[0]", "invalid_type")]),
        ({"post": [{"mode": "optional"}]}, [("post[0].id", "missing_field")]),
        ({"post": [{"id": "ghost", "mode": "optional"}]}, [("post[0].id", "unknown_extension")]),
        ({"pre": [{"id": "legacy_filter", "mode": "optional"}]}, [("pre[0].id", "extension_disabled")]),
        ({"post": [{"id": "normalize_text", "mode": "optional"}]}, [("post[0].id", "wrong_extension_type")]),
        ({"validators": [{"id": "audit_log", "on_fail": "warn"}]}, [("validators[0].id", "wrong_extension_type")]),
        ({"post": [{"id": "audit_log"}]}, [("post[0].mode", "missing_field")]),
        ({"post": [{"id": "audit_log", "mode": "sometimes"}]}, [("post[0].mode", "invalid_choice")]),
        ({"validators": [{"id": "schema_check"}]}, [("validators[0].on_fail", "missing_field")]),
        ({"validators": [{"id": "schema_check", "on_fail": "retry"}]}, [("validators[0].on_fail", "invalid_choice")]),
        ({"post": [{"id": "audit_log", "mode": "optional", "depends_on": "x"}]}, [("post[0].depends_on", "invalid_type")]),
        ({"post": [{"id": "audit_log", "mode": "optional", "depends_on": [1]}]}, [("post[0].depends_on", "invalid_type")]),
        ({"post": [{"id": "audit_log", "mode": "optional", "depends_on": None}]}, [("post[0].depends_on", "invalid_type")]),
        ({"post": [{"id": "audit_log", "mode": "optional", "config": []}]}, [("post[0].config", "invalid_type")]),
    ],
    ids=lambda value: str(value)[:40],
)
def test_policy_rule_rejects(changes, expected):
    assert codes(validate_policy(policy(**changes), CATALOG)) == expected


def test_missing_policy_and_tenant_ids_reported_together():
    document = policy()
    del document["policy_id"], document["tenant_id"]

    assert codes(validate_policy(document, CATALOG)) == [("policy_id", "missing_field"), ("tenant_id", "missing_field")]


def test_non_object_policy_is_rejected():
    assert codes(validate_policy(["pre"], CATALOG)) == [("", "invalid_type")]


def test_cycle_names_only_its_steps_and_path():
    steps = [
        {"id": "detect_language", "mode": "required", "depends_on": []},
        {"id": "normalize_text", "mode": "required", "depends_on": ["enrich_context"]},
        {"id": "enrich_context", "mode": "required", "depends_on": ["normalize_text"]},
    ]

    errors = validate_policy(policy(pre=steps), CATALOG)

    assert len(errors) == 1
    assert errors[0].code == "dependency_cycle"
    assert set(errors[0].step_ids) == {"normalize_text", "enrich_context"}
    assert "normalize_text → enrich_context → normalize_text" in errors[0].message or (
        "enrich_context → normalize_text → enrich_context" in errors[0].message
    )


def test_self_dependency_is_rejected():
    steps = [{"id": "normalize_text", "mode": "required", "depends_on": ["normalize_text"]}]

    errors = validate_policy(policy(pre=steps), CATALOG)

    assert codes(errors) == [("pre[0].depends_on", "self_dependency")]
    assert errors[0].step == "normalize_text"


def test_dependency_in_another_stage_is_rejected():
    validators = [{"id": "schema_check", "on_fail": "block", "depends_on": ["normalize_text"]}]

    errors = validate_policy(policy(validators=validators), CATALOG)

    assert codes(errors) == [("validators[0].depends_on", "unknown_dependency")]
    assert errors[0].stage == "validators"


def test_duplicate_step_is_reported_at_the_repeat():
    steps = [{"id": "normalize_text", "mode": "required"}, {"id": "normalize_text", "mode": "optional"}]

    errors = validate_policy(policy(pre=steps), CATALOG)

    assert codes(errors) == [("pre[1].id", "duplicate_step")]
    assert errors[0].step_ids == ("normalize_text",)


def test_all_errors_returned_in_document_order():
    steps = [
        {"id": "normalize_text", "mode": "bad"},
        {"id": "ghost", "mode": "required", "depends_on": ["nobody"]},
    ]

    errors = validate_policy(policy(tenant_id="initech", pre=steps), CATALOG)

    assert codes(errors) == [
        ("tenant_id", "unknown_tenant"),
        ("pre[0].mode", "invalid_choice"),
        ("pre[1].id", "unknown_extension"),
        ("pre[1].depends_on", "unknown_dependency"),
    ]


def test_error_details_carry_stage_step_and_field():
    errors = validate_policy(policy(post=[{"id": "audit_log", "mode": "maybe"}]), CATALOG)

    assert errors[0].as_dict() == {
        "path": "post[0].mode",
        "stage": "post",
        "step": "audit_log",
        "field": "mode",
        "code": "invalid_choice",
        "message": "post[0] (audit_log): mode 'maybe' is not allowed; expected 'required' or 'optional'.",
        "step_ids": ["audit_log"],
    }


def test_missing_and_empty_depends_on_both_valid():
    steps = [{"id": "normalize_text", "mode": "required"}, {"id": "detect_language", "mode": "required", "depends_on": []}]

    assert validate_policy(policy(pre=steps), CATALOG) == []


# Extension entries


def test_valid_entries_of_every_type():
    for extension_type in ("pre", "validator", "post", "provider"):
        assert validate_extension_entry(entry("some_extension", extension_type)) == []


@pytest.mark.parametrize(
    "changes, expected_path, expected_code",
    [
        ({"id": "Normalize"}, "id", "invalid_format"),
        ({"id": "1st"}, "id", "invalid_format"),
        ({"id": "normalize-text"}, "id", "invalid_format"),
        ({"type": "middle"}, "type", "invalid_choice"),
        ({"subject": "beamline.ext.validate.some_extension.v1"}, "subject", "invalid_subject"),
        ({"subject": "beamline.ext.pre.some_extension"}, "subject", "invalid_subject"),
        ({"subject": "beamline.ext.pre.Some.v1"}, "subject", "invalid_subject"),
        ({"subject": 5}, "subject", "invalid_type"),
        ({"timeout_ms": 9}, "timeout_ms", "out_of_range"),
        ({"timeout_ms": 5001}, "timeout_ms", "out_of_range"),
        ({"timeout_ms": "100"}, "timeout_ms", "invalid_type"),
        ({"timeout_ms": 100.5}, "timeout_ms", "invalid_type"),
        ({"retry": -1}, "retry", "out_of_range"),
        ({"retry": 4}, "retry", "out_of_range"),
        ({"retry": True}, "retry", "invalid_type"),
        ({"enabled": "true"}, "enabled", "invalid_type"),
        ({"metadata": []}, "metadata", "invalid_type"),
        ({"metadata": {"side_effect_free": 1}}, "metadata.side_effect_free", "invalid_type"),
        ({"metadata": {"description": 5}}, "metadata.description", "invalid_type"),
        ({"version": "1 0"}, "version", "invalid_format"),
        ({"config": "on"}, "config", "invalid_type"),
        ({"timeout": 100}, "timeout", "unknown_field"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_entry_rule_rejects(changes, expected_path, expected_code):
    errors = validate_extension_entry(entry("some_extension", **changes))

    assert [(error.path, error.code) for error in errors] == [(expected_path, expected_code)]


@pytest.mark.parametrize("boundary", [{"timeout_ms": 10}, {"timeout_ms": 5000}, {"retry": 0}, {"retry": 3}])
def test_entry_limits_are_inclusive(boundary):
    assert validate_extension_entry(entry("some_extension", **boundary)) == []


def test_entry_messages_state_what_was_expected():
    errors = validate_extension_entry(entry("some_extension", "post", subject="beamline.ext.pre.x.v1", timeout_ms=1))

    messages = " ".join(error.message for error in errors)
    assert "beamline.ext.post.<name>.v<N>" in messages
    assert "from 10 to 5000" in messages


def test_entry_requires_core_fields():
    errors = validate_extension_entry({"id": "some_extension"})

    assert {error.path for error in errors} == {"type", "subject", "timeout_ms", "retry"}


def test_provider_subject_pattern():
    assert validate_extension_entry(entry("openai", "provider", subject="beamline.provider.openai.v2")) == []


def test_version_fields_check_subject_against_type():
    errors = validate_version_fields(
        {"subject": "beamline.ext.pre.x.v1", "timeout_ms": 10, "retry": 0}, "validator"
    )

    assert [error.code for error in errors] == ["invalid_subject"]


# Tenants


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"tenant_id": "acme-prod_2", "name": "Acme"}, []),
        ({"tenant_id": "Acme", "name": "Acme"}, [("tenant_id", "invalid_format")]),
        ({"tenant_id": "acme", "name": " "}, [("name", "blank")]),
        ({"name": "Acme"}, [("tenant_id", "missing_field")]),
        ({"tenant_id": "acme", "name": "Acme", "owner": "x"}, [("owner", "unknown_field")]),
    ],
)
def test_tenant_rules(document, expected):
    assert codes(validate_tenant(document)) == expected
