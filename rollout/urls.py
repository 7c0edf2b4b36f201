"""REST API routes of the parallel-execution flags, mounted under /api/v1/. A trailing slash is optional."""
from django.urls import re_path

from rollout import evidence_views, views

urlpatterns = [
    re_path(r"^parallel-execution/?$", views.ParallelExecutionView.as_view(), name="parallel-execution"),
    re_path(r"^parallel-execution/history/?$", views.HistoryView.as_view(), name="parallel-execution-history"),
    re_path(
        r"^parallel-execution/tenants/(?P<tenant_id>[^/]+)/?$",
        views.TenantOverrideView.as_view(),
        name="parallel-execution-tenant",
    ),
    re_path(
        r"^parallel-execution/policies/(?P<policy_id>[^/]+)/?$",
        views.PolicyOverrideView.as_view(),
        name="parallel-execution-policy",
    ),
    re_path(r"^evidence/?$", evidence_views.EvidenceView.as_view(), name="evidence"),
    re_path(r"^evidence/mismatches/?$", evidence_views.ShadowMismatchView.as_view(), name="evidence-mismatches"),
]
