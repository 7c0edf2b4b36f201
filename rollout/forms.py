"""Admin forms of the parallel-execution flags: one flag's override, and tenant and policy overrides."""
from __future__ import annotations

from typing import Any

from django import forms

from registry.models import RoutingPolicy
from rollout.flags import ID_LIST, INTEGER, NUMBER, SWITCH, FlagDefinition
from rollout.models import PolicyOverride, TenantOverride
from rollout.services import MAX_REASON_LENGTH, id_errors

SWITCH_CHOICES = [("true", "on"), ("false", "off")]


class FlagOverrideForm(forms.Form):
    """The database value of one flag, with the reason for the change.

    ``value`` is typed by the flag's kind; a list is typed comma-separated and may be empty.
    """

    reason = forms.CharField(max_length=MAX_REASON_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confirm_all_tenants = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, flag: FlagDefinition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag
        self.fields["value"] = _value_field(flag)
        self.order_fields(["value", "reason"])

    def clean_value(self) -> Any:
        value = self.cleaned_data.get("value")
        if self.flag.kind == SWITCH:
            return value == "true"
        if self.flag.kind == ID_LIST:
            items = [item.strip() for item in (value or "").split(",")]
            return [item for item in items if item]
        return value


class TenantOverrideForm(forms.ModelForm):
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, required=False, help_text="Kept in the audit trail.")

    class Meta:
        model = TenantOverride
        fields = ["tenant_id", "enabled", "reason"]

    def clean_tenant_id(self) -> str:
        tenant_id = self.cleaned_data["tenant_id"]
        errors = id_errors("tenant_id", tenant_id)
        if errors:
            raise forms.ValidationError(errors[0].message)
        return tenant_id


class PolicyOverrideForm(forms.ModelForm):
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, required=False, help_text="Kept in the audit trail.")

    class Meta:
        model = PolicyOverride
        fields = ["policy_id", "enabled", "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "policy_id" in self.fields:
            policy_ids = RoutingPolicy.objects.order_by("policy_id").values_list("policy_id", flat=True)
            self.fields["policy_id"] = forms.ChoiceField(
                choices=[(policy_id, policy_id) for policy_id in policy_ids], label="Policy id",
            )


def _value_field(flag: FlagDefinition) -> forms.Field:
    if flag.kind == SWITCH:
        return forms.ChoiceField(choices=SWITCH_CHOICES, widget=forms.RadioSelect, help_text=flag.description)
    if flag.kind == ID_LIST:
        return forms.CharField(required=False, help_text=f"{flag.description} Comma-separated ids.")
    low, high = flag.bounds or (None, None)
    if flag.kind == INTEGER:
        return forms.IntegerField(min_value=low, max_value=high, help_text=flag.description)
    assert flag.kind == NUMBER, f"unknown flag kind {flag.kind!r}"
    return forms.FloatField(min_value=low, max_value=high, help_text=flag.description)
