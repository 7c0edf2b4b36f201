"""The extension authors' pages: their extensions with review and probe status, and submissions.

Authors see and change only extensions they own. They cannot review, activate or probe
versions; ops staff do that in the admin.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse, reverse_lazy
from django.views.generic import FormView, ListView

from authors.forms import SIDE_EFFECTS_METADATA_KEY, ExtensionSubmissionForm, SubmissionForm, VersionSubmissionForm
from registry import services
from registry.models import Extension, ExtensionVersion
from registry.validation import InvalidDocument


class AuthorRequiredMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """A signed-in user with permission to submit extensions; others go to the sign-in page or get 403."""

    login_url = reverse_lazy("authors:sign-in")
    permission_required = "registry.submit_extension"


class ExtensionListView(AuthorRequiredMixin, ListView):
    template_name = "authors/extension_list.html"
    context_object_name = "extensions"

    def get_queryset(self) -> QuerySet[Extension]:
        versions = ExtensionVersion.objects.select_related("reviewed_by").order_by("-created_at", "-id")
        return Extension.objects.filter(owner=self.request.user).prefetch_related(
            Prefetch("versions", queryset=versions, to_attr="newest_first")
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["side_effects_key"] = SIDE_EFFECTS_METADATA_KEY
        return context


class SubmissionView(AuthorRequiredMixin, FormView):
    template_name = "authors/submit.html"
    success_url = reverse_lazy("authors:extension-list")

    def form_valid(self, form: SubmissionForm) -> HttpResponse:
        try:
            version = self.submit(form)
        except InvalidDocument as invalid:
            form.add_field_errors(invalid.errors)
            return self.form_invalid(form)
        except services.RegistryConflict as conflict:
            form.add_error(None, conflict.message)
            return self.form_invalid(form)

        messages.success(self.request, f"Submitted {version}. It waits for review by ops staff.")
        return HttpResponseRedirect(self.get_success_url())

    def submit(self, form: SubmissionForm) -> ExtensionVersion:
        raise NotImplementedError


class SubmitExtensionView(SubmissionView):
    form_class = ExtensionSubmissionForm
    extra_context = {"title": "Submit a new extension"}

    def submit(self, form: ExtensionSubmissionForm) -> ExtensionVersion:
        return services.submit_extension(form.entry(), author=self.request.user)

    def form_valid(self, form: ExtensionSubmissionForm) -> HttpResponse:
        if Extension.objects.filter(extension_id=form.cleaned_data["extension_id"]).exists():
            form.add_error("extension_id", "This id is already registered; choose another.")
            return self.form_invalid(form)
        return super().form_valid(form)


class SubmitVersionView(SubmissionView):
    form_class = VersionSubmissionForm

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            # Another author's extension is not found rather than forbidden, so the response reveals nothing about it.
            self.extension = get_object_or_404(Extension, extension_id=kwargs["extension_id"], owner=request.user)
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "extension": self.extension}

    def get_initial(self) -> dict[str, Any]:
        latest = self.extension.versions.order_by("-created_at", "-id").first()
        if latest is None:
            return {}
        return {
            "subject": latest.subject,
            "timeout_ms": latest.timeout_ms,
            "retry": latest.retry,
            "description": latest.description,
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["title"] = f"Submit a new version of {self.extension.extension_id}"
        context["extension"] = self.extension
        return context

    def submit(self, form: VersionSubmissionForm) -> ExtensionVersion:
        return services.submit_version(self.extension, form.version_document(), author=self.request.user)

    def get_success_url(self) -> str:
        return reverse("authors:extension-list")
