"""Rollouts in the admin, for ops staff: the phases, the events, the actions and the dashboard.

Every action goes through ``rollout.rollouts``, as the API's do. Viewing needs
``rollout.view_rollout``; advancing, canary steps and aborting ``rollout.advance_rollout``;
rolling back ``rollout.rollback_rollout``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from registry.services import RegistryConflict
from registry.validation import InvalidDocument
from rollout import rollouts
from rollout.dashboard import dashboard_context
from rollout.models import FlagChange, Rollout, RolloutEvent
from rollout.rollout_forms import AbortForm, AdvanceForm, RollbackForm, StartRolloutForm
from rollout.services import Actor

ADVANCE_PERMISSION = "rollout.advance_rollout"
ROLLBACK_PERMISSION = "rollout.rollback_rollout"


def _actor(request: HttpRequest) -> Actor:
    return Actor(request.user.get_username(), FlagChange.Through.ADMIN, request.user)


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    """The rollouts; each one's page shows its phases and events and offers the actions."""

    list_display = ["id", "stage", "state", "current_phase", "created_by_name", "created_at"]
    list_filter = ["stage", "state"]
    actions = ["roll_back_selected"]

    def get_urls(self) -> list[URLPattern]:
        def view(function: Callable[..., HttpResponse], name: str, route: str) -> URLPattern:
            return path(route, self.admin_site.admin_view(function), name=f"rollout_rollout_{name}")

        return [
            view(self.latest_dashboard_view, "latest_dashboard", "dashboard/"),
            view(self.dashboard_view, "dashboard", "<int:rollout_id>/dashboard/"),
            view(self.advance_view, "advance", "<int:rollout_id>/advance/"),
            view(self.canary_step_view, "canary_step", "<int:rollout_id>/canary-step/"),
            view(self.abort_view, "abort", "<int:rollout_id>/abort/"),
            view(self.rollback_view, "rollback", "<int:rollout_id>/rollback/"),
            *super().get_urls(),
        ]

    def has_change_permission(self, request: HttpRequest, obj: Rollout | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Rollout | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StartRolloutForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                rollout = rollouts.start_rollout(
                    form.cleaned_data["stage"], internal_tenants=form.cleaned_data["internal_tenants"],
                    canary_tenants=form.cleaned_data["canary_tenants"], canary_steps=form.cleaned_data["canary_steps"],
                    actor=_actor(request),
                )
            except (InvalidDocument, RegistryConflict) as error:
                _add_errors(form, error)
            else:
                self.message_user(request, f"Started {rollout}.", messages.SUCCESS)
                return HttpResponseRedirect(self._detail_url(rollout.pk))
        return self._form_page(request, None, "Start a rollout", form, "Start")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        rollout = get_object_or_404(Rollout, pk=object_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        phase = rollout.phases.filter(number=rollout.current_phase).first()
        context = {
            **self.admin_site.each_context(request),
            "title": str(rollout),
            "opts": self.model._meta,
            "rollout": rollout,
            "phases": list(rollout.phases.all()),
            "events": list(rollout.events.all()),
            "criteria": rollouts.phase_criteria(rollout, phase) if phase and rollout.state == "active" else [],
            "can_advance": request.user.has_perm(ADVANCE_PERMISSION) and rollout.state == Rollout.State.ACTIVE,
            "can_roll_back": request.user.has_perm(ROLLBACK_PERMISSION) and rollout.state in rollouts.OPEN_STATES,
        }
        return TemplateResponse(request, "admin/rollout/rollout/detail.html", context)

    # Actions

    def advance_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = self._rollout_for(request, rollout_id, ADVANCE_PERMISSION)
        form = AdvanceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            done = self._run(request, form, lambda: rollouts.advance_phase(
                rollout, actor=_actor(request), override_reason=form.cleaned_data["override_reason"],
                expected_phase=rollout.current_phase,
            ))
            if done is not None:
                self.message_user(request, f"Rollout {rollout.pk} is now in phase {done.current_phase} ({done.state}).")
                return HttpResponseRedirect(self._detail_url(rollout.pk))
        return self._form_page(request, rollout, f"Advance rollout {rollout.pk} from phase {rollout.current_phase}",
                               form, "Advance")

    def canary_step_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = self._rollout_for(request, rollout_id, ADVANCE_PERMISSION)
        if request.method != "POST":
            return HttpResponseRedirect(self._detail_url(rollout.pk))
        try:
            rollout = rollouts.expand_canary(rollout, actor=_actor(request))
        except RegistryConflict as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, f"Canary tenants enabled: {', '.join(rollout.enabled_canaries)}.")
        return HttpResponseRedirect(self._detail_url(rollout.pk))

    def abort_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = self._rollout_for(request, rollout_id, ADVANCE_PERMISSION)
        form = AbortForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            done = self._run(request, form, lambda: rollouts.abort(rollout, actor=_actor(request),
                                                                  reason=form.cleaned_data["reason"]))
            if done is not None:
                self.message_user(request, f"Rollout {rollout.pk} aborted.", messages.WARNING)
                return HttpResponseRedirect(self._detail_url(rollout.pk))
        return self._form_page(request, rollout, f"Abort rollout {rollout.pk}", form, "Abort")

    def rollback_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = self._rollout_for(request, rollout_id, ROLLBACK_PERMISSION)
        form = RollbackForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            done = self._run(request, form, lambda: rollouts.rollback(
                rollout, scope=form.cleaned_data["scope"], scope_id=form.scope_id, actor=_actor(request),
                reason=form.cleaned_data["reason"],
            ))
            if done is not None:
                target = f" {done.scope_id}" if done.scope_id else ""
                self.message_user(request, f"Rolled back {done.get_scope_display()}{target}; verification pending.",
                                  messages.WARNING)
                return HttpResponseRedirect(self._detail_url(rollout.pk))
        return self._form_page(request, rollout, f"Roll back rollout {rollout.pk}", form, "Roll back")

    @admin.action(description="Roll back the selected rollout", permissions=["rollback"])
    def roll_back_selected(self, request: HttpRequest, queryset: QuerySet[Rollout]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one rollout to roll back.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:rollout_rollout_rollback", args=[queryset.get().pk]))

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ROLLBACK_PERMISSION)

    # Dashboard

    def dashboard_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **dashboard_context(rollout),
            "title": f"Dashboard of rollout {rollout.pk} ({rollout.get_stage_display()})",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/rollout/rollout/dashboard.html", context)

    def latest_dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        rollout = Rollout.objects.filter(state__in=rollouts.OPEN_STATES).first() or Rollout.objects.first()
        if rollout is None:
            self.message_user(request, "There is no rollout yet; start one first.", messages.INFO)
            return HttpResponseRedirect(reverse("admin:rollout_rollout_changelist"))
        return HttpResponseRedirect(reverse("admin:rollout_rollout_dashboard", args=[rollout.pk]))

    # Helpers

    def _rollout_for(self, request: HttpRequest, rollout_id: int, permission: str) -> Rollout:
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return get_object_or_404(Rollout, pk=rollout_id)

    def _run(self, request: HttpRequest, form: forms.Form, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (InvalidDocument, RegistryConflict) as error:
            _add_errors(form, error)
            return None

    def _form_page(self, request: HttpRequest, rollout: Rollout | None, title: str, form: forms.Form,
                   submit: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title, "opts": self.model._meta, "rollout": rollout, "form": form, "submit": submit,
        }
        return TemplateResponse(request, "admin/rollout/rollout/action.html", context)

    def _detail_url(self, rollout_id: int) -> str:
        return reverse("admin:rollout_rollout_change", args=[rollout_id])


@admin.register(RolloutEvent)
class RolloutEventAdmin(admin.ModelAdmin):
    """The rollouts' events, read-only: a rollback shows its trigger, figures, scope and verification."""

    list_display = ["created_at", "rollout", "kind", "phase", "actor", "through", "trigger", "value", "baseline",
                    "threshold", "scope", "scope_id", "verification", "reason"]
    list_filter = ["kind", "trigger", "through", "verification"]
    search_fields = ["reason", "scope_id", "actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RolloutEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RolloutEvent | None = None) -> bool:
        return False


def _add_errors(form: forms.Form, error: InvalidDocument | RegistryConflict) -> None:
    if isinstance(error, InvalidDocument):
        for field_error in error.errors:
            field = field_error.field if field_error.field in form.fields else None
            form.add_error(field, field_error.message)
    else:
        form.add_error(None, error.message)
