"""Submission forms for extension authors.

The forms check their fields with ``registry.validation``, so an author reads the same
message for a bad subject or an out-of-range timeout as the API and the admin give. The
side-effect declaration is a checklist: a version is recorded as side-effect free only when
the author affirms every item, and otherwise the author describes its side effects.
"""
from __future__ import annotations

from typing import Any

from django import forms

from registry.models import Extension
from registry.validation import FieldError, validate_extension_entry, validate_version_fields

SIDE_EFFECT_CHECKLIST = {
    "no_external_calls": "It calls no external API, except read-only lookups.",
    "no_database_writes": "It writes to no database.",
    "no_external_telemetry": "It sends no logs or metrics of its own anywhere; only the router's telemetry records it.",
    "no_outside_state": "It changes no state outside the request it is given: no files, caches, counters or queues.",
    "idempotent": "It is idempotent: the same request always gets the same reply.",
}
"""The side-effect-free checklist, by form field name; an extension must meet every item."""

SIDE_EFFECTS_METADATA_KEY = "side_effects"
"""The metadata key that carries the author's description of the side effects."""

FORM_FIELD_BY_ENTRY_FIELD = {"id": "extension_id", "side_effect_free": None}


class SubmissionForm(forms.Form):
    """The fields every submission has: the version's call settings and its side-effect declaration."""

    version = forms.CharField(
        max_length=50,
        label="Version label",
        help_text="Letters, digits, '.', '_', '+' and '-', for example 1.0.0. Each version needs a new label.",
    )
    subject = forms.CharField(
        max_length=255,
        help_text="The NATS subject the extension listens on: beamline.ext.pre.<name>.v<N> for a pre-processor, "
        "beamline.ext.validate.… for a validator, beamline.ext.post.… for a post-processor, "
        "beamline.provider.<name>.v<N> for a provider.",
    )
    timeout_ms = forms.IntegerField(label="Timeout (ms)", help_text="How long the router waits for a reply, 10 to 5000 ms.")
    retry = forms.IntegerField(label="Retries", help_text="Retries after a failed call, 0 to 3.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="What the extension does, in a sentence or two."
    )
    no_external_calls = forms.BooleanField(required=False, label=SIDE_EFFECT_CHECKLIST["no_external_calls"])
    no_database_writes = forms.BooleanField(required=False, label=SIDE_EFFECT_CHECKLIST["no_database_writes"])
    no_external_telemetry = forms.BooleanField(required=False, label=SIDE_EFFECT_CHECKLIST["no_external_telemetry"])
    no_outside_state = forms.BooleanField(required=False, label=SIDE_EFFECT_CHECKLIST["no_outside_state"])
    idempotent = forms.BooleanField(required=False, label=SIDE_EFFECT_CHECKLIST["idempotent"])
    side_effects = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Side effects",
        help_text="Required unless you tick every item above: what the extension changes or calls outside the "
        "router, for example 'writes each message to the audit database'.",
    )

    def call_fields(self) -> list[forms.BoundField]:
        """Return the fields before the side-effect declaration, in form order."""
        declaration = {*SIDE_EFFECT_CHECKLIST, "side_effects"}
        return [field for field in self if field.name not in declaration]

    def checklist_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in SIDE_EFFECT_CHECKLIST]

    def is_side_effect_free(self) -> bool:
        """Return whether the author affirmed every checklist item."""
        return all(self.cleaned_data.get(name) for name in SIDE_EFFECT_CHECKLIST)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        description = (cleaned.get("side_effects") or "").strip()
        if self.is_side_effect_free() and description:
            self.add_error(
                "side_effects",
                "You ticked every item, which declares no side effects. Leave this empty, or untick the item "
                "your extension does not meet.",
            )
        elif not self.is_side_effect_free() and not description:
            self.add_error(
                "side_effects",
                "Describe the side effects. An item of the checklist is not ticked, so the extension will be "
                "recorded as having side effects and run on its own, in declared order.",
            )
        if not self.errors:
            self.add_field_errors(self.registry_errors(cleaned))
        return cleaned

    def version_document(self) -> dict[str, Any]:
        """Return the submission as the version fields of a registry entry."""
        data = self.cleaned_data
        metadata: dict[str, Any] = {"side_effect_free": self.is_side_effect_free(), "description": data["description"]}
        if not self.is_side_effect_free():
            metadata[SIDE_EFFECTS_METADATA_KEY] = data["side_effects"].strip()
        return {
            "version": data["version"],
            "subject": data["subject"],
            "timeout_ms": data["timeout_ms"],
            "retry": data["retry"],
            "metadata": metadata,
        }

    def registry_errors(self, cleaned: dict[str, Any]) -> list[FieldError]:
        raise NotImplementedError

    def add_field_errors(self, errors: list[FieldError]) -> None:
        """Put each registry validation error next to the field it is about."""
        for error in errors:
            name = FORM_FIELD_BY_ENTRY_FIELD.get(error.field, error.field)
            self.add_error(name if name in self.fields else None, error.message)


class ExtensionSubmissionForm(SubmissionForm):
    """A new extension with its first version."""

    extension_id = forms.CharField(
        max_length=100,
        label="Extension id",
        help_text="Lower-case letters, digits and underscores, starting with a letter, for example normalize_text.",
    )
    type = forms.ChoiceField(choices=Extension.Type.choices, help_text="The pipeline stage it runs in.")

    field_order = ["extension_id", "type", "version", "subject", "timeout_ms", "retry", "description"]

    def entry(self) -> dict[str, Any]:
        """Return the submission as a registry entry."""
        return {"id": self.cleaned_data["extension_id"], "type": self.cleaned_data["type"], **self.version_document()}

    def registry_errors(self, cleaned: dict[str, Any]) -> list[FieldError]:
        return validate_extension_entry(self.entry())


class VersionSubmissionForm(SubmissionForm):
    """A new version of an extension the author owns."""

    def __init__(self, *args: Any, extension: Extension, **kwargs: Any) -> None:
        self.extension = extension
        super().__init__(*args, **kwargs)

    def registry_errors(self, cleaned: dict[str, Any]) -> list[FieldError]:
        return validate_version_fields(self.version_document(), self.extension.type)
