"""Evidence rows and rollouts for the rollout tests, written straight to the tables."""
from datetime import timedelta

from django.utils import timezone

from rollout import rollouts
from rollout.models import EvidenceWindow, FlagChange
from rollout.services import Actor

OPS_ACTOR = Actor("olga", FlagChange.Through.COMMAND)
INTERNAL = ["tenant-internal"]
CANARIES = [f"tenant-canary-{n}" for n in range(1, 11)]


def seed_window(tenant_id, mode, count, *, errors=0, latency_ms=50, policy_id="policy-a", stage="pre",
                start=None, conflicts=0, compared=0, mismatches=0):
    """One evidence window with every execution in the latency bucket of ``latency_ms`` (a bucket bound)."""
    return EvidenceWindow.objects.create(
        window_start=start or timezone.now() + timedelta(seconds=1), window_seconds=10, tenant_id=tenant_id,
        policy_id=policy_id, stage=stage, execution_mode=mode, count=count,
        error_counts={"timeout": errors} if errors else {}, latency_buckets={f"{latency_ms:g}": count},
        latency_sum_ms=float(latency_ms * count), conflicts=conflicts, shadow_compared=compared,
        shadow_mismatches=mismatches,
    )


def seed_healthy(tenant_id, *, start=None, policy_id="policy-a"):
    """Parallel executions of ``tenant_id`` twice as fast as a sequential baseline, with clean shadows."""
    seed_window(tenant_id, "parallel", 200, latency_ms=25, start=start, compared=20, policy_id=policy_id)
    seed_window("tenant-baseline", "sequential", 200, latency_ms=60, start=start, policy_id="policy-baseline")


def start(**kwargs):
    return rollouts.start_rollout("pre", internal_tenants=INTERNAL, canary_tenants=CANARIES,
                                  actor=OPS_ACTOR, **kwargs)


def walk_to_phase(rollout, number):
    """Advance ``rollout`` by override to phase ``number``."""
    while rollout.current_phase < number:
        rollout = rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="Set up by the test.")
    return rollout
