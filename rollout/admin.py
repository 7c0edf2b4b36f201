"""The parallel-execution flags in the admin, for ops staff.

Every change goes through ``rollout.services``, as the API's do, so it is validated the same
way, recorded in the audit trail with the signed-in user, and bumps the registry revision.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from registry.revision import current_revision
from registry.validation import InvalidDocument
from rollout import services
from rollout.flags import FLAGS_BY_NAME, FlagDefinition, FlagState
from rollout.forms import FlagOverrideForm, PolicyOverrideForm, TenantOverrideForm
from rollout.models import FlagChange, FlagOverride, PolicyOverride, TenantOverride
from rollout.services import Actor, ConfirmationRequired
from rollout.status import current_flag_states


def admin_actor(request: HttpRequest) -> Actor:
    return Actor(request.user.get_username(), FlagChange.Through.ADMIN, request.user)


@admin.register(FlagOverride)
class FlagOverrideAdmin(admin.ModelAdmin):
    """Every flag with its effective value and source; each can be overridden or cleared."""

    def get_urls(self) -> list[URLPattern]:
        override = path(
            "<str:flag_name>/override/",
            self.admin_site.admin_view(self.override_view),
            name="rollout_flagoverride_override",
        )
        return [override, *super().get_urls()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FlagOverride | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Parallel execution flags",
            "opts": self.model._meta,
            "states": current_flag_states(),
            "revision": current_revision(),
            "can_change": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/rollout/flagoverride/flags.html", context)

    def override_view(self, request: HttpRequest, flag_name: str) -> HttpResponse:
        """Set or clear one flag's override; a change that opens every tenant gets a confirmation page first."""
        flag = FLAGS_BY_NAME.get(flag_name)
        if flag is None:
            raise Http404(f"There is no flag named {flag_name!r}.")
        if not self.has_change_permission(request):
            raise PermissionDenied
        state = next(state for state in current_flag_states() if state.definition is flag)

        if request.method != "POST":
            form = FlagOverrideForm(initial={"value": _form_value(flag, state.value)}, flag=flag)
            return self._override_page(request, flag, state, form)

        clearing = "_clear" in request.POST
        form = FlagOverrideForm(request.POST, flag=flag)
        if clearing:
            form.fields["value"].required = False
        if not form.is_valid():
            return self._override_page(request, flag, state, form)

        value = None if clearing else form.cleaned_data["value"]
        try:
            services.change_flags(
                {flag.name: value},
                actor=admin_actor(request),
                reason=form.cleaned_data["reason"],
                confirm_all_tenants=form.cleaned_data["confirm_all_tenants"],
            )
        except ConfirmationRequired as error:
            return self._confirmation_page(request, flag, error.message)
        except InvalidDocument as error:
            for field_error in error.errors:
                form.add_error("value" if field_error.field == flag.name else None, field_error.message)
            return self._override_page(request, flag, state, form)

        done = "cleared its database value" if clearing else "set its database value"
        self.message_user(request, f"{flag.name}: {done}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:rollout_flagoverride_changelist"))

    def _override_page(self, request: HttpRequest, flag: FlagDefinition, state: FlagState,
                       form: FlagOverrideForm) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": f"Override {flag.name}",
            "opts": self.model._meta,
            "flag": flag,
            "state": state,
            "form": form,
        }
        return TemplateResponse(request, "admin/rollout/flagoverride/override.html", context)

    def _confirmation_page(self, request: HttpRequest, flag: FlagDefinition, message: str) -> HttpResponse:
        resubmitted = [
            (name, value)
            for name, value in request.POST.items()
            if name not in ("csrfmiddlewaretoken", "confirm_all_tenants")
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Confirm parallel execution for every tenant",
            "opts": self.model._meta,
            "flag": flag,
            "message": message,
            "resubmitted": resubmitted,
        }
        return TemplateResponse(request, "admin/rollout/flagoverride/confirm.html", context)


class OverrideAdmin(admin.ModelAdmin):
    """Tenant and policy overrides, saved and deleted through the services."""

    id_field = ""
    list_display = ["enabled", "updated_at"]
    list_filter = ["enabled"]
    set_override: Callable[..., FlagChange | None]
    clear_override: Callable[..., FlagChange | None]

    def get_list_display(self, request: HttpRequest) -> list[str]:
        return [self.id_field, *self.list_display]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [self.id_field] if obj else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        target = getattr(obj, self.id_field)
        type(self).set_override(target, obj.enabled, actor=admin_actor(request), reason=form.cleaned_data["reason"])
        obj.pk = self.model.objects.get(**{self.id_field: target}).pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        type(self).clear_override(getattr(obj, self.id_field), actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(TenantOverride)
class TenantOverrideAdmin(OverrideAdmin):
    form = TenantOverrideForm
    id_field = "tenant_id"
    search_fields = ["tenant_id"]
    set_override = staticmethod(services.set_tenant_override)
    clear_override = staticmethod(services.clear_tenant_override)


@admin.register(PolicyOverride)
class PolicyOverrideAdmin(OverrideAdmin):
    form = PolicyOverrideForm
    id_field = "policy_id"
    search_fields = ["policy_id"]
    set_override = staticmethod(services.set_policy_override)
    clear_override = staticmethod(services.clear_policy_override)


@admin.register(FlagChange)
class FlagChangeAdmin(admin.ModelAdmin):
    """The audit trail, read-only: entries are only ever added, by the services."""

    list_display = ["created_at", "actor", "through", "target_type", "target", "old_value", "new_value", "reason",
                    "revision"]
    list_filter = ["through", "target_type"]
    search_fields = ["target", "actor", "reason"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: FlagChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FlagChange | None = None) -> bool:
        return False


def _form_value(flag: FlagDefinition, value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value)
    return value


from rollout import rollout_admin  # noqa: E402,F401 - registers the rollout and event admins
