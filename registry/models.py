"""The registry's tables: tenants, extensions and their versions, routing policies and API tokens."""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

EXTENSION_TYPES = ("pre", "validator", "post", "provider")
STAGES = ("pre", "validators", "post")
STAGE_EXTENSION_TYPE = {"pre": "pre", "validators": "validator", "post": "post"}
MODES = ("required", "optional")
ON_FAIL_CHOICES = ("block", "warn", "ignore")

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
EXTENSION_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class Tenant(models.Model):
    """A customer of the router; every routing policy belongs to one."""

    tenant_id = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                TENANT_ID_PATTERN,
                "Expected lower-case letters, digits, '-' and '_', starting with a letter or digit.",
            )
        ],
        help_text="Lower-case letters, digits, '-' and '_', for example acme-prod.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant_id"]

    def __str__(self) -> str:
        return self.tenant_id


class Extension(models.Model):
    """An extension the router can call; its registry entry is made from its active version."""

    class Type(models.TextChoices):
        PRE = "pre", "Pre-processor"
        VALIDATOR = "validator", "Validator"
        POST = "post", "Post-processor"
        PROVIDER = "provider", "Provider"

    extension_id = models.CharField(
        "id",
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                EXTENSION_ID_PATTERN,
                "Expected lower-case letters, digits and underscores, starting with a letter.",
            )
        ],
        help_text="Lower-case letters, digits and underscores, starting with a letter, for example normalize_text.",
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    enabled = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_extensions",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["extension_id"]
        permissions = [("submit_extension", "Can submit extensions and versions for review")]

    def __str__(self) -> str:
        return self.extension_id

    @property
    def active_version(self) -> ExtensionVersion | None:
        """The active version, read from the ``active_versions`` prefetch when the query made one."""
        prefetched = getattr(self, "active_versions", None)
        if prefetched is not None:
            return prefetched[0] if prefetched else None
        return self.versions.filter(is_active=True).first()


class ExtensionVersion(models.Model):
    """One version of an extension's call settings and metadata; at most one per extension is active.

    Only an approved version can become active. Versions that ops staff create (admin, API,
    import) are approved on creation; versions that authors submit wait for review.
    """

    class ReviewStatus(models.TextChoices):
        PENDING = "pending", "pending review"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"

    class ProbeStatus(models.TextChoices):
        NOT_RUN = "not_run", "not run"
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"
        ERROR = "error", "could not run"

    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(
        max_length=50,
        blank=True,
        help_text="A label such as 1.2.0; blank for the version created with the extension when none was given.",
    )
    subject = models.CharField(max_length=255, help_text="NATS subject, for example beamline.ext.pre.normalize_text.v1.")
    timeout_ms = models.PositiveIntegerField(help_text="Call timeout in milliseconds, 10 to 5000.")
    retry = models.PositiveSmallIntegerField(help_text="Retries after a failed call, 0 to 3.")
    side_effect_free = models.BooleanField(
        default=False,
        help_text="The extension changes nothing outside the router, so it may run in a parallel group.",
    )
    description = models.TextField(blank=True)
    config = models.JSONField(null=True, blank=True, help_text="Extension configuration; empty means none given.")
    metadata_extra = models.JSONField(
        default=dict,
        blank=True,
        help_text="Metadata keys other than side_effect_free and description, kept as given.",
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_status = models.CharField(
        max_length=20,
        choices=ReviewStatus.choices,
        default=ReviewStatus.PENDING,
        help_text="Only an approved version can become active.",
    )
    review_reason = models.TextField(blank=True, help_text="Why the version was approved or rejected.")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    probe_status = models.CharField(
        max_length=20,
        choices=ProbeStatus.choices,
        default=ProbeStatus.NOT_RUN,
        help_text="Result of the determinism probe against the live extension.",
    )
    probe_detail = models.TextField(blank=True, help_text="The first difference the probe found, or why it could not run.")
    probed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["extension", "created_at", "id"]
        permissions = [
            ("review_extensionversion", "Can approve or reject submitted versions"),
            ("probe_extensionversion", "Can run the determinism probe on a version"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["extension"], condition=Q(is_active=True), name="registry_one_active_version"
            ),
            models.UniqueConstraint(
                fields=["extension", "version"], condition=~Q(version=""), name="registry_unique_version_label"
            ),
        ]

    def __str__(self) -> str:
        label = self.version or "(unlabelled)"
        return f"{self.extension.extension_id} {label}"

    @property
    def is_approved(self) -> bool:
        return self.review_status == self.ReviewStatus.APPROVED

    @property
    def effectively_side_effect_free(self) -> bool:
        """Whether the executor may run this version in a parallel group.

        A version that claims to be side-effect free but failed the determinism probe is not,
        until a later probe passes.
        """
        return self.side_effect_free and self.probe_status != self.ProbeStatus.FAILED


class RoutingPolicy(models.Model):
    """A tenant's routing policy document; its extension steps live in ``PolicyStep``."""

    policy_id = models.CharField(max_length=200, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="policies")
    router_keys = models.JSONField(
        default=dict,
        blank=True,
        help_text="The router's own top-level keys (providers, fallbacks, sticky, version, ...), kept as given.",
    )
    declared_stages = models.JSONField(
        default=list,
        blank=True,
        help_text="The stages the document declared, so a stage that was left out is not invented on output.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["policy_id"]
        verbose_name_plural = "routing policies"

    def __str__(self) -> str:
        return self.policy_id


class PolicyStep(models.Model):
    """One extension step of a policy stage, at its declared position."""

    class Stage(models.TextChoices):
        PRE = "pre", "Pre-processors"
        VALIDATORS = "validators", "Validators"
        POST = "post", "Post-processors"

    class Mode(models.TextChoices):
        REQUIRED = "required", "required"
        OPTIONAL = "optional", "optional"

    class OnFail(models.TextChoices):
        BLOCK = "block", "block"
        WARN = "warn", "warn"
        IGNORE = "ignore", "ignore"

    policy = models.ForeignKey(RoutingPolicy, on_delete=models.CASCADE, related_name="steps")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    position = models.PositiveIntegerField(help_text="Declared order within the stage, from 0.")
    extension_id = models.CharField("extension id", max_length=100)
    mode = models.CharField(max_length=20, choices=Mode.choices, blank=True, help_text="Pre and post steps only.")
    on_fail = models.CharField(max_length=20, choices=OnFail.choices, blank=True, help_text="Validator steps only.")
    depends_on = models.JSONField(
        null=True,
        blank=True,
        help_text="Ids of steps of this stage; null means not declared, which differs from [].",
    )
    config = models.JSONField(null=True, blank=True, help_text="Step configuration; null means not given.")
    extra = models.JSONField(default=dict, blank=True, help_text="Any other keys of the step, kept as given.")

    class Meta:
        ordering = ["policy", "stage", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "stage", "position"], name="registry_unique_step_position"),
        ]

    def __str__(self) -> str:
        return f"{self.stage}[{self.position}] {self.extension_id}"


class RegistryRevision(models.Model):
    """The registry's revision counter, a single row; executors poll it to notice changes."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"revision {self.value}"


class ApiToken(models.Model):
    """A bearer token for the REST API; only the SHA-256 hash of its secret is stored."""

    class Scope(models.TextChoices):
        READ = "read", "read"
        WRITE = "write", "write"

    name = models.CharField(max_length=100, help_text="Who or what uses the token, for example router-prod.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The user the token acts for; changes made with it are recorded under this user.",
    )
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def generate_secret() -> str:
        return "blc_" + secrets.token_urlsafe(32)

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def allows_write(self) -> bool:
        return self.scope == self.Scope.WRITE
