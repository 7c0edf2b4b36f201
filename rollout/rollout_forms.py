"""The admin's forms for rollouts: start, advance, abort and rollback."""
from __future__ import annotations

from typing import Any

from django import forms

from rollout.models import Rollout, RolloutEvent


def _ids(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


class StartRolloutForm(forms.Form):
    stage = forms.ChoiceField(choices=Rollout.Stage.choices)
    internal_tenants = forms.CharField(help_text="Tenant ids, comma-separated; enabled in phase 2.")
    canary_tenants = forms.CharField(required=False, help_text="Tenant ids in the order phase 3 enables them.")
    canary_steps = forms.CharField(required=False, help_text="Growing counts, e.g. 2, 5, 10; empty for 2, 5, 10.")

    def clean_internal_tenants(self) -> list[str]:
        return _ids(self.cleaned_data["internal_tenants"])

    def clean_canary_tenants(self) -> list[str]:
        return _ids(self.cleaned_data["canary_tenants"])

    def clean_canary_steps(self) -> list[int] | None:
        raw = _ids(self.cleaned_data["canary_steps"])
        if not raw:
            return None
        try:
            return [int(item) for item in raw]
        except ValueError:
            raise forms.ValidationError(f"Expected whole numbers separated by commas, got {raw!r}.") from None


class AdvanceForm(forms.Form):
    override_reason = forms.CharField(
        required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Leave empty to advance on the recorded evidence; a reason passes the phase without it.",
    )


class AbortForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


class RollbackForm(forms.Form):
    scope = forms.ChoiceField(choices=RolloutEvent.Scope.choices)
    tenant_id = forms.CharField(required=False, help_text="For the scope one tenant.")
    policy_id = forms.CharField(required=False, help_text="For the scope one policy.")
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        if scope in ("tenant", "policy") and not data.get(f"{scope}_id"):
            self.add_error(f"{scope}_id", f"Give the {scope} id to roll back.")
        return data

    @property
    def scope_id(self) -> str:
        scope = self.cleaned_data["scope"]
        return self.cleaned_data.get(f"{scope}_id", "") if scope != "all" else ""
