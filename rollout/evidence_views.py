"""REST API of the recorded evidence: parallel against sequential per stage, and shadow mismatches.

``GET /api/v1/evidence?stage=pre&window=15m[&tenant_id=...][&policy_id=...]`` sums the evidence
windows of the last ``window``; ``GET /api/v1/evidence/mismatches`` lists recent shadow mismatches.
Both need read scope (or, for staff sessions, the view permission on the evidence tables).
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executor.core.model import STAGES
from registry.serializers import ErrorSerializer
from registry.validation import FieldError, InvalidDocument
from rollout.evidence import summarize
from rollout.models import EvidenceWindow, ShadowMismatch

_WINDOW = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=31)
DEFAULT_WINDOW = "15m"
DEFAULT_MISMATCH_LIMIT = 50
MAX_MISMATCH_LIMIT = 500

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request; details name every problem."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="The credentials do not allow this request."),
}


def parse_window(raw: str) -> timedelta:
    """Parse a window such as ``30s``, ``5m``, ``1h`` or ``7d``; raises ``ValueError`` with the rule."""
    match = _WINDOW.match(raw.strip())
    if match is None:
        raise ValueError(f"window={raw!r} is invalid; expected a number and a unit s, m, h or d, such as 15m or 24h.")
    window = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValueError(f"window={raw!r} is invalid; expected more than 0 and at most 31d.")
    return window


class EvidenceView(APIView):
    """Parallel against sequential for one stage over the last ``window``."""

    permission_model = EvidenceWindow

    @extend_schema(
        parameters=[
            OpenApiParameter("stage", str, enum=list(STAGES), required=True),
            OpenApiParameter("window", str, description=f"How far back, such as 5m, 1h or 24h (default {DEFAULT_WINDOW})."),
            OpenApiParameter("tenant_id", str, description="Only this tenant; may be repeated."),
            OpenApiParameter("policy_id", str, description="Only this policy; may be repeated."),
        ],
        responses={200: dict, **ERROR_RESPONSES},
        summary="Compare parallel with sequential execution",
    )
    def get(self, request: Request) -> Response:
        stage = request.query_params.get("stage")
        if stage not in STAGES:
            raise invalid("stage", f"Query parameter stage={stage!r} is invalid; expected one of {', '.join(STAGES)}.")
        window = window_param(request)

        until = timezone.now()
        summary = summarize(
            stage, since=until - window, until=None,
            tenant_ids=request.query_params.getlist("tenant_id") or None,
            policy_ids=request.query_params.getlist("policy_id") or None,
        )
        return Response({"window_seconds": int(window.total_seconds()), **summary.as_dict()})


class ShadowMismatchView(APIView):
    """The most recent shadow mismatches, newest first."""

    permission_model = ShadowMismatch

    @extend_schema(
        parameters=[
            OpenApiParameter("stage", str, enum=list(STAGES)),
            OpenApiParameter("tenant_id", str),
            OpenApiParameter("policy_id", str),
            OpenApiParameter("limit", int, description=f"At most this many (default {DEFAULT_MISMATCH_LIMIT}, "
                                                      f"maximum {MAX_MISMATCH_LIMIT})."),
        ],
        responses={200: dict, **ERROR_RESPONSES},
        summary="List shadow mismatches",
    )
    def get(self, request: Request) -> Response:
        mismatches = ShadowMismatch.objects.all()
        for name in ("stage", "tenant_id", "policy_id"):
            value = request.query_params.get(name)
            if value is not None:
                mismatches = mismatches.filter(**{name: value})
        limit = _limit(request)
        return Response([mismatch_document(mismatch) for mismatch in mismatches[:limit]])


def window_param(request: Request, default: str = DEFAULT_WINDOW) -> timedelta:
    """Return the request's ``window`` query parameter; a bad value is a 400 naming the rule."""
    try:
        return parse_window(request.query_params.get("window", default))
    except ValueError as error:
        raise invalid("window", str(error)) from error


def mismatch_document(mismatch: ShadowMismatch) -> dict[str, Any]:
    """Return a shadow mismatch as the API shows it."""
    return {
        "id": mismatch.pk,
        "created_at": mismatch.created_at,
        "tenant_id": mismatch.tenant_id,
        "policy_id": mismatch.policy_id,
        "stage": mismatch.stage,
        "group_id": mismatch.group_id,
        "trace_id": mismatch.trace_id,
        "members": mismatch.members,
        "diff": mismatch.diff,
        "truncated": mismatch.truncated,
    }


def invalid(field: str, message: str) -> InvalidDocument:
    """Return the API's 400 for one invalid query parameter."""
    return InvalidDocument("invalid_request", "The request is invalid.", [FieldError("invalid", message, field, field)])


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_MISMATCH_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_MISMATCH_LIMIT:
        raise invalid("limit", f"Query parameter limit={raw!r} is invalid; expected 1 to {MAX_MISMATCH_LIMIT}.")
    return limit
