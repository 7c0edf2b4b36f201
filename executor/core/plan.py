"""The execution plan: which steps of a policy run alone and which run together, and why.

Rules, per stage:

- A step may join a parallel group only when parallel execution is on for the tenant, the
  policy and the stage, its extension's active version is side-effect free, and it declares
  ``depends_on`` (an empty list counts). Any other step is a barrier and runs alone.
- Steps run in the declared order, moved only as far as ``depends_on`` requires
  (``registry.dependencies.sequential_order``). Barriers split that order into stretches.
- Inside a stretch, level 0 contains the steps that depend on nothing in the stretch and level N
  the steps whose latest dependency in the stretch is at level N-1. Each level becomes one
  group, split in declared order when it is larger than the max group size.
- A group of two or more steps has ``execution_mode`` ``parallel``. A group of one step is
  ``sequential`` whether it is a barrier or the only eligible step at its level, because
  nothing runs beside it; its reason tells the two apart. A barrier is a stretch of its own,
  so its ``dependency_level`` is 0.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from executor.core.errors import PlanError
from executor.core.flags import ParallelDecision, ParallelFlags, parallel_decision
from executor.core.model import EXTENSION_TYPE_BY_STAGE, STAGES, ExtensionSpec, PolicySpec, StepSpec
from registry.dependencies import StepDependencies, find_dependency_errors, sequential_order

PARALLEL = "parallel"
SEQUENTIAL = "sequential"


@dataclass(frozen=True)
class PlannedStep:
    """A step in its group, with its extension (``None`` when unknown) and why it runs there."""

    step: StepSpec
    extension: ExtensionSpec | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Return the step as it appears in the plan endpoint's JSON."""
        entry: dict[str, Any] = {"id": self.step.id, "reason": self.reason}
        if self.step.mode is not None:
            entry["mode"] = self.step.mode
        if self.step.on_fail is not None:
            entry["on_fail"] = self.step.on_fail
        entry["depends_on"] = None if self.step.depends_on is None else list(self.step.depends_on)
        entry["side_effect_free"] = None if self.extension is None else self.extension.side_effect_free
        return entry


@dataclass(frozen=True)
class PlannedGroup:
    """Steps that start together; a ``sequential`` group has exactly one."""

    group_id: str
    execution_mode: str
    dependency_level: int
    members: tuple[PlannedStep, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the group as it appears in the plan endpoint's JSON."""
        return {
            "group_id": self.group_id,
            "execution_mode": self.execution_mode,
            "dependency_level": self.dependency_level,
            "members": [member.as_dict() for member in self.members],
        }


@dataclass(frozen=True)
class StagePlan:
    """One stage's groups in the order they run, and the flag decision behind them."""

    stage: str
    decision: ParallelDecision
    groups: tuple[PlannedGroup, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the stage as it appears in the plan endpoint's JSON."""
        return {
            "stage": self.stage,
            "parallel_allowed": self.decision.allowed,
            "parallel_reason": self.decision.reason,
            "groups": [group.as_dict() for group in self.groups],
        }


@dataclass(frozen=True)
class ExecutionPlan:
    """The plan of the requested stages of one policy for one tenant."""

    policy_id: str
    tenant_id: str | None
    stages: tuple[StagePlan, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON of ``GET /api/v1/policies/{policy_id}/plan?tenant_id=...``."""
        return {
            "policy_id": self.policy_id,
            "tenant_id": self.tenant_id,
            "stages": [stage.as_dict() for stage in self.stages],
        }


def group_id_for(extension_ids: Iterable[str]) -> str:
    """Return the first 12 hex digits of the SHA-256 of the ids joined by commas."""
    joined = ",".join(extension_ids)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def build_plan(policy: PolicySpec, extensions: Mapping[str, ExtensionSpec], flags: ParallelFlags,
               tenant_id: str | None, stages: Sequence[str] = STAGES) -> ExecutionPlan:
    """Plan ``stages`` of ``policy`` for ``tenant_id`` under ``flags``.

    Raises ``PlanError`` naming the steps when a stage has a duplicate step id, a cycle or a
    dependency on a step outside the stage, and ``ValueError`` for an unknown stage name.
    """
    stage_plans = tuple(
        build_stage_plan(policy, extensions, flags, tenant_id, stage) for stage in stages
    )
    return ExecutionPlan(policy_id=policy.policy_id, tenant_id=tenant_id, stages=stage_plans)


def build_stage_plan(policy: PolicySpec, extensions: Mapping[str, ExtensionSpec], flags: ParallelFlags,
                     tenant_id: str | None, stage: str) -> StagePlan:
    """Plan one stage of ``policy``; see ``build_plan`` for the errors."""
    decision = parallel_decision(flags, tenant_id, policy.policy_id, stage)
    steps = tuple(policy.stages.get(stage, ()))
    ordered = _ordered_steps(stage, steps)

    groups: list[PlannedGroup] = []
    stretch: list[StepSpec] = []
    for step in ordered:
        extension = extensions.get(step.id)
        barrier_reason = _barrier_reason(stage, step, extension, decision)
        if barrier_reason is None:
            stretch.append(step)
            continue
        groups += _stretch_groups(stretch, extensions, steps, flags.parallel_execution_max_group_size)
        stretch = []
        groups.append(_single_group(PlannedStep(step, extension, barrier_reason), level=0))
    groups += _stretch_groups(stretch, extensions, steps, flags.parallel_execution_max_group_size)

    return StagePlan(stage=stage, decision=decision, groups=tuple(groups))


def _ordered_steps(stage: str, steps: tuple[StepSpec, ...]) -> list[StepSpec]:
    dependencies = [StepDependencies(step.id, step.depends_on) for step in steps]
    errors = find_dependency_errors(dependencies)
    if errors:
        raise PlanError(stage, [error.message for error in errors])

    by_id = {step.id: step for step in steps}
    return [by_id[step_id] for step_id in sequential_order(dependencies)]


def _barrier_reason(stage: str, step: StepSpec, extension: ExtensionSpec | None,
                    decision: ParallelDecision) -> str | None:
    if not decision.allowed:
        return f"parallel execution off: {decision.reason}"
    if extension is None:
        return "unknown extension"
    if not extension.enabled:
        return "extension disabled"
    if extension.type != EXTENSION_TYPE_BY_STAGE[stage]:
        return f"extension type {extension.type} does not belong in stage {stage}"
    if not extension.side_effect_free:
        return "not side-effect free"
    if step.depends_on is None:
        return "no depends_on"
    return None


def _stretch_groups(stretch: list[StepSpec], extensions: Mapping[str, ExtensionSpec],
                    declared: tuple[StepSpec, ...], max_group_size: int) -> list[PlannedGroup]:
    if not stretch:
        return []

    declared_position = {step.id: index for index, step in enumerate(declared)}
    levels = _levels(stretch)
    groups: list[PlannedGroup] = []
    for level, steps in enumerate(levels):
        steps.sort(key=lambda step: declared_position[step.id])
        chunks = [steps[start:start + max_group_size] for start in range(0, len(steps), max_group_size)]
        split = len(chunks) > 1
        for chunk in chunks:
            groups.append(_level_group(chunk, extensions, level, split, max_group_size))
    return groups


def _levels(stretch: list[StepSpec]) -> list[list[StepSpec]]:
    # The stretch is in sequential order, so every dependency inside it comes first.
    level_of: dict[str, int] = {}
    levels: list[list[StepSpec]] = []
    for step in stretch:
        inside = [level_of[dependency] for dependency in step.depends_on or () if dependency in level_of]
        level = max(inside) + 1 if inside else 0
        level_of[step.id] = level
        if level == len(levels):
            levels.append([])
        levels[level].append(step)
    return levels


def _level_group(chunk: list[StepSpec], extensions: Mapping[str, ExtensionSpec], level: int,
                 split: bool, max_group_size: int) -> PlannedGroup:
    if len(chunk) == 1:
        reason = f"only step at level {level}"
    else:
        reason = f"parallel group, level {level}"
    if split:
        reason += f", split by max group size {max_group_size}"

    members = tuple(PlannedStep(step, extensions[step.id], reason) for step in chunk)
    if len(members) == 1:
        return _single_group(members[0], level)
    return PlannedGroup(
        group_id=group_id_for(step.id for step in chunk),
        execution_mode=PARALLEL,
        dependency_level=level,
        members=members,
    )


def _single_group(member: PlannedStep, level: int) -> PlannedGroup:
    return PlannedGroup(
        group_id=group_id_for([member.step.id]),
        execution_mode=SEQUENTIAL,
        dependency_level=level,
        members=(member,),
    )
