"""The four rollout phases: name, planned duration, actions checklist and success criteria.

Phase 1 (development and testing) has no traffic to judge, so it passes only by an override
whose reason names the test run. Phases 2 to 4 pass on recorded evidence: every rollback
trigger ``pass`` and the latency reduction reached, each with enough samples.
"""
from __future__ import annotations

from dataclasses import dataclass

STAGE_FLAGS = {
    "pre": "parallel_pre_processors_enabled",
    "validators": "parallel_validators_enabled",
    "post": "parallel_post_processors_enabled",
}


@dataclass(frozen=True)
class PhaseDefinition:
    """One phase as planned."""

    number: int
    name: str
    planned_duration: str
    actions: tuple[str, ...]
    success_criteria: tuple[str, ...]
    judged_on_evidence: bool


PHASES: tuple[PhaseDefinition, ...] = (
    PhaseDefinition(
        1, "Development and testing", "2-3 weeks",
        (
            "Implement the parallel execution framework (dependency graph, parallel spawn)",
            "Add the side_effect_free metadata field to the extension registry",
            "Add the depends_on field to the policy schema",
            "Implement the feature flags (configuration and runtime)",
            "Add observability (metrics, traces, logs)",
            "Unit tests for parallel execution",
            "Integration tests with 2-3 independent pre-processors",
            "Chaos tests (failures, timeouts, race conditions)",
        ),
        (
            "All tests pass",
            "No functional regressions",
            "Observability works",
            "Feature flags work",
        ),
        judged_on_evidence=False,
    ),
    PhaseDefinition(
        2, "Internal testing", "1-2 weeks",
        (
            "Enable parallel execution for the internal test tenant",
            "Monitor metrics and logs for 1 week",
            "Compare results with sequential execution (A/B test)",
            "Validate the latency reduction (50-70 %)",
            "Validate no race conditions or functional regressions",
        ),
        (
            "Latency reduction achieved (50-70 %)",
            "No race conditions observed",
            "No functional regressions",
            "Observability clear and debuggable",
        ),
        judged_on_evidence=True,
    ),
    PhaseDefinition(
        3, "Canary rollout", "2-3 weeks",
        (
            "Enable parallel execution for 1-2 production tenants (low traffic)",
            "Monitor metrics and logs for 1 week",
            "Compare results with sequential execution (A/B test)",
            "Validate the latency reduction and error rates",
            "Expand gradually to 5-10 tenants",
        ),
        (
            "Latency reduction achieved (50-70 %)",
            "Error rates unchanged or improved",
            "No customer complaints",
            "Observability clear and debuggable",
        ),
        judged_on_evidence=True,
    ),
    PhaseDefinition(
        4, "Full rollout", "2-4 weeks",
        (
            "Enable parallel execution for all tenants (through the feature flag)",
            "Monitor metrics and logs for 2 weeks",
            "Validate the latency reduction and error rates",
            "Document the lessons learned",
        ),
        (
            "Latency reduction achieved (50-70 %)",
            "Error rates unchanged or improved",
            "No customer complaints",
            "Full observability coverage",
        ),
        judged_on_evidence=True,
    ),
)
PHASES_BY_NUMBER = {phase.number: phase for phase in PHASES}
LAST_PHASE = PHASES[-1].number
CANARY_PHASE = 3
