"""Build the executor core's ``Snapshot`` from the registry's models.

This is the one place where the executor reads the database: at start-up, after a change
notice and when the polled revision moves. Pipelines only ever read the snapshot.
"""
from __future__ import annotations

from executor.core.flags import FlagSource
from executor.core.model import STAGES, ExtensionSpec, PolicySpec, Snapshot, StepSpec
from registry.documents import extensions_with_active_version, policies_with_steps
from registry.models import Extension, PolicyStep, RoutingPolicy
from registry.revision import current_revision


def load_snapshot(flag_source: FlagSource) -> Snapshot:
    """Read every extension, policy and the flags into one snapshot.

    The revision is read first: a change that commits while the rest is read leaves the
    snapshot stamped with the older revision, so the next poll loads it again.
    """
    revision = current_revision()
    extensions = [extension_spec(extension) for extension in extensions_with_active_version()]
    policies = [policy_spec(policy) for policy in policies_with_steps()]
    return Snapshot(
        revision=revision,
        extensions={spec.id: spec for spec in extensions if spec is not None},
        policies={spec.policy_id: spec for spec in policies},
        flags=flag_source.current(),
    )


def extension_spec(extension: Extension) -> ExtensionSpec | None:
    """Return how the executor calls ``extension``, or None when it has no active version.

    A version that claims to be side-effect free but failed the determinism probe is planned
    as having side effects until a later probe passes.
    """
    version = extension.active_version
    if version is None:
        return None

    return ExtensionSpec(
        id=extension.extension_id,
        type=extension.type,
        subject=version.subject,
        timeout_ms=version.timeout_ms,
        retry=version.retry,
        side_effect_free=version.effectively_side_effect_free,
        enabled=extension.enabled,
    )


def policy_spec(policy: RoutingPolicy) -> PolicySpec:
    """Return ``policy``'s stages as the executor runs them, steps in declared order."""
    steps_by_stage: dict[str, list[StepSpec]] = {stage: [] for stage in STAGES}
    for step in sorted(policy.steps.all(), key=lambda step: step.position):
        steps_by_stage[step.stage].append(step_spec(step))

    return PolicySpec(
        policy_id=policy.policy_id,
        tenant_id=policy.tenant.tenant_id,
        stages={stage: tuple(steps) for stage, steps in steps_by_stage.items()},
    )


def step_spec(step: PolicyStep) -> StepSpec:
    return StepSpec(
        id=step.extension_id,
        mode=step.mode or None,
        on_fail=step.on_fail or None,
        depends_on=None if step.depends_on is None else tuple(step.depends_on),
        config=step.config,
    )
