"""Admin forms: they validate with ``registry.validation`` so the admin accepts what the API accepts.

The inline formsets turn their rows into the API's documents, validate them there, and put each
error back on the row and field it concerns.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.models import STAGES, ExtensionVersion, PolicyStep, RoutingPolicy
from registry.validation import Catalog, FieldError, validate_policy_id, validate_stage, validate_version_fields

METADATA_OWN_KEYS = ("side_effect_free", "description")


class OptionalJSONField(forms.JSONField):
    """A JSON field that shows a missing value as an empty box rather than ``null``."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return super().prepare_value(value)


# Extension versions


class ExtensionVersionInlineForm(forms.ModelForm):
    # A plain form field rather than the model's is_active, because the one-active-version
    # constraint would reject each row of a switch on its own. The formset checks all rows together.
    active = forms.BooleanField(required=False, help_text="Exactly one version is active.")
    config = OptionalJSONField(required=False, help_text="A JSON object; empty for none.")
    metadata_extra = OptionalJSONField(required=False, label="Other metadata", help_text="A JSON object; empty for none.")

    class Meta:
        model = ExtensionVersion
        fields = ["version", "subject", "timeout_ms", "retry", "side_effect_free", "description", "config", "metadata_extra"]
        widgets = {
            "description": forms.TextInput(attrs={"size": 30}),
            "config": forms.Textarea(attrs={"rows": 2, "cols": 24}),
            "metadata_extra": forms.Textarea(attrs={"rows": 2, "cols": 24}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["active"].initial = self.instance.is_active if self.instance.pk else False

    def version_data(self) -> dict[str, Any]:
        """Return the row as the version fields of a registry entry."""
        data = self.cleaned_data
        extra = data.get("metadata_extra") or {}
        metadata = {
            "side_effect_free": data.get("side_effect_free", False),
            "description": data.get("description", ""),
            **(extra if isinstance(extra, dict) else {}),
        }
        return {
            "version": data.get("version") or None,
            "subject": data.get("subject"),
            "timeout_ms": data.get("timeout_ms"),
            "retry": data.get("retry"),
            "metadata": metadata,
            "config": data.get("config"),
        }


class ExtensionVersionFormSet(forms.BaseInlineFormSet):
    """Checks every version against the extension's type and that exactly one is active."""

    def clean(self) -> None:
        super().clean()
        rows = self.kept_forms()
        extension_type = self.instance.type
        for form in rows:
            self._check_row(form, extension_type)

        active_rows = [form for form in rows if form.cleaned_data.get("active")]
        if len(active_rows) != 1:
            raise ValidationError(
                f"Exactly one version must be active; {len(active_rows)} are ticked. Tick the one the registry "
                "entry should use.",
                code="active_version",
            )
        chosen = active_rows[0].instance
        if chosen.pk and not chosen.is_active and not chosen.is_approved:
            active_rows[0].add_error(
                None,
                f"Version {chosen.version!r} is {chosen.get_review_status_display()}; only an approved version can "
                "be active. Review it in the versions list first.",
            )
        for form in rows:
            if form is not active_rows[0] and not form.cleaned_data.get("version"):
                form.add_error("version", "An inactive version needs a label, so it can be activated later.")

    def kept_forms(self) -> list[ExtensionVersionInlineForm]:
        """Return the rows that will be saved: not deleted, and not blank extra rows."""
        return [
            form
            for form in self.forms
            if hasattr(form, "cleaned_data")
            and form not in self.deleted_forms
            and (form.instance.pk or form.has_changed())
        ]

    def _check_row(self, form: ExtensionVersionInlineForm, extension_type: str | None) -> None:
        extra = form.cleaned_data.get("metadata_extra")
        if extra is not None and not isinstance(extra, dict):
            form.add_error("metadata_extra", "Other metadata must be a JSON object.")
            return
        if extra and any(key in extra for key in METADATA_OWN_KEYS):
            form.add_error("metadata_extra", "Set side_effect_free and description in their own columns.")
            return
        if not extension_type or form.errors:
            return

        for error in validate_version_fields(form.version_data(), extension_type):
            field_name = error.field if error.field in form.fields else None
            form.add_error(field_name, error.message)


# Policies


class PolicyForm(forms.ModelForm):
    router_keys = forms.JSONField(
        required=False,
        initial=dict,
        help_text="The router's own keys (providers, fallbacks, sticky, version, ...) as one JSON object.",
    )

    class Meta:
        model = RoutingPolicy
        fields = ["policy_id", "tenant", "router_keys"]

    def clean_router_keys(self) -> dict[str, Any]:
        value = self.cleaned_data.get("router_keys")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError("Router keys must be a JSON object, for example {\"sticky\": {\"enabled\": true}}.")
        reserved = sorted(key for key in value if key in ("policy_id", "tenant_id", *STAGES))
        if reserved:
            raise ValidationError(f"Set {', '.join(reserved)} with the fields and step rows, not as router keys.")
        return value

    def clean_policy_id(self) -> str:
        policy_id = self.cleaned_data["policy_id"]
        errors = validate_policy_id(policy_id)
        if errors:
            raise ValidationError(errors[0].message)
        return policy_id


class PolicyStepInlineForm(forms.ModelForm):
    # The declared order is a plain form field: the model's unique position per stage would
    # reject each row of a reordering on its own, and the service rewrites all positions anyway.
    position = forms.IntegerField(required=False, min_value=0, help_text="Declared order; empty puts the row last.")
    depends_on = OptionalJSONField(
        required=False,
        help_text='Ids of steps of this stage, for example ["normalize_text"]. Empty: not declared '
        "(runs in declared order). []: declared independent.",
        widget=forms.TextInput(attrs={"size": 28}),
    )
    config = OptionalJSONField(required=False, help_text="A JSON object; empty for none.", widget=forms.TextInput(attrs={"size": 20}))

    class Meta:
        model = PolicyStep
        fields = ["extension_id", "mode", "on_fail", "depends_on", "config"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["position"].initial = self.instance.position


FIELD_BY_DOCUMENT_KEY = {"id": "extension_id", "mode": "mode", "on_fail": "on_fail", "depends_on": "depends_on", "config": "config"}


class StageStepFormSet(forms.BaseInlineFormSet):
    """The step rows of one stage; validates them as that stage of a policy document."""

    stage = ""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms if form not in self.deleted_forms):
            return

        rows = self.ordered_rows()
        steps = [self.step_document(form) for form in rows]
        catalog = Catalog.load([step["id"] for step in steps if step.get("id")], [])
        for error in validate_stage(self.stage, steps, catalog):
            self._attach(error, rows, steps)

    def ordered_rows(self) -> list[PolicyStepInlineForm]:
        """Return the kept rows in declared order: by position, rows without one last."""
        rows = [
            form
            for form in self.forms
            if hasattr(form, "cleaned_data")
            and form not in self.deleted_forms
            and (form.instance.pk or form.has_changed())
        ]
        return sorted(rows, key=lambda form: (form.cleaned_data.get("position") is None, form.cleaned_data.get("position") or 0))

    def step_document(self, form: PolicyStepInlineForm) -> dict[str, Any]:
        """Return a row as a step of the policy document, keeping keys the row does not show."""
        data = form.cleaned_data
        choice_key = "on_fail" if self.stage == "validators" else "mode"
        step: dict[str, Any] = {"id": data.get("extension_id") or ""}
        if data.get(choice_key):
            step[choice_key] = data[choice_key]
        if data.get("depends_on") is not None:
            step["depends_on"] = data["depends_on"]
        if data.get("config") is not None:
            step["config"] = data["config"]
        if form.instance.pk:
            step.update({key: value for key, value in form.instance.extra.items() if key not in step})
        return step

    def _attach(self, error: FieldError, rows: list[PolicyStepInlineForm], steps: list[dict[str, Any]]) -> None:
        if error.index is None:
            raise ValidationError(error.message)

        field_name = FIELD_BY_DOCUMENT_KEY.get(error.field)
        targets = [rows[error.index]]
        if error.code == "dependency_cycle":
            # Every step of the cycle gets the message, since fixing any one of them breaks it.
            targets = [rows[index] for index, step in enumerate(steps) if step.get("id") in error.step_ids]
        for form in targets:
            form.add_error(field_name, error.message)
