"""The executor's HTTP routes, mounted under /api/v1/ before the registry's."""
from django.urls import re_path

from executor import views

urlpatterns = [
    re_path(r"^executions/?$", views.ExecutionView.as_view(), name="execution-list"),
    re_path(r"^policies/(?P<policy_id>[^/]+)/plan/?$", views.PlanView.as_view(), name="policy-plan"),
]
