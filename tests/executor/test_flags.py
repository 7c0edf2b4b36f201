"""Parallel-execution flags: environment parsing and the per-stage decision."""
import pytest

from executor.core.flags import (
    EnvironmentFlagSource,
    FlagConfigError,
    ParallelFlags,
    flags_from_environ,
    parallel_decision,
)

ON = ParallelFlags(parallel_execution_enabled=True, parallel_pre_processors_enabled=True)


def test_flags_default_all_off():
    flags = flags_from_environ({})

    assert flags == ParallelFlags()
    assert flags.parallel_execution_enabled is False
    assert flags.parallel_execution_max_group_size == 5
    assert flags.parallel_execution_timeout_multiplier == 1.5


def test_flags_parse_every_variable():
    flags = flags_from_environ({
        "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "TRUE",
        "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "yes",
        "EXTENSION_PIPELINE_PARALLEL_VALIDATORS_ENABLED": "1",
        "EXTENSION_PIPELINE_PARALLEL_POST_PROCESSORS_ENABLED": "No",
        "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": " tenant-1, ,tenant-2 ,",
        "EXTENSION_PIPELINE_PARALLEL_EXECUTION_POLICY_ALLOWLIST": "policy-1",
        "EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE": " 8 ",
        "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER": "2.5",
    })

    assert flags.parallel_execution_enabled is True
    assert flags.parallel_pre_processors_enabled is True
    assert flags.parallel_validators_enabled is True
    assert flags.parallel_post_processors_enabled is False
    assert flags.parallel_execution_tenant_allowlist == ("tenant-1", "tenant-2")
    assert flags.parallel_execution_policy_allowlist == ("policy-1",)
    assert flags.parallel_execution_max_group_size == 8
    assert flags.parallel_execution_timeout_multiplier == 2.5


@pytest.mark.parametrize(
    ("variable", "value", "expected_text"),
    [
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED", "on", "true, false, 1, 0, yes or no"),
        ("EXTENSION_PIPELINE_PARALLEL_VALIDATORS_ENABLED", "", "true, false, 1, 0, yes or no"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE", "five", "whole number from 1 to 64"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE", "0", "whole number from 1 to 64"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_MAX_GROUP_SIZE", "65", "whole number from 1 to 64"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER", "fast", "number from 1.0 to 10.0"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER", "0.5", "number from 1.0 to 10.0"),
        ("EXTENSION_PIPELINE_PARALLEL_EXECUTION_TIMEOUT_MULTIPLIER", "nan", "number from 1.0 to 10.0"),
    ],
    ids=["switch-word", "switch-empty", "size-text", "size-zero", "size-too-big", "multiplier-text",
         "multiplier-too-small", "multiplier-nan"],
)
def test_flags_reject_bad_value(variable, value, expected_text):
    with pytest.raises(FlagConfigError) as raised:
        flags_from_environ({variable: value})

    assert variable in str(raised.value)
    assert expected_text in str(raised.value)


def test_environment_flag_source_reads_current_values():
    environ = {"EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "false"}
    source = EnvironmentFlagSource(environ)
    assert source.current().parallel_execution_enabled is False

    environ["EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED"] = "true"

    assert source.current().parallel_execution_enabled is True


@pytest.mark.parametrize(
    ("flags", "tenant_id", "policy_id", "stage", "allowed", "reason"),
    [
        (ParallelFlags(), "t1", "p1", "pre", False, "master switch off"),
        (ON, "t1", "p1", "validators", False, "stage switch off"),
        (ON, "t1", "p1", "pre", True, "parallel execution on"),
        (ParallelFlags(True, True, parallel_execution_tenant_allowlist=("t2",)), "t1", "p1", "pre",
         False, "tenant not in allowlist"),
        (ParallelFlags(True, True, parallel_execution_tenant_allowlist=("t1",)), "t1", "p1", "pre",
         True, "parallel execution on"),
        (ParallelFlags(True, True, parallel_execution_tenant_allowlist=("t1",)), "", "p1", "pre",
         False, "tenant id missing"),
        (ParallelFlags(True, True, parallel_execution_tenant_allowlist=("t2",), tenant_overrides={"t1": True}),
         "t1", "p1", "pre", True, "parallel execution on"),
        (ParallelFlags(True, True, tenant_overrides={"t1": False}), "t1", "p1", "pre",
         False, "tenant disabled by override"),
        (ParallelFlags(True, True, parallel_execution_policy_allowlist=("p2",)), "t1", "p1", "pre",
         False, "policy not in allowlist"),
        (ParallelFlags(True, True, policy_overrides={"p1": False}), "t1", "p1", "pre",
         False, "policy disabled by override"),
    ],
    ids=["master-off", "stage-off", "on", "tenant-not-listed", "tenant-listed", "tenant-missing",
         "tenant-override-on-beats-allowlist", "tenant-override-off", "policy-not-listed", "policy-override-off"],
)
def test_parallel_decision(flags, tenant_id, policy_id, stage, allowed, reason):
    decision = parallel_decision(flags, tenant_id, policy_id, stage)

    assert decision.allowed is allowed
    assert decision.reason == reason


def test_parallel_decision_maps_each_stage_to_its_switch():
    flags = ParallelFlags(parallel_execution_enabled=True, parallel_post_processors_enabled=True)

    assert parallel_decision(flags, "t1", "p1", "post").allowed is True
    assert parallel_decision(flags, "t1", "p1", "pre").allowed is False
    assert parallel_decision(flags, "t1", "p1", "validators").allowed is False
    with pytest.raises(ValueError, match="Unknown stage"):
        parallel_decision(flags, "t1", "p1", "provider")
