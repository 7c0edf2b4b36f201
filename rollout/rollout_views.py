"""REST API of the rollouts, mounted under /api/v1/rollouts.

Reading needs ``rollout.view_rollout``; starting one ``add_rollout``; advancing, canary steps
and aborting ``advance_rollout``; rolling back ``rollback_rollout``. API tokens go by scope.
A conflict (a lost race for the rollout, a closed rollout, unmet criteria) is a 409.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.serializers import ErrorSerializer
from registry.validation import FieldError, InvalidDocument
from rollout import rollouts
from rollout.evidence import summarize
from rollout.models import Rollout, RolloutEvent, RolloutPhase
from rollout.views import actor_of

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request; details name every problem."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="The credentials do not allow this request."),
    404: OpenApiResponse(ErrorSerializer, description="No rollout with this id."),
    409: OpenApiResponse(ErrorSerializer, description="The rollout's state forbids the action, or another action won."),
}
DEFAULT_WINDOW = "1h"
MAX_WINDOW = timedelta(days=30)
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RolloutListView(APIView):
    """Every rollout, newest first; ``POST`` starts one."""

    permission_model = Rollout

    @extend_schema(responses={200: dict, **ERROR_RESPONSES}, summary="List the rollouts")
    def get(self, request: Request) -> Response:
        return Response([rollout_summary(rollout) for rollout in Rollout.objects.all()[:100]])

    @extend_schema(
        request=dict, responses={201: dict, **ERROR_RESPONSES}, summary="Start a rollout",
        description="`{stage, internal_tenants, canary_tenants, canary_steps?}`; phase 1 starts and no flag changes.",
    )
    def post(self, request: Request) -> Response:
        body = _object_body(request)
        rollout = rollouts.start_rollout(
            body.get("stage", ""), internal_tenants=_list(body, "internal_tenants"),
            canary_tenants=_list(body, "canary_tenants"),
            canary_steps=_list(body, "canary_steps") if "canary_steps" in body else None, actor=actor_of(request),
        )
        return Response(rollout_document(rollout), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class RolloutDetailView(APIView):
    """One rollout with its phases and events."""

    permission_model = Rollout

    @extend_schema(responses={200: dict, **ERROR_RESPONSES}, summary="Show a rollout")
    def get(self, request: Request, rollout_id: int) -> Response:
        return Response(rollout_document(get_object_or_404(Rollout, pk=rollout_id)))


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class AdvanceView(APIView):
    """End the active phase and start the next: on evidence, or with ``override_reason``."""

    permission_model = Rollout
    permission_actions = {"POST": "advance"}

    @extend_schema(
        request=dict, responses={200: dict, **ERROR_RESPONSES}, summary="Advance a rollout to its next phase",
        description="Optional `override_reason` (passes the phase without its evidence) and `phase`, the phase "
                    "the caller saw as active (409 when it changed).",
    )
    def post(self, request: Request, rollout_id: int) -> Response:
        body = _object_body(request)
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        phase = body.get("phase")
        if phase is not None and (not isinstance(phase, int) or isinstance(phase, bool)):
            raise _invalid("phase", f"Expected the phase number, got {phase!r}.")
        rollout = rollouts.advance_phase(rollout, actor=actor_of(request), override_reason=body.get("override_reason"),
                                         expected_phase=phase)
        return Response(rollout_document(rollout))


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class CanaryStepView(APIView):
    """Enable the next step of canary tenants in phase 3."""

    permission_model = Rollout
    permission_actions = {"POST": "advance"}

    @extend_schema(request=None, responses={200: dict, **ERROR_RESPONSES}, summary="Enable the next canary tenants")
    def post(self, request: Request, rollout_id: int) -> Response:
        rollout = rollouts.expand_canary(get_object_or_404(Rollout, pk=rollout_id), actor=actor_of(request))
        return Response(rollout_document(rollout))


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class AbortView(APIView):
    """Stop the rollout and turn its stage's switch off; needs a ``reason``."""

    permission_model = Rollout
    permission_actions = {"POST": "advance"}

    @extend_schema(request=dict, responses={200: dict, **ERROR_RESPONSES}, summary="Abort a rollout")
    def post(self, request: Request, rollout_id: int) -> Response:
        body = _object_body(request)
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        rollout = rollouts.abort(rollout, actor=actor_of(request), reason=body.get("reason", ""))
        return Response(rollout_document(rollout))


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class RollbackView(APIView):
    """Turn parallel execution off for every tenant, one tenant or one policy."""

    permission_model = Rollout
    permission_actions = {"POST": "rollback"}

    @extend_schema(
        request=dict, responses={201: dict, **ERROR_RESPONSES}, summary="Roll a rollout back",
        description='`{"scope": "all"|"tenant"|"policy", "tenant_id"?, "policy_id"?, "reason"}`.',
    )
    def post(self, request: Request, rollout_id: int) -> Response:
        body = _object_body(request)
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        scope = body.get("scope", "")
        scope_id = body.get(f"{scope}_id", "") if scope in ("tenant", "policy") else ""
        event = rollouts.rollback(rollout, scope=scope, scope_id=scope_id, actor=actor_of(request),
                                  reason=body.get("reason", ""))
        return Response(event_document(event), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("rollout_id", int, OpenApiParameter.PATH)])
class EvidenceView(APIView):
    """Parallel against sequential for the rollout's stage over the last ``window``."""

    permission_model = Rollout

    @extend_schema(
        parameters=[
            OpenApiParameter("window", str, description=f"How far back: a number and s, m, h or d, e.g. 15m "
                                                        f"(default {DEFAULT_WINDOW}, at most 30d)."),
            OpenApiParameter("tenant_id", str, many=True, description="Only these tenants."),
        ],
        responses={200: dict, **ERROR_RESPONSES}, summary="Show a rollout's evidence",
    )
    def get(self, request: Request, rollout_id: int) -> Response:
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        window = parse_window(request.query_params.get("window", DEFAULT_WINDOW))
        tenant_ids = request.query_params.getlist("tenant_id") or None
        summary = summarize(rollout.stage, since=timezone.now() - window, tenant_ids=tenant_ids)
        criteria = rollouts.criteria_on(summary)
        return Response({
            "rollout_id": rollout.pk, "window_seconds": int(window.total_seconds()), **summary.as_dict(),
            "triggers": [result.as_dict() for result in criteria],
        })


def parse_window(raw: str) -> timedelta:
    """Parse ``15m``, ``2h``, ``1d`` or a number of seconds; raise ``InvalidDocument`` otherwise."""
    match = re.fullmatch(r"(\d{1,7})([smhd]?)", raw.strip())
    window = timedelta(seconds=int(match[1]) * _WINDOW_UNITS[match[2] or "s"]) if match else None
    if window is None or not timedelta(0) < window <= MAX_WINDOW:
        raise _invalid("window", f"Query parameter window={raw!r} is invalid; expected e.g. 300, 15m, 2h or 1d, "
                                 "more than zero and at most 30d.")
    return window


def rollout_summary(rollout: Rollout) -> dict[str, Any]:
    """Return a rollout without its phases and events, as the list shows it."""
    return {
        "id": rollout.pk, "stage": rollout.stage, "state": rollout.state, "current_phase": rollout.current_phase,
        "internal_tenants": rollout.internal_tenants, "canary_tenants": rollout.canary_tenants,
        "canary_steps": rollout.canary_steps, "canary_step": rollout.canary_step,
        "enabled_canaries": rollout.enabled_canaries, "created_by": rollout.created_by_name,
        "created_at": rollout.created_at,
    }


def rollout_document(rollout: Rollout) -> dict[str, Any]:
    """Return a rollout with its phases and events, newest event first."""
    return {
        **rollout_summary(rollout),
        "phases": [phase_document(phase) for phase in rollout.phases.all()],
        "events": [event_document(event) for event in rollout.events.all()],
    }


def phase_document(phase: RolloutPhase) -> dict[str, Any]:
    return {
        "number": phase.number, "name": phase.name, "planned_duration": phase.planned_duration,
        "actions": phase.actions, "success_criteria": phase.success_criteria, "state": phase.state,
        "started_at": phase.started_at, "ended_at": phase.ended_at, "moved_by": phase.moved_by,
        "override_reason": phase.override_reason, "criteria_results": phase.criteria_results,
    }


def event_document(event: RolloutEvent) -> dict[str, Any]:
    return {
        "id": event.pk, "created_at": event.created_at, "kind": event.kind, "phase": event.phase,
        "actor": event.actor, "through": event.through, "reason": event.reason, "trigger": event.trigger,
        "value": event.value, "baseline": event.baseline, "threshold": event.threshold, "scope": event.scope,
        "scope_id": event.scope_id, "verification": event.verification, "verified_at": event.verified_at,
        "rollback_event": event.rollback_event_id, "details": event.details,
    }


def _object_body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise _invalid("", "The request body must be a JSON object.")
    return request.data


def _list(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field, [])
    if not isinstance(value, list):
        raise _invalid(field, f"Expected a list, got {value!r}.")
    return value


def _invalid(field: str, message: str) -> InvalidDocument:
    return InvalidDocument("invalid_request", "The request is invalid.", [FieldError("invalid", message, field, field)])
