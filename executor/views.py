"""The executor's HTTP endpoints: run a pipeline, and show the plan for a policy.

``POST /api/v1/executions`` hands the request to the executor service over NATS, so HTTP
and NATS callers get the same runtime, the same snapshot and the same reply.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from nats.errors import ConnectionClosedError, NoRespondersError, TimeoutError as NatsTimeoutError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beamline_console.nats_bridge import NatsBridgeError, get_bridge
from executor.core.errors import PlanError
from executor.core.plan import build_plan
from executor.core.service import EXECUTE_SUBJECT
from executor.flag_source import DatabaseFlagSource
from executor.snapshot_loader import extension_spec, policy_spec
from registry.api_errors import error_body
from registry.documents import extensions_with_active_version, policies_with_steps
from registry.models import RoutingPolicy

logger = logging.getLogger("executor.api")

# Request errors of the executor service and the HTTP status each one gets.
STATUS_BY_ERROR_TYPE = {
    "invalid_request": 400,
    "policy_not_found": 404,
    "overloaded": 503,
    "snapshot_unavailable": 503,
}


class ExecutionView(APIView):
    """Run a pipeline: ``{tenant_id, policy_id, payload, metadata?, trace_id?, stages?}``.

    Every pipeline outcome, a failure included, is a 200 whose ``status`` reports how it went.
    A malformed request is a 400, an unknown policy or one of another tenant a 404, and an
    executor that is overloaded, not yet loaded or not running a 503.
    """

    permission_model = RoutingPolicy
    permission_actions = {"POST": "view"}

    @extend_schema(request=dict, responses={200: dict}, summary="Run a pipeline")
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            return _error(400, "invalid_request", "The request body must be a JSON object.", "$")

        try:
            reply = self._run_on_executor(request.data, request.headers.get("traceparent"))
        except NoRespondersError:
            return _error(
                503, "executor_unavailable",
                f"No executor is listening on {EXECUTE_SUBJECT}; start one with `manage.py run_executor`.",
            )
        except NatsTimeoutError:
            return _error(504, "executor_timeout", "The executor did not reply in time.")
        except (NatsBridgeError, ConnectionClosedError, OSError) as error:
            return _error(503, "nats_unavailable", f"NATS cannot be reached: {error}")

        return _response_for_reply(reply)

    def _run_on_executor(self, body: dict[str, Any], traceparent: str | None) -> dict[str, Any]:
        # The caller's W3C trace context travels on as a NATS header, so the pipeline's spans
        # join the router's trace.
        headers = {"traceparent": traceparent} if traceparent else None
        message = get_bridge().request(
            EXECUTE_SUBJECT, json.dumps(body).encode(), timeout=settings.EXECUTION_HTTP_TIMEOUT_S, headers=headers
        )
        return json.loads(message.data)


class PlanView(APIView):
    """The plan of a policy for a tenant under the flags in force, with each step's reason."""

    permission_model = RoutingPolicy

    @extend_schema(
        parameters=[OpenApiParameter("tenant_id", str, description="Tenant to plan for; the policy's own by default.")],
        responses={200: dict},
        summary="Show a policy's execution plan",
    )
    def get(self, request: Request, policy_id: str) -> Response:
        policy = get_object_or_404(policies_with_steps(), policy_id=policy_id)
        tenant_id = request.query_params.get("tenant_id", policy.tenant.tenant_id)
        specs = [extension_spec(extension) for extension in extensions_with_active_version()]
        extensions = {spec.id: spec for spec in specs if spec is not None}

        try:
            plan = build_plan(policy_spec(policy), extensions, DatabaseFlagSource().current(), tenant_id)
        except PlanError as error:
            return _error(409, "invalid_plan", str(error))
        return Response(plan.as_dict())


def _response_for_reply(reply: dict[str, Any]) -> Response:
    error = reply.get("error") or {}
    status_code = STATUS_BY_ERROR_TYPE.get(error.get("type", "")) if reply.get("execution") is None else None
    if status_code is None:
        return Response(reply)

    details = [{"path": error["path"], "message": error.get("message", "")}] if "path" in error else None
    return Response(error_body(error["type"], error.get("message", ""), details), status=status_code)


def _error(status_code: int, code: str, message: str, path: str | None = None) -> Response:
    details = [{"path": path, "message": message}] if path is not None else None
    return Response(error_body(code, message, details), status=status_code)
