"""The plan builder: barriers, levels, group splits, ids and reasons, and dependency errors."""
import hashlib

import pytest

from executor.core.errors import PlanError
from executor.core.flags import ParallelFlags
from executor.core.plan import build_plan, group_id_for
from registry.dependencies import StepDependencies, find_dependency_errors

from .helpers import ALL_OFF, ALL_ON, extension, policy, step, validator_step


def extensions_of(*extension_ids, **options):
    return {extension_id: extension(extension_id, **options) for extension_id in extension_ids}


def groups_of(plan, stage_index=0):
    return [
        (group.execution_mode, group.dependency_level, [member.step.id for member in group.members])
        for group in plan.stages[stage_index].groups
    ]


def test_dependency_graph_without_cycles():
    stage = policy([step("a"), step("b"), step("c", ("a",)), step("d", ("c", "b"))])

    plan = build_plan(stage, extensions_of("a", "b", "c", "d"), ALL_ON, "t1", ["pre"])

    assert groups_of(plan) == [
        ("parallel", 0, ["a", "b"]),
        ("sequential", 1, ["c"]),
        ("sequential", 2, ["d"]),
    ]


def test_dependency_graph_with_cycle_is_error():
    stage = policy([step("a", ("c",)), step("b", ("a",)), step("c", ("b",))])

    with pytest.raises(PlanError) as raised:
        build_plan(stage, extensions_of("a", "b", "c"), ALL_ON, "t1", ["pre"])

    assert "cycle" in str(raised.value)
    for step_id in ("a", "b", "c"):
        assert repr(step_id) in str(raised.value) or step_id in str(raised.value)
    assert raised.value.stage == "pre"


def test_dependency_graph_with_missing_dependency_is_error():
    stage = policy([step("a"), step("b", ("ghost",))])

    with pytest.raises(PlanError) as raised:
        build_plan(stage, extensions_of("a", "b"), ALL_ON, "t1", ["pre"])

    assert "'b'" in str(raised.value)
    assert "'ghost'" in str(raised.value)
    errors = find_dependency_errors([StepDependencies("a", ()), StepDependencies("b", ("ghost",))])
    assert [error.code for error in errors] == ["unknown_dependency"]


def test_plan_independent_steps_form_one_parallel_group():
    plan = build_plan(policy([step("a"), step("b"), step("c")]), extensions_of("a", "b", "c"), ALL_ON, "t1",
                      ["pre"])

    group = plan.stages[0].groups[0]
    assert groups_of(plan) == [("parallel", 0, ["a", "b", "c"])]
    assert group.group_id == group_id_for(["a", "b", "c"])
    assert [member.reason for member in group.members] == ["parallel group, level 0"] * 3


def test_plan_barriers_split_stretches():
    extensions = extensions_of("a", "b", "d", "e")
    extensions["c"] = extension("c", side_effect_free=False)
    stage = policy([step("a"), step("b"), step("c"), step("d"), step("e")])

    plan = build_plan(stage, extensions, ALL_ON, "t1", ["pre"])

    assert groups_of(plan) == [
        ("parallel", 0, ["a", "b"]),
        ("sequential", 0, ["c"]),
        ("parallel", 0, ["d", "e"]),
    ]
    assert plan.stages[0].groups[1].members[0].reason == "not side-effect free"


def test_plan_missing_depends_on_is_barrier():
    stage = policy([step("a"), step("b", None), step("c")])

    plan = build_plan(stage, extensions_of("a", "b", "c"), ALL_ON, "t1", ["pre"])

    assert groups_of(plan) == [
        ("sequential", 0, ["a"]),
        ("sequential", 0, ["b"]),
        ("sequential", 0, ["c"]),
    ]
    assert plan.stages[0].groups[0].members[0].reason == "only step at level 0"
    assert plan.stages[0].groups[1].members[0].reason == "no depends_on"


def test_plan_levels_follow_depends_on_within_stretch():
    stage = policy([step("a"), step("b", ("a",)), step("c"), step("d", ("b",)), step("e", ("a",))])

    plan = build_plan(stage, extensions_of("a", "b", "c", "d", "e"), ALL_ON, "t1", ["pre"])

    assert groups_of(plan) == [
        ("parallel", 0, ["a", "c"]),
        ("parallel", 1, ["b", "e"]),
        ("sequential", 2, ["d"]),
    ]
    assert plan.stages[0].groups[1].members[0].reason == "parallel group, level 1"


def test_plan_dependency_on_earlier_stretch_is_level_zero():
    extensions = extensions_of("a", "c", "d")
    extensions["b"] = extension("b", side_effect_free=False)
    stage = policy([step("a"), step("b"), step("c", ("a",)), step("d", ("a",))])

    plan = build_plan(stage, extensions, ALL_ON, "t1", ["pre"])

    assert groups_of(plan) == [
        ("sequential", 0, ["a"]),
        ("sequential", 0, ["b"]),
        ("parallel", 0, ["c", "d"]),
    ]


def test_plan_splits_level_by_max_group_size():
    ids = [f"ext_{index}" for index in range(7)]
    flags = ParallelFlags(True, True, parallel_execution_max_group_size=3)

    plan = build_plan(policy([step(item) for item in ids]), extensions_of(*ids), flags, "t1", ["pre"])

    assert groups_of(plan) == [
        ("parallel", 0, ids[0:3]),
        ("parallel", 0, ids[3:6]),
        ("sequential", 0, ids[6:7]),
    ]
    assert plan.stages[0].groups[0].members[0].reason == "parallel group, level 0, split by max group size 3"
    assert plan.stages[0].groups[2].members[0].reason == "only step at level 0, split by max group size 3"


def test_plan_flags_off_makes_every_step_sequential():
    plan = build_plan(policy([step("a"), step("b")]), extensions_of("a", "b"), ALL_OFF, "t1", ["pre"])

    assert groups_of(plan) == [("sequential", 0, ["a"]), ("sequential", 0, ["b"])]
    assert plan.stages[0].groups[0].members[0].reason == "parallel execution off: master switch off"
    assert plan.stages[0].decision.allowed is False


def test_plan_tenant_outside_allowlist_is_sequential():
    flags = ParallelFlags(True, True, parallel_execution_tenant_allowlist=("vip",))

    plan = build_plan(policy([step("a"), step("b")]), extensions_of("a", "b"), flags, "t1", ["pre"])

    assert groups_of(plan) == [("sequential", 0, ["a"]), ("sequential", 0, ["b"])]
    assert plan.stages[0].groups[0].members[0].reason == "parallel execution off: tenant not in allowlist"


def test_plan_sequential_order_moves_steps_only_as_needed():
    stage = policy([step("b", ("a",)), step("c", None), step("a")])

    plan = build_plan(stage, extensions_of("a", "b", "c"), ALL_OFF, "t1", ["pre"])

    assert [group.members[0].step.id for group in plan.stages[0].groups] == ["c", "a", "b"]


def test_plan_unknown_and_disabled_extensions_are_barriers():
    extensions = extensions_of("a", "b")
    extensions["off"] = extension("off", enabled=False)
    stage = policy([step("a"), step("ghost"), step("off"), step("b")])

    plan = build_plan(stage, extensions, ALL_ON, "t1", ["pre"])

    reasons = [group.members[0].reason for group in plan.stages[0].groups]
    assert reasons == ["only step at level 0", "unknown extension", "extension disabled", "only step at level 0"]


def test_plan_group_id_is_stable_and_order_sensitive():
    first = build_plan(policy([step("a"), step("b")]), extensions_of("a", "b"), ALL_ON, "t1", ["pre"])
    second = build_plan(policy([step("a"), step("b")]), extensions_of("a", "b"), ALL_ON, "t2", ["pre"])

    assert first.stages[0].groups[0].group_id == second.stages[0].groups[0].group_id
    assert len(first.stages[0].groups[0].group_id) == 12
    assert group_id_for(["a", "b"]) == hashlib.sha256(b"a,b").hexdigest()[:12]
    assert group_id_for(["a", "b"]) != group_id_for(["b", "a"])


def test_plan_as_dict_shape():
    validators = [validator_step("v1", on_fail="warn"), validator_step("v2", None)]
    extensions = extensions_of("a")
    extensions.update({
        "v1": extension("v1", type="validator"),
        "v2": extension("v2", type="validator"),
    })

    plan = build_plan(policy([step("a")], validators), extensions, ALL_ON, "t1", ["pre", "validators"])
    body = plan.as_dict()

    assert body["policy_id"] == "p1"
    assert body["tenant_id"] == "t1"
    assert [stage["stage"] for stage in body["stages"]] == ["pre", "validators"]
    assert body["stages"][0]["parallel_allowed"] is True
    assert body["stages"][1]["groups"][0]["members"][0] == {
        "id": "v1", "reason": "only step at level 0", "on_fail": "warn", "depends_on": [], "side_effect_free": True,
    }
    assert body["stages"][1]["groups"][1]["members"][0]["depends_on"] is None
    assert body["stages"][1]["groups"][1]["members"][0]["reason"] == "no depends_on"
