"""Effective values: database over environment over default, and the executor's view of them."""
from dataclasses import fields

import pytest

from executor.core.flags import FlagConfigError, ParallelFlags, flags_from_environ, parallel_decision
from executor.flag_source import DatabaseFlagSource
from rollout import services
from rollout.flags import FLAGS, InvalidFlagEnvironment, environment_values, flag_states
from rollout.status import current_flag_states

MASTER = "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED"


def state_of(name, states):
    return next(state for state in states if state.definition.name == name)


def test_definitions_match_executor_flags():
    executor_fields = {field.name: field.default for field in fields(ParallelFlags) if not field.name.endswith("_overrides")}

    assert {flag.name: flag.default for flag in FLAGS} == executor_fields


@pytest.mark.parametrize("environ", [
    {},
    {MASTER: "yes", "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "0"},
    {"EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": " tenant-1, ,tenant-2 "},
    {"EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE": "64"},
    {"EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER": "10"},
], ids=["empty", "switches", "list", "group-size", "multiplier"])
def test_environment_parsing_matches_executor(environ):
    executor_flags = flags_from_environ(environ)
    values = {state.definition.name: state.value for state in flag_states({}, environ)}

    assert values == {flag.name: getattr(executor_flags, flag.name) for flag in FLAGS}


@pytest.mark.parametrize("variable, raw", [
    (MASTER, "on"),
    ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE", "65"),
    ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE", "five"),
    ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER", "0.5"),
    ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER", "nan"),
])
def test_invalid_environment_value_names_variable(variable, raw):
    with pytest.raises(InvalidFlagEnvironment, match=variable):
        environment_values({variable: raw})
    with pytest.raises(FlagConfigError, match=variable):
        flags_from_environ({variable: raw})


@pytest.mark.django_db
def test_precedence_default_environment_database_cleared(actor):
    environ = {MASTER: "true"}
    steps = []

    steps.append(state_of("parallel_execution_enabled", current_flag_states({})))
    steps.append(state_of("parallel_execution_enabled", current_flag_states(environ)))
    services.set_flag("parallel_execution_enabled", False, actor=actor)
    steps.append(state_of("parallel_execution_enabled", current_flag_states(environ)))
    services.clear_flag("parallel_execution_enabled", actor=actor)
    steps.append(state_of("parallel_execution_enabled", current_flag_states(environ)))

    assert [(state.value, state.source) for state in steps] == [
        (False, "default"),
        (True, "environment"),
        (False, "database"),
        (True, "environment"),
    ]
    assert steps[2].environment_value is True
    assert steps[2].database_value is False


@pytest.mark.django_db
def test_empty_database_list_beats_environment_list(actor):
    environ = {"EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": "tenant-1"}
    services.set_flag("parallel_execution_tenant_allowlist", [], actor=actor, confirm_all_tenants=True)

    state = state_of("parallel_execution_tenant_allowlist", current_flag_states(environ))

    assert (state.value, state.source) == ((), "database")


@pytest.mark.django_db
def test_database_source_builds_executor_flags(actor, policies):
    services.change_flags({
        "parallel_execution_enabled": True,
        "parallel_execution_tenant_allowlist": ["acme"],
        "parallel_execution_policy_allowlist": ["acme-default"],
        "parallel_execution_max_group_size": 3,
        "parallel_execution_timeout_multiplier": 2,
    }, actor=actor)
    services.set_tenant_override("beta", True, actor=actor)
    services.set_policy_override("acme-bulk", False, actor=actor)

    flags = DatabaseFlagSource({"EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "true"}).current()

    assert flags.parallel_execution_enabled is True
    assert flags.parallel_pre_processors_enabled is True
    assert flags.parallel_execution_tenant_allowlist == ("acme",)
    assert flags.parallel_execution_policy_allowlist == ("acme-default",)
    assert flags.parallel_execution_max_group_size == 3
    assert flags.parallel_execution_timeout_multiplier == 2.0
    assert dict(flags.tenant_overrides) == {"beta": True}
    assert dict(flags.policy_overrides) == {"acme-bulk": False}


@pytest.mark.django_db
def test_database_source_reports_invalid_environment():
    source = DatabaseFlagSource({MASTER: "maybe"})

    with pytest.raises(FlagConfigError, match=MASTER):
        source.current()
    with pytest.raises(FlagConfigError, match=MASTER):
        source.check_environment()


ALL_ON = {"parallel_execution_enabled": True, "parallel_pre_processors_enabled": True}

# (flags set in the database, tenant overrides, policy overrides, tenant, policy, expected)
DECISIONS = [
    ("empty allowlist admits all", {}, {}, {}, "acme", "acme-default", True),
    ("tenant in allowlist", {"parallel_execution_tenant_allowlist": ["acme"]}, {}, {}, "acme", "acme-default", True),
    ("tenant outside allowlist", {"parallel_execution_tenant_allowlist": ["beta"]}, {}, {}, "acme", "acme-default", False),
    ("missing tenant never matches", {"parallel_execution_tenant_allowlist": ["acme"]}, {}, {}, None, "acme-default", False),
    ("empty tenant never matches", {"parallel_execution_tenant_allowlist": ["acme"]}, {}, {}, "", "acme-default", False),
    ("override on beats allowlist", {"parallel_execution_tenant_allowlist": ["beta"]}, {"acme": True}, {}, "acme", "acme-default", True),
    ("override off beats allowlist", {"parallel_execution_tenant_allowlist": ["acme"]}, {"acme": False}, {}, "acme", "acme-default", False),
    ("override off beats empty allowlist", {}, {"acme": False}, {}, "acme", "acme-default", False),
    ("policy outside allowlist", {"parallel_execution_policy_allowlist": ["acme-bulk"]}, {}, {}, "acme", "acme-default", False),
    ("policy override on", {"parallel_execution_policy_allowlist": ["acme-bulk"]}, {}, {"acme-default": True}, "acme", "acme-default", True),
    ("policy override off", {}, {}, {"acme-bulk": False}, "acme", "acme-bulk", False),
    ("stage switch off", {"parallel_pre_processors_enabled": False}, {"acme": True}, {}, "acme", "acme-default", False),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "database, tenant_overrides, policy_overrides, tenant_id, policy_id, expected",
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_allowlists_and_overrides_decide(actor, policies, database, tenant_overrides, policy_overrides,
                                         tenant_id, policy_id, expected):
    services.change_flags({**ALL_ON, **database}, actor=actor, confirm_all_tenants=True)
    for tenant, enabled in tenant_overrides.items():
        services.set_tenant_override(tenant, enabled, actor=actor)
    for policy, enabled in policy_overrides.items():
        services.set_policy_override(policy, enabled, actor=actor)

    decision = parallel_decision(DatabaseFlagSource({}).current(), tenant_id, policy_id, "pre")

    assert decision.allowed is expected


@pytest.mark.django_db
def test_master_switch_off_beats_everything(actor, policies):
    services.change_flags({
        "parallel_execution_enabled": False,
        "parallel_pre_processors_enabled": True,
        "parallel_validators_enabled": True,
        "parallel_post_processors_enabled": True,
        "parallel_execution_tenant_allowlist": ["acme"],
        "parallel_execution_policy_allowlist": ["acme-default"],
    }, actor=actor)
    services.set_tenant_override("acme", True, actor=actor)
    services.set_tenant_override("beta", True, actor=actor)
    services.set_policy_override("acme-default", True, actor=actor)
    environ = {MASTER: "true"}

    flags = DatabaseFlagSource(environ).current()

    decisions = [
        parallel_decision(flags, tenant, policy, stage)
        for tenant in ("acme", "beta", "gamma", None)
        for policy in ("acme-default", "acme-bulk")
        for stage in ("pre", "validators", "post")
    ]
    assert {decision.allowed for decision in decisions} == {False}
    assert {decision.reason for decision in decisions} == {"master switch off"}
