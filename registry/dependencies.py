"""The dependency graph of one pipeline stage, in plain Python.

Policy validation uses it to reject bad ``depends_on`` declarations, and the executor's
plan builder uses it to order steps. It imports nothing from Django so the executor's core
can use it on its own.
"""
from __future__ import annotations

import graphlib
import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepDependencies:
    """A step's id and its declared ``depends_on``; ``None`` means it declared none."""

    step_id: str
    depends_on: tuple[str, ...] | None


@dataclass(frozen=True)
class DependencyError:
    """One problem in a stage's dependencies, naming the steps involved."""

    code: str
    step_id: str
    message: str
    step_ids: tuple[str, ...]


def find_dependency_errors(steps: Sequence[StepDependencies]) -> list[DependencyError]:
    """Return every duplicate, self-dependency, unknown dependency and cycle among ``steps``."""
    errors = _duplicate_errors(steps)
    errors += _declaration_errors(steps)
    if errors:
        return errors

    cycle = _find_cycle(steps)
    if cycle:
        path = " → ".join(cycle)
        errors.append(
            DependencyError(
                code="dependency_cycle",
                step_id=cycle[0],
                message=f"depends_on forms a cycle: {path}.",
                step_ids=tuple(dict.fromkeys(cycle)),
            )
        )
    return errors


def sequential_order(steps: Sequence[StepDependencies]) -> list[str]:
    """Return the step ids in declared order, each moved only as far as its dependencies require.

    Raises ``ValueError`` when the steps have dependency errors; validate them first.
    """
    errors = find_dependency_errors(steps)
    if errors:
        raise ValueError(errors[0].message)

    position = {step.step_id: index for index, step in enumerate(steps)}
    sorter = graphlib.TopologicalSorter({step.step_id: step.depends_on or () for step in steps})
    sorter.prepare()

    ready: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for step_id in sorter.get_ready():
            heapq.heappush(ready, (position[step_id], step_id))
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        sorter.done(step_id)
    return order


def _duplicate_errors(steps: Sequence[StepDependencies]) -> list[DependencyError]:
    counts = Counter(step.step_id for step in steps)
    return [
        DependencyError(
            code="duplicate_step",
            step_id=step_id,
            message=f"Step id {step_id!r} appears {count} times; each step id may appear once per stage.",
            step_ids=(step_id,),
        )
        for step_id, count in counts.items()
        if count > 1
    ]


def _declaration_errors(steps: Sequence[StepDependencies]) -> list[DependencyError]:
    # graphlib accepts predecessors it has never seen as new nodes, so unknown
    # dependencies must be caught before it runs.
    known = {step.step_id for step in steps}
    errors = []
    for step in steps:
        for dependency in step.depends_on or ():
            if dependency == step.step_id:
                errors.append(
                    DependencyError(
                        code="self_dependency",
                        step_id=step.step_id,
                        message=f"Step {step.step_id!r} depends on itself.",
                        step_ids=(step.step_id,),
                    )
                )
            elif dependency not in known:
                errors.append(
                    DependencyError(
                        code="unknown_dependency",
                        step_id=step.step_id,
                        message=(
                            f"Step {step.step_id!r} depends on {dependency!r}, which is not a step "
                            "of the same stage."
                        ),
                        step_ids=(step.step_id, dependency),
                    )
                )
    return errors


def _find_cycle(steps: Sequence[StepDependencies]) -> list[str]:
    sorter = graphlib.TopologicalSorter({step.step_id: step.depends_on or () for step in steps})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        # graphlib reports the cycle with each node before the one it depends on, ending where
        # it started; reversed, it reads in the direction of depends_on.
        return list(reversed(error.args[1]))
    return []
