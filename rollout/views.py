"""REST API of the parallel-execution flags, mounted under /api/v1/parallel-execution.

The views parse the request, call ``rollout.services`` and shape the reply. Validation
errors are 400s and a change that needs confirmation is a 409, both in the API's error shape.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.models import ApiToken
from registry.revision import current_revision
from registry.serializers import ErrorSerializer
from registry.validation import FieldError, InvalidDocument
from rollout import services
from rollout.flags import FLAGS_BY_NAME
from rollout.models import FlagChange, FlagOverride, PolicyOverride, TenantOverride
from rollout.services import Actor
from rollout.status import status_document

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request; details name every problem."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="The credentials do not allow this request."),
    409: OpenApiResponse(ErrorSerializer, description="The change needs confirm_all_tenants: true."),
}
REQUEST_KEYS = ("reason", "confirm_all_tenants")
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000


class ParallelExecutionView(APIView):
    """The flags in force, with each one's source, and changes to their database overrides."""

    permission_model = FlagOverride

    @extend_schema(responses={200: dict, **ERROR_RESPONSES}, summary="Show the parallel-execution status")
    def get(self, request: Request) -> Response:
        return Response(status_document())

    @extend_schema(
        request=dict,
        responses={200: dict, **ERROR_RESPONSES},
        summary="Set or clear flag overrides",
        description=(
            "Flag names as keys; null clears the database override. Optional `reason` and "
            "`confirm_all_tenants` (needed to empty a non-empty allowlist or to turn the master "
            "switch on while the tenant allowlist is empty)."
        ),
    )
    def patch(self, request: Request) -> Response:
        body = _object_body(request)
        changes = {key: value for key, value in body.items() if key not in REQUEST_KEYS}
        if not changes:
            raise _invalid("flags", f"Give at least one flag to change; expected one of {', '.join(FLAGS_BY_NAME)}.")

        entries = services.change_flags(
            changes,
            actor=actor_of(request),
            reason=body.get("reason", ""),
            confirm_all_tenants=_confirmation(body),
        )
        return Response({**status_document(), "changes": [change_document(entry) for entry in entries]})


class OverrideView(APIView):
    """``PUT`` sets an override to ``{"enabled": true|false, "reason"?}``; ``DELETE`` clears it."""

    permission_actions = {"PUT": "change", "DELETE": "change"}
    id_field = ""

    def put(self, request: Request, **ids: str) -> Response:
        body = _object_body(request)
        target = ids[self.id_field]
        entry = self.set_override(target, body.get("enabled"), actor=actor_of(request), reason=body.get("reason", ""))
        revision = entry.revision if entry is not None else current_revision()
        return Response({self.id_field: target, "enabled": body["enabled"], "revision": revision})

    def delete(self, request: Request, **ids: str) -> Response:
        target = ids[self.id_field]
        reason = request.query_params.get("reason", "")
        if isinstance(request.data, dict) and "reason" in request.data:
            reason = request.data["reason"]

        entry = self.clear_override(target, actor=actor_of(request), reason=reason)
        if entry is None:
            return Response(
                {"error": {"code": "not_found", "message": f"There is no override for {target!r}."}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)

    def set_override(self, target: str, enabled: Any, *, actor: Actor, reason: str) -> FlagChange | None:
        raise NotImplementedError

    def clear_override(self, target: str, *, actor: Actor, reason: str) -> FlagChange | None:
        raise NotImplementedError


@extend_schema(
    parameters=[OpenApiParameter("tenant_id", str, OpenApiParameter.PATH)],
    request=dict,
    responses={200: dict, 204: None, 404: OpenApiResponse(ErrorSerializer), **ERROR_RESPONSES},
)
class TenantOverrideView(OverrideView):
    """Parallel execution on or off for one tenant, beating the tenant allowlist."""

    permission_model = TenantOverride
    id_field = "tenant_id"

    def set_override(self, target: str, enabled: Any, *, actor: Actor, reason: str) -> FlagChange | None:
        return services.set_tenant_override(target, enabled, actor=actor, reason=reason)

    def clear_override(self, target: str, *, actor: Actor, reason: str) -> FlagChange | None:
        return services.clear_tenant_override(target, actor=actor, reason=reason)


@extend_schema(
    parameters=[OpenApiParameter("policy_id", str, OpenApiParameter.PATH)],
    request=dict,
    responses={200: dict, 204: None, 404: OpenApiResponse(ErrorSerializer), **ERROR_RESPONSES},
)
class PolicyOverrideView(OverrideView):
    """Parallel execution on or off for one routing policy, beating the policy allowlist."""

    permission_model = PolicyOverride
    id_field = "policy_id"

    def set_override(self, target: str, enabled: Any, *, actor: Actor, reason: str) -> FlagChange | None:
        return services.set_policy_override(target, enabled, actor=actor, reason=reason)

    def clear_override(self, target: str, *, actor: Actor, reason: str) -> FlagChange | None:
        return services.clear_policy_override(target, actor=actor, reason=reason)


class HistoryView(APIView):
    """The audit trail of flag and override changes, newest first."""

    permission_model = FlagChange

    @extend_schema(
        parameters=[
            OpenApiParameter("target_type", str, enum=list(FlagChange.TargetType.values)),
            OpenApiParameter("target", str, description="A flag name, tenant id or policy id."),
            OpenApiParameter("through", str, enum=list(FlagChange.Through.values)),
            OpenApiParameter("actor", str),
            OpenApiParameter("limit", int, description=f"At most this many entries (default {DEFAULT_HISTORY_LIMIT}, "
                                                      f"maximum {MAX_HISTORY_LIMIT})."),
        ],
        responses={200: dict, **ERROR_RESPONSES},
        summary="List flag and override changes",
    )
    def get(self, request: Request) -> Response:
        entries = FlagChange.objects.select_related("user")
        for name, choices in (("target_type", FlagChange.TargetType.values), ("through", FlagChange.Through.values)):
            value = request.query_params.get(name)
            if value is None:
                continue
            if value not in choices:
                raise _invalid(name, f"Query parameter {name}={value!r} is invalid; expected one of {', '.join(choices)}.")
            entries = entries.filter(**{name: value})
        for name in ("target", "actor"):
            if name in request.query_params:
                entries = entries.filter(**{name: request.query_params[name]})

        return Response([change_document(entry) for entry in entries[: _history_limit(request)]])


def actor_of(request: Request) -> Actor:
    """Return who makes the change: ``token:<name>`` for an API token, else the signed-in user."""
    if isinstance(request.auth, ApiToken):
        return Actor(f"token:{request.auth.name}", FlagChange.Through.API, request.auth.user)
    return Actor(request.user.get_username(), FlagChange.Through.API, request.user)


def change_document(entry: FlagChange) -> dict[str, Any]:
    """Return an audit entry as the API shows it."""
    return {
        "id": entry.pk,
        "created_at": entry.created_at,
        "actor": entry.actor,
        "through": entry.through,
        "target_type": entry.target_type,
        "target": entry.target,
        "old_value": entry.old_value,
        "new_value": entry.new_value,
        "reason": entry.reason,
        "revision": entry.revision,
    }


def _object_body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise _invalid("", "The request body must be a JSON object.")
    return request.data


def _confirmation(body: dict[str, Any]) -> bool:
    confirm = body.get("confirm_all_tenants", False)
    if not isinstance(confirm, bool):
        raise _invalid("confirm_all_tenants", f"Expected true or false, got {confirm!r}.")
    return confirm


def _history_limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_HISTORY_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise _invalid("limit", f"Query parameter limit={raw!r} is invalid; expected 1 to {MAX_HISTORY_LIMIT}.")
    return limit


def _invalid(field: str, message: str) -> InvalidDocument:
    return InvalidDocument("invalid_request", "The request is invalid.", [FieldError("invalid", message, field, field)])
