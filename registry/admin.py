"""The registry in the admin, for ops staff.

Every save goes through ``registry.services``, as the API's do, so each change is validated
the same way and bumps the registry revision. Inline rows are turned into documents and
saved by the services, not by the formsets.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.html import format_html
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from registry import services
from registry.forms import (
    ExtensionVersionFormSet,
    ExtensionVersionInlineForm,
    PolicyForm,
    PolicyStepInlineForm,
    StageStepFormSet,
)
from registry.models import STAGES, ApiToken, Extension, ExtensionVersion, PolicyStep, RoutingPolicy, Tenant


def _record_formset_changes(formset: BaseInlineFormSet, new: list, changed: list, deleted: list) -> None:
    # The admin's change message reads these attributes, which formset.save() would have set.
    formset.new_objects = new
    formset.changed_objects = changed
    formset.deleted_objects = deleted


# Tenants


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["tenant_id", "name", "updated_at"]
    search_fields = ["tenant_id", "name", "description"]
    fields = ["tenant_id", "name", "description"]

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        return ["tenant_id"] if obj else []

    def save_model(self, request: HttpRequest, obj: Tenant, form: forms.ModelForm, change: bool) -> None:
        if change:
            services.update_tenant(obj, {"name": obj.name, "description": obj.description})
            return
        created = services.create_tenant({"tenant_id": obj.tenant_id, "name": obj.name, "description": obj.description})
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        services.delete_tenant(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            services.delete_tenant(tenant)


# Extensions


class SideEffectFreeFilter(admin.SimpleListFilter):
    title = "side-effect free"
    parameter_name = "side_effect_free"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Extension]) -> QuerySet[Extension]:
        if self.value() in ("yes", "no"):
            return queryset.filter(active_side_effect_free=self.value() == "yes")
        return queryset


class ExtensionVersionInline(admin.TabularInline):
    model = ExtensionVersion
    form = ExtensionVersionInlineForm
    formset = ExtensionVersionFormSet
    fields = [
        "active", "version", "subject", "timeout_ms", "retry", "side_effect_free", "description", "config",
        "metadata_extra", "review_status", "probe_status", "created_at",
    ]
    readonly_fields = ["review_status", "probe_status", "created_at"]
    extra = 0
    ordering = ["created_at", "id"]

    def get_extra(self, request: HttpRequest, obj: Extension | None = None, **kwargs: Any) -> int:
        return 0 if obj else 1


class ExtensionForm(forms.ModelForm):
    class Meta:
        model = Extension
        fields = ["extension_id", "type", "enabled", "owner"]

    def clean_type(self) -> str:
        extension_type = self.cleaned_data["type"]
        if self.instance.pk:
            blocking = services.policies_that_block_type(self.instance, extension_type)
            if blocking:
                raise forms.ValidationError(
                    f"Policies {', '.join(blocking)} use this extension in a stage that needs type "
                    f"{self.instance.type!r}; change them first."
                )
        return extension_type


@admin.register(Extension)
class ExtensionAdmin(admin.ModelAdmin):
    form = ExtensionForm
    inlines = [ExtensionVersionInline]
    list_display = [
        "extension_id", "type", "enabled", "side_effect_free", "probe_result", "active_version_label", "active_subject",
        "owner",
    ]
    list_filter = ["type", "enabled", SideEffectFreeFilter]
    search_fields = ["extension_id", "versions__subject", "versions__description"]
    actions = ["mark_side_effect_free", "mark_has_side_effects"]
    list_select_related = ["owner"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Extension]:
        active = ExtensionVersion.objects.filter(extension=OuterRef("pk"), is_active=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_side_effect_free=Subquery(active.values("side_effect_free")[:1]),
                active_probe_status=Subquery(active.values("probe_status")[:1]),
                active_version_value=Subquery(active.values("version")[:1]),
                active_subject_value=Subquery(active.values("subject")[:1]),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Extension | None = None) -> list[str]:
        return ["extension_id"] if obj else []

    def has_probe_permission(self, request: HttpRequest) -> bool:
        # Checked by the probe action, which the executor app adds to this admin.
        return request.user.has_perm("registry.probe_extensionversion")

    @admin.display(boolean=True, description="side-effect free", ordering="active_side_effect_free")
    def side_effect_free(self, obj: Extension) -> bool | None:
        return obj.active_side_effect_free

    @admin.display(description="probe", ordering="active_probe_status")
    def probe_result(self, obj: Extension) -> str:
        return probe_label(obj.active_side_effect_free, obj.active_probe_status)

    @admin.display(description="active version", ordering="active_version_value")
    def active_version_label(self, obj: Extension) -> str:
        return obj.active_version_value or "(unlabelled)"

    @admin.display(description="subject", ordering="active_subject_value")
    def active_subject(self, obj: Extension) -> str:
        return obj.active_subject_value or ""

    # Saving

    def save_model(self, request: HttpRequest, obj: Extension, form: forms.ModelForm, change: bool) -> None:
        if change:
            data = form.cleaned_data
            services.update_extension_settings(
                obj, extension_type=data["type"], enabled=data["enabled"], owner=data["owner"]
            )
        # A new extension is created in save_related, together with its first version.

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        formset = formsets[0]
        rows = formset.kept_forms()
        active_row = next(row for row in rows if row.cleaned_data.get("active"))
        extension = form.instance
        new_versions: list[ExtensionVersion] = []
        changed_versions: list[tuple[ExtensionVersion, list[str]]] = []

        if not change:
            created = services.create_extension(
                self._entry(form, active_row), user=request.user, owner=form.cleaned_data["owner"]
            )
            extension.pk = created.pk
            new_versions.append(created.active_version)
        for row in rows:
            if not change and row is active_row:
                continue
            changed_fields = [name for name in row.changed_data if name != "active"]
            if row.instance.pk:
                if changed_fields:
                    services.update_version(row.instance, row.version_data())
                    changed_versions.append((row.instance, changed_fields))
            else:
                row.instance = services.create_version(extension, row.version_data(), user=request.user)
                new_versions.append(row.instance)

        if change and not active_row.instance.is_active:
            services.activate_version(active_row.instance)
        deleted = [row.instance for row in formset.deleted_forms if row.instance.pk]
        for version in deleted:
            services.delete_version(version)
        _record_formset_changes(formset, new_versions, changed_versions, deleted)

    def _entry(self, form: forms.ModelForm, active_row: ExtensionVersionInlineForm) -> dict[str, Any]:
        data = form.cleaned_data
        entry = {"id": data["extension_id"], "type": data["type"], "enabled": data["enabled"]}
        entry.update({key: value for key, value in active_row.version_data().items() if value is not None})
        return entry

    def delete_model(self, request: HttpRequest, obj: Extension) -> None:
        services.delete_extension(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Extension]) -> None:
        for extension in queryset:
            services.delete_extension(extension)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Policy steps name extensions by id rather than by foreign key, so the admin's own
        # protection check cannot see them.
        in_use = services.policies_using([extension.extension_id for extension in objs])
        protected = list(protected) + [f"Routing policy {policy_id} uses it" for policy_id in in_use]
        return deleted, model_count, perms_needed, protected

    # Bulk actions

    @admin.action(description="Mark side-effect free", permissions=["change"])
    def mark_side_effect_free(self, request: HttpRequest, queryset: QuerySet[Extension]) -> HttpResponse | None:
        return self._change_side_effects(request, queryset, side_effect_free=True, action="mark_side_effect_free")

    @admin.action(description="Mark as having side effects", permissions=["change"])
    def mark_has_side_effects(self, request: HttpRequest, queryset: QuerySet[Extension]) -> HttpResponse | None:
        return self._change_side_effects(request, queryset, side_effect_free=False, action="mark_has_side_effects")

    def _change_side_effects(
        self, request: HttpRequest, queryset: QuerySet[Extension], *, side_effect_free: bool, action: str
    ) -> HttpResponse | None:
        """Show a confirmation page; on confirmation, change each extension's active version."""
        if request.POST.get("confirm") != "yes":
            return self._side_effect_confirmation(request, queryset, side_effect_free, action)

        changed = 0
        for extension in queryset:
            if extension.active_side_effect_free == side_effect_free:
                continue
            services.set_side_effect_free(extension, side_effect_free)
            self.log_change(request, extension, [{"changed": {"fields": ["side_effect_free"]}}])
            changed += 1
        label = "side-effect free" if side_effect_free else "having side effects"
        self.message_user(request, f"Marked {changed} extension(s) as {label}.", messages.SUCCESS)
        return None

    def _side_effect_confirmation(
        self, request: HttpRequest, queryset: QuerySet[Extension], side_effect_free: bool, action: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Mark side-effect free?" if side_effect_free else "Mark as having side effects?",
            "opts": self.model._meta,
            "extensions": queryset,
            "side_effect_free": side_effect_free,
            "action_name": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/registry/extension/side_effect_confirmation.html", context)


def probe_label(side_effect_free: bool | None, probe_status: str | None) -> str:
    """Return the probe column's text; a side-effect-free claim that failed the probe is marked."""
    if probe_status is None:
        return "-"
    label = ExtensionVersion.ProbeStatus(probe_status).label
    if side_effect_free and probe_status == ExtensionVersion.ProbeStatus.FAILED:
        return format_html('<strong class="errornote">{}: runs sequentially until it passes</strong>', label)
    return label


# Review of submitted versions


class ReviewStatusFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ExtensionVersion.ReviewStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ExtensionVersion]) -> QuerySet[ExtensionVersion]:
        if self.value():
            return queryset.filter(review_status=self.value())
        return queryset


class ReviewForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        help_text="The author reads this beside the version's status.",
    )


@admin.register(ExtensionVersion)
class ExtensionVersionAdmin(admin.ModelAdmin):
    """Every version, for review: ops staff approve or reject what authors submit.

    Versions are added, edited and activated on their extension's page; this list only reviews
    and probes them.
    """

    list_display = [
        "__str__", "subject", "side_effect_free", "probe", "review_status", "is_active", "created_by", "created_at",
    ]
    list_filter = [ReviewStatusFilter, "side_effect_free", "probe_status", "is_active"]
    search_fields = ["extension__extension_id", "version", "subject", "description"]
    list_select_related = ["extension", "created_by"]
    actions = ["approve_versions", "reject_versions"]
    readonly_fields = [
        "extension", "version", "subject", "timeout_ms", "retry", "side_effect_free", "description", "config",
        "metadata_extra", "is_active", "created_by", "created_at", "review_status", "review_reason", "reviewed_by",
        "reviewed_at", "probe_status", "probe_detail", "probed_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        # Deleting stays on the extension's page, where the active version is visible.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: ExtensionVersion) -> None:
        services.delete_version(obj)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("registry.review_extensionversion")

    def has_probe_permission(self, request: HttpRequest) -> bool:
        # Checked by the probe action, which the executor app adds to this admin.
        return request.user.has_perm("registry.probe_extensionversion")

    @admin.display(description="probe", ordering="probe_status")
    def probe(self, obj: ExtensionVersion) -> str:
        return probe_label(obj.side_effect_free, obj.probe_status)

    @admin.action(description="Approve selected versions", permissions=["review"])
    def approve_versions(self, request: HttpRequest, queryset: QuerySet[ExtensionVersion]) -> HttpResponse | None:
        return self._review(request, queryset, approve=True, action="approve_versions")

    @admin.action(description="Reject selected versions", permissions=["review"])
    def reject_versions(self, request: HttpRequest, queryset: QuerySet[ExtensionVersion]) -> HttpResponse | None:
        return self._review(request, queryset, approve=False, action="reject_versions")

    def _review(
        self, request: HttpRequest, queryset: QuerySet[ExtensionVersion], *, approve: bool, action: str
    ) -> HttpResponse | None:
        """Show the reason form; on confirmation, review each version through the services."""
        form = ReviewForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid() and not approve and not form.cleaned_data["reason"].strip():
            form.add_error("reason", "Give the reason for rejecting, so the author knows what to change.")
        if not (form.is_bound and form.is_valid()):
            return self._review_confirmation(request, queryset, form, approve, action)

        reason = form.cleaned_data["reason"]
        reviewed = 0
        for version in queryset:
            try:
                if approve:
                    services.approve_version(version, reviewer=request.user, reason=reason)
                else:
                    services.reject_version(version, reviewer=request.user, reason=reason)
            except services.RegistryConflict as conflict:
                self.message_user(request, conflict.message, messages.WARNING)
                continue
            verb = "Approved" if approve else "Rejected"
            self.log_change(request, version, f"{verb}: {reason}" if reason else verb)
            reviewed += 1
        verb = "Approved" if approve else "Rejected"
        self.message_user(request, f"{verb} {reviewed} version(s).", messages.SUCCESS)
        return None

    def _review_confirmation(
        self, request: HttpRequest, queryset: QuerySet[ExtensionVersion], form: ReviewForm, approve: bool, action: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve these versions?" if approve else "Reject these versions?",
            "opts": self.model._meta,
            "versions": queryset,
            "approve": approve,
            "form": form,
            "action_name": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/registry/extensionversion/review_confirmation.html", context)


# Policies


class StepInline(admin.TabularInline):
    model = PolicyStep
    form = PolicyStepInlineForm
    extra = 1
    stage = ""

    def get_formset(self, request: HttpRequest, obj: RoutingPolicy | None = None, **kwargs: Any) -> type:
        formset = super().get_formset(request, obj, **kwargs)
        return type(f"{self.stage.capitalize()}StepFormSet", (formset,), {"stage": self.stage})

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyStep]:
        return super().get_queryset(request).filter(stage=self.stage).order_by("position")


class PreStepInline(StepInline):
    stage = "pre"
    formset = StageStepFormSet
    fields = ["position", "extension_id", "mode", "depends_on", "config"]
    verbose_name = "pre-processor step"
    verbose_name_plural = "pre stage (pre-processors, in declared order)"


class ValidatorStepInline(StepInline):
    stage = "validators"
    formset = StageStepFormSet
    fields = ["position", "extension_id", "on_fail", "depends_on", "config"]
    verbose_name = "validator step"
    verbose_name_plural = "validators stage (in declared order)"


class PostStepInline(StepInline):
    stage = "post"
    formset = StageStepFormSet
    fields = ["position", "extension_id", "mode", "depends_on", "config"]
    verbose_name = "post-processor step"
    verbose_name_plural = "post stage (post-processors, in declared order)"


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    inlines = [PreStepInline, ValidatorStepInline, PostStepInline]
    list_display = ["policy_id", "tenant", "step_count", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["policy_id", "tenant__tenant_id", "tenant__name", "steps__extension_id"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: RoutingPolicy | None = None) -> list[str]:
        return ["policy_id"] if obj else []

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingPolicy]:
        return super().get_queryset(request).prefetch_related("steps")

    @admin.display(description="steps")
    def step_count(self, obj: RoutingPolicy) -> int:
        return len(obj.steps.all())

    def save_model(self, request: HttpRequest, obj: RoutingPolicy, form: forms.ModelForm, change: bool) -> None:
        # The policy and its steps are saved together in save_related, as one document.
        pass

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        policy = form.instance
        document = self._document(policy, form, formsets, change)
        if change:
            saved = services.replace_policy(RoutingPolicy.objects.get(pk=policy.pk), document)
        else:
            saved = services.create_policy(document)
        policy.pk = saved.pk
        for formset in formsets:
            _record_formset_changes(formset, [], [], [])

    def _document(self, policy: RoutingPolicy, form: forms.ModelForm, formsets: list, change: bool) -> dict[str, Any]:
        data = form.cleaned_data
        policy_id = policy.policy_id if change else data["policy_id"]
        document: dict[str, Any] = {"policy_id": policy_id, "tenant_id": data["tenant"].tenant_id}
        declared = set(RoutingPolicy.objects.get(pk=policy.pk).declared_stages) if change else set()
        for formset in formsets:
            steps = [formset.step_document(row) for row in formset.ordered_rows()]
            if steps or formset.stage in declared:
                document[formset.stage] = steps
        document.update(data["router_keys"])
        return {key: document[key] for key in ("policy_id", "tenant_id", *STAGES, *data["router_keys"]) if key in document}


# API tokens


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "user", "scope"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "user", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username"]
    actions = ["revoke_tokens"]
    list_select_related = ["user"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        return ["user", "scope", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        token, secret = services.create_api_token(obj.name, obj.scope, user=obj.user)
        obj.pk = token.pk
        obj.secret_hash = token.secret_hash
        # Kept on this request only, so the page after saving can show the secret once.
        request.new_api_token_secret = secret

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.model._meta,
            "token": obj,
            "secret": request.new_api_token_secret,
        }
        response = TemplateResponse(request, "admin/registry/apitoken/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            services.revoke_api_token(token)
            self.log_change(request, token, "Revoked the token.")
        self.message_user(request, "Revoked the selected tokens.", messages.SUCCESS)
