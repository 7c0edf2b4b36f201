"""Serializers that describe the API's JSON shapes in the OpenAPI schema.

Validation does not happen here: the views pass request bodies to ``registry.services``, which
validate them with ``registry.validation`` exactly as the admin and the import do, and build
responses with ``registry.documents``.
"""
from __future__ import annotations

from rest_framework import serializers

from registry.models import EXTENSION_TYPES, MODES, ON_FAIL_CHOICES
from registry.validation import RETRY_RANGE, TIMEOUT_MS_RANGE


class ExtensionMetadataSerializer(serializers.Serializer):
    side_effect_free = serializers.BooleanField(
        default=False, help_text="True when the extension changes nothing outside the router."
    )
    description = serializers.CharField(required=False, allow_blank=True)


class ExtensionEntrySerializer(serializers.Serializer):
    """A registry entry; metadata may carry further keys, which are kept as given."""

    id = serializers.RegexField(r"^[a-z][a-z0-9_]*$", max_length=100)
    type = serializers.ChoiceField(choices=EXTENSION_TYPES)
    version = serializers.CharField(required=False, help_text="Label of the active version, when it has one.")
    subject = serializers.CharField(help_text="beamline.ext.{pre|validate|post}.<name>.v<N> or beamline.provider.<name>.v<N>.")
    timeout_ms = serializers.IntegerField(min_value=TIMEOUT_MS_RANGE[0], max_value=TIMEOUT_MS_RANGE[1])
    retry = serializers.IntegerField(min_value=RETRY_RANGE[0], max_value=RETRY_RANGE[1])
    enabled = serializers.BooleanField(default=True)
    metadata = ExtensionMetadataSerializer(required=False)
    config = serializers.JSONField(required=False, help_text="A JSON object given to the extension.")


class VersionCreateSerializer(serializers.Serializer):
    """A new version; fields left out are copied from the active version."""

    version = serializers.CharField(max_length=50)
    subject = serializers.CharField(required=False)
    timeout_ms = serializers.IntegerField(required=False, min_value=TIMEOUT_MS_RANGE[0], max_value=TIMEOUT_MS_RANGE[1])
    retry = serializers.IntegerField(required=False, min_value=RETRY_RANGE[0], max_value=RETRY_RANGE[1])
    metadata = ExtensionMetadataSerializer(required=False)
    config = serializers.JSONField(required=False)
    activate = serializers.BooleanField(default=False, help_text="Make the new version the active one.")


class VersionReviewSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected"])
    reason = serializers.CharField(allow_blank=True)


class VersionProbeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["not_run", "passed", "failed", "error"])
    detail = serializers.CharField(allow_blank=True, help_text="The first difference found, or why the probe could not run.")
    probed_at = serializers.DateTimeField(allow_null=True)


class VersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    subject = serializers.CharField()
    timeout_ms = serializers.IntegerField()
    retry = serializers.IntegerField()
    metadata = ExtensionMetadataSerializer()
    config = serializers.JSONField(required=False)
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    review = VersionReviewSerializer(read_only=True, help_text="Only an approved version can be activated.")
    probe = VersionProbeSerializer(read_only=True, help_text="The determinism probe's last result.")


class PrePostStepSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Id of an enabled extension of the stage's type.")
    mode = serializers.ChoiceField(choices=MODES)
    depends_on = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Steps of this stage that must run first. Left out: runs in declared order; []: independent.",
    )
    config = serializers.JSONField(required=False)


class ValidatorStepSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Id of an enabled validator extension.")
    on_fail = serializers.ChoiceField(choices=ON_FAIL_CHOICES)
    depends_on = serializers.ListField(child=serializers.CharField(), required=False)
    config = serializers.JSONField(required=False)


class PolicyDocumentSerializer(serializers.Serializer):
    """A routing policy; top-level keys other than these belong to the router and are kept as given."""

    policy_id = serializers.CharField(max_length=200)
    tenant_id = serializers.CharField()
    pre = PrePostStepSerializer(many=True, required=False)
    validators = ValidatorStepSerializer(many=True, required=False)
    post = PrePostStepSerializer(many=True, required=False)


class TenantSerializer(serializers.Serializer):
    tenant_id = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]*$", max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)


class ErrorDetailSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Where the problem is, for example pre[2].depends_on.")
    stage = serializers.CharField(required=False)
    step = serializers.CharField(required=False)
    field = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    step_ids = serializers.ListField(child=serializers.CharField(), required=False)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = ErrorDetailSerializer(many=True, required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
