"""The rollout's tables: flag overrides, tenant and policy overrides, and the audit trail.

Every write goes through ``rollout.services``, which validates it, records it in the audit
trail and bumps the registry revision so that running executors reload.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from rollout.flags import FLAGS


class FlagOverride(models.Model):
    """A database value for one flag; it beats the environment. Clearing the override deletes the row."""

    name = models.CharField(max_length=64, unique=True, choices=[(flag.name, flag.name) for flag in FLAGS])
    value = models.JSONField(help_text="The flag's value: true or false, a list of ids, or a number.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "parallel execution flag"

    def __str__(self) -> str:
        return f"{self.name} = {self.value!r}"


class TenantOverride(models.Model):
    """Parallel execution on or off for one tenant, overriding the tenant allowlist."""

    tenant_id = models.CharField(max_length=100, unique=True, help_text="The tenant's id as the router sends it.")
    enabled = models.BooleanField(help_text="On: the tenant gets parallel execution even outside the allowlist.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant_id"]
        verbose_name = "tenant override"

    def __str__(self) -> str:
        return f"{self.tenant_id}: {'enabled' if self.enabled else 'disabled'}"


class PolicyOverride(models.Model):
    """Parallel execution on or off for one routing policy, overriding the policy allowlist."""

    policy_id = models.CharField(max_length=200, unique=True, help_text="The routing policy's id.")
    enabled = models.BooleanField(help_text="On: the policy gets parallel execution even outside the allowlist.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["policy_id"]
        verbose_name = "policy override"

    def __str__(self) -> str:
        return f"{self.policy_id}: {'enabled' if self.enabled else 'disabled'}"


class FlagChange(models.Model):
    """One entry of the audit trail: a change of a flag, a tenant override or a policy override.

    Entries are only ever added. ``old_value`` and ``new_value`` are the database values before
    and after the change; null means no database value, so the environment or the default applies.
    """

    class Through(models.TextChoices):
        ADMIN = "admin", "admin"
        API = "api", "API"
        COMMAND = "command", "management command"
        AUTOMATIC_ROLLBACK = "automatic_rollback", "automatic rollback"

    class TargetType(models.TextChoices):
        FLAG = "flag", "flag"
        TENANT = "tenant", "tenant override"
        POLICY = "policy", "policy override"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="The user name, API token name or process that made the change.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    through = models.CharField(max_length=32, choices=Through.choices)
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target = models.CharField(max_length=200, help_text="The flag name, tenant id or policy id.")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    revision = models.BigIntegerField(help_text="The registry revision the change produced.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "flag change"
        indexes = [models.Index(fields=["target_type", "target"])]

    def __str__(self) -> str:
        return f"{self.target}: {self.old_value!r} -> {self.new_value!r} by {self.actor}"


class EvidenceWindow(models.Model):
    """One executor's figures for one window of one tenant, policy, stage and execution mode.

    Several executors write rows for the same window; readers sum them (``rollout.evidence``).
    ``latency_buckets`` maps each histogram bucket's upper bound in ms (``"inf"`` for the last)
    to its count; only buckets with a count are stored.
    """

    window_start = models.DateTimeField()
    window_seconds = models.PositiveIntegerField()
    tenant_id = models.CharField(max_length=100)
    policy_id = models.CharField(max_length=200)
    stage = models.CharField(max_length=16)
    execution_mode = models.CharField(max_length=16)
    count = models.PositiveIntegerField(help_text="Executions of the stage in the window.")
    error_counts = models.JSONField(default=dict, help_text="Failed executions by error type.")
    latency_buckets = models.JSONField(default=dict)
    latency_sum_ms = models.FloatField(default=0.0)
    conflicts = models.PositiveIntegerField(default=0, help_text="Conflicting writes in parallel groups.")
    shadow_compared = models.PositiveIntegerField(default=0, help_text="Shadow comparisons with sequential.")
    shadow_mismatches = models.PositiveIntegerField(default=0, help_text="Shadow comparisons that differed.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-window_start", "id"]
        verbose_name = "evidence window"
        indexes = [
            models.Index(fields=["stage", "window_start"]),
            models.Index(fields=["tenant_id", "window_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.execution_mode} {self.tenant_id}/{self.policy_id} at {self.window_start}: {self.count}"


class ShadowMismatch(models.Model):
    """A parallel group whose merged result differed from running its members one after another.

    ``diff`` lists the differing paths with both values, cut to a few KB; ``truncated`` marks a diff that was cut.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    tenant_id = models.CharField(max_length=100, db_index=True)
    policy_id = models.CharField(max_length=200)
    stage = models.CharField(max_length=16)
    group_id = models.CharField(max_length=200)
    trace_id = models.CharField(max_length=64)
    members = models.JSONField(default=list, help_text="The group's members in declared order.")
    diff = models.JSONField(default=list)
    truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "shadow mismatch"
        verbose_name_plural = "shadow mismatches"

    def __str__(self) -> str:
        return f"{self.stage}/{self.group_id} for {self.tenant_id} (trace {self.trace_id})"


class Rollout(models.Model):
    """The walk of one stage from sequential to parallel execution, through four phases.

    Only ``rollout.rollouts`` changes a rollout: it moves the phases, drives the flags through
    ``rollout.services`` and records every step as a ``RolloutEvent``.
    """

    class Stage(models.TextChoices):
        PRE = "pre", "pre-processors"
        VALIDATORS = "validators", "validators"
        POST = "post", "post-processors"

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        COMPLETED = "completed", "completed"
        ABORTED = "aborted", "aborted"
        ROLLED_BACK = "rolled_back", "rolled back"

    stage = models.CharField(max_length=16, choices=Stage.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    current_phase = models.PositiveSmallIntegerField(default=1, help_text="The number of the active phase, 1 to 4.")
    internal_tenants = models.JSONField(default=list, help_text="Internal test tenants, enabled in phase 2.")
    canary_tenants = models.JSONField(default=list, help_text="Canary tenants in the order they are enabled in phase 3.")
    canary_steps = models.JSONField(
        default=list, help_text="How many canary tenants each step of phase 3 enables, growing, e.g. [2, 5, 10].",
    )
    canary_step = models.PositiveSmallIntegerField(default=0, help_text="Canary steps taken so far.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("advance_rollout", "Can advance, abort and expand a rollout"),
            ("rollback_rollout", "Can roll back a rollout"),
        ]

    def __str__(self) -> str:
        return f"Rollout {self.pk} of {self.get_stage_display()} ({self.get_state_display()}, phase {self.current_phase})"

    @property
    def enabled_canaries(self) -> list[str]:
        """The canary tenants enabled by the steps taken so far."""
        if self.canary_step == 0:
            return []
        return list(self.canary_tenants[: self.canary_steps[self.canary_step - 1]])


class RolloutPhase(models.Model):
    """One of a rollout's four phases, with its actions and success criteria and who moved it."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        ACTIVE = "active", "active"
        PASSED = "passed", "passed on evidence"
        OVERRIDDEN = "overridden", "passed by override"
        ABORTED = "aborted", "aborted"
        ROLLED_BACK = "rolled_back", "rolled back"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    planned_duration = models.CharField(max_length=50, help_text="As planned, e.g. '1-2 weeks'.")
    actions = models.JSONField(default=list, help_text="The actions checklist.")
    success_criteria = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    moved_by = models.CharField(max_length=150, blank=True, help_text="Who ended the phase.")
    override_reason = models.TextField(blank=True, help_text="Why the phase passed without its evidence.")
    criteria_results = models.JSONField(default=list, blank=True, help_text="The criteria as evaluated when it ended.")

    class Meta:
        ordering = ["rollout", "number"]
        constraints = [models.UniqueConstraint(fields=["rollout", "number"], name="one_phase_per_number")]

    def __str__(self) -> str:
        return f"Phase {self.number}: {self.name} ({self.get_state_display()})"


class RolloutEvent(models.Model):
    """One entry of a rollout's history: start, advance, override, canary step, abort, rollback or verification.

    A rollback names the trigger that fired with its figures (value, baseline, threshold) and
    its scope; the verification of a rollback points back to it.
    """

    class Kind(models.TextChoices):
        START = "start", "start"
        ADVANCE = "advance", "advance"
        OVERRIDE = "override", "advance by override"
        CANARY_STEP = "canary_step", "canary step"
        ABORT = "abort", "abort"
        ROLLBACK = "rollback", "rollback"
        VERIFICATION = "verification", "rollback verification"

    class Scope(models.TextChoices):
        ALL = "all", "all tenants"
        TENANT = "tenant", "one tenant"
        POLICY = "policy", "one policy"

    class Verification(models.TextChoices):
        PENDING = "pending", "pending"
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"
        INCONCLUSIVE = "inconclusive", "inconclusive"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    phase = models.PositiveSmallIntegerField(help_text="The phase that was active.")
    actor = models.CharField(max_length=150)
    through = models.CharField(max_length=32, help_text="admin, api, command or automatic_rollback.")
    reason = models.TextField(blank=True)
    trigger = models.CharField(max_length=32, blank=True, help_text="The trigger that fired, for an automatic rollback.")
    value = models.FloatField(null=True, blank=True, help_text="The trigger's figure on the parallel side.")
    baseline = models.FloatField(null=True, blank=True, help_text="The same figure on the sequential side.")
    threshold = models.FloatField(null=True, blank=True, help_text="Above this value the trigger fails.")
    scope = models.CharField(max_length=16, choices=Scope.choices, blank=True)
    scope_id = models.CharField(max_length=200, blank=True, help_text="The tenant or policy id of a scoped rollback.")
    verification = models.CharField(max_length=16, choices=Verification.choices, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    rollback_event = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="verifications",
        help_text="For a verification: the rollback it checked.",
    )
    details = models.JSONField(default=dict, blank=True, help_text="Criteria, flag revisions and figures.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["rollout", "kind"])]

    def __str__(self) -> str:
        scope = f" ({self.scope} {self.scope_id})".rstrip() if self.scope else ""
        return f"{self.get_kind_display()} of rollout {self.rollout_id} in phase {self.phase}{scope}"
