"""REST API routes of the parallel-execution flags, mounted under /api/v1/. A trailing slash is optional."""
from django.urls import re_path

from rollout import evidence_views, rollout_views, views

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
    re_path(r"^rollouts/?$", rollout_views.RolloutListView.as_view(), name="rollouts"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/?$", rollout_views.RolloutDetailView.as_view(), name="rollout"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/advance/?$", rollout_views.AdvanceView.as_view(), name="rollout-advance"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/canary-step/?$", rollout_views.CanaryStepView.as_view(),
            name="rollout-canary-step"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/abort/?$", rollout_views.AbortView.as_view(), name="rollout-abort"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/rollback/?$", rollout_views.RollbackView.as_view(),
            name="rollout-rollback"),
    re_path(r"^rollouts/(?P<rollout_id>\d+)/evidence/?$", rollout_views.EvidenceView.as_view(),
            name="rollout-evidence"),
]
