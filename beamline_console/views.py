"""Project-wide pages: the home page and the API's index."""
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

API_ENDPOINTS = {
    "extensions": "/api/v1/extensions",
    "tenants": "/api/v1/tenants",
    "policies": "/api/v1/policies",
    "policy_plan": "/api/v1/policies/{policy_id}/plan?tenant_id={tenant_id}",
    "executions": "/api/v1/executions",
    "parallel_execution": "/api/v1/parallel-execution",
    "parallel_execution_history": "/api/v1/parallel-execution/history",
    "rollouts": "/api/v1/rollouts",
    "rollout_evidence": "/api/v1/rollouts/{id}/evidence?window=15m",
    "evidence": "/api/v1/evidence?stage=pre&window=15m",
    "schema": "/api/schema/",
    "docs": "/api/schema/docs/",
}


def home(request: HttpRequest) -> HttpResponse:
    """Show where each kind of user goes: the admin, the author pages, the API."""
    return render(request, "home.html", {"endpoints": API_ENDPOINTS})


class ApiIndexView(APIView):
    """The API's entry point: links to every collection, open to anyone since it contains no data."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: dict}, summary="List the API's endpoints")
    def get(self, request: Request) -> Response:
        return Response({"endpoints": API_ENDPOINTS, "authentication": "Authorization: Bearer <API token>"})


def api_not_found(request: HttpRequest, path: str) -> JsonResponse:
    """Return a 404 in the API's error shape, not an HTML page, for an unknown path under /api/v1/."""
    message = f"There is no API endpoint at /api/v1/{path}; GET /api/v1/ lists the endpoints."
    return JsonResponse({"error": {"code": "not_found", "message": message}}, status=404)
