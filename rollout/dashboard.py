"""The rollout dashboard's data: the phase timeline and per-tenant charts drawn as inline SVG.

The charts are drawn on the server, so the page needs no script and nothing from the internet.
Each tenant gets a latency chart (p50 and p95, parallel against sequential) and an error-rate
chart. Phase starts are grey lines, and rollbacks are red lines labelled with their trigger.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Min
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from rollout.evidence import SeriesPoint, evidence_series
from rollout.models import EvidenceWindow, Rollout, RolloutEvent

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 28
MAX_POINTS = 120
SERIES_STYLES = {
    ("parallel", "p95_ms"): ("#1f77b4", ""),
    ("parallel", "p50_ms"): ("#1f77b4", "4 3"),
    ("sequential", "p95_ms"): ("#ff7f0e", ""),
    ("sequential", "p50_ms"): ("#ff7f0e", "4 3"),
    ("parallel", "error_rate"): ("#1f77b4", ""),
    ("sequential", "error_rate"): ("#ff7f0e", ""),
}


@dataclass(frozen=True)
class Marker:
    """A vertical line on every chart: a phase start or a rollback."""

    at: datetime
    label: str
    kind: str


@dataclass(frozen=True)
class TenantCharts:
    tenant_id: str
    latency_svg: SafeString
    errors_svg: SafeString
    parallel_count: int
    sequential_count: int


def dashboard_context(rollout: Rollout, *, now: datetime | None = None) -> dict[str, object]:
    """Return the template context of ``rollout``'s dashboard, from its start to ``now``."""
    now = now or timezone.now()
    since = rollout.created_at
    # A bucket shorter than the executors' evidence windows would draw gaps between them.
    bucket_s = max(_shortest_window_s(rollout.stage, since), int((now - since).total_seconds() // MAX_POINTS) + 1)
    tenants = _rollout_tenants(rollout)
    points = evidence_series(rollout.stage, since=since, until=now, bucket_s=bucket_s, tenant_ids=None)
    markers = _markers(rollout)
    by_tenant: dict[str, list[SeriesPoint]] = {}
    for point in points:
        by_tenant.setdefault(point.tenant_id, []).append(point)
    tenants_shown = [tenant for tenant in tenants if tenant in by_tenant] + sorted(set(by_tenant) - set(tenants))

    charts = [
        TenantCharts(
            tenant_id=tenant,
            latency_svg=line_chart(by_tenant[tenant], ("p95_ms", "p50_ms"), since, now, markers, unit="ms"),
            errors_svg=line_chart(by_tenant[tenant], ("error_rate",), since, now, markers, unit="%"),
            parallel_count=sum(p.count for p in by_tenant[tenant] if p.execution_mode == "parallel"),
            sequential_count=sum(p.count for p in by_tenant[tenant] if p.execution_mode == "sequential"),
        )
        for tenant in tenants_shown
    ]
    return {
        "rollout": rollout,
        "phases": list(rollout.phases.all()),
        "rollbacks": list(rollout.events.filter(kind=RolloutEvent.Kind.ROLLBACK).order_by("created_at")),
        "charts": charts,
        "bucket_seconds": bucket_s,
        "since": since,
        "until": now,
    }


def line_chart(points: Sequence[SeriesPoint], fields: Sequence[str], since: datetime, until: datetime,
               markers: Sequence[Marker], *, unit: str) -> SafeString:
    """Draw ``fields`` of the parallel and sequential points as lines on one SVG chart."""
    span = max((until - since).total_seconds(), 1.0)
    scale = 100.0 if unit == "%" else 1.0
    values = [getattr(p, field) * scale for p in points for field in fields if getattr(p, field) is not None]
    top = _nice_ceiling(max(values, default=0.0))

    def x(at: datetime) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * min(max((at - since).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rollout-chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="#fff" stroke="#ccc"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        parts.append(f'<text x="{LEFT - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">'
                     f'{value:g}{" " + unit if unit == "ms" else unit}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="10">{since:%H:%M:%S}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">{until:%H:%M:%S} UTC</text>')

    last_label_at = -1000.0
    for marker in markers:
        colour = "#d62728" if marker.kind == "rollback" else "#999"
        position = x(marker.at)
        parts.append(f'<line class="marker-{marker.kind}" x1="{position:.1f}" x2="{position:.1f}" y1="{TOP}" '
                     f'y2="{HEIGHT - BOTTOM}" stroke="{colour}" stroke-width="{2 if marker.kind == "rollback" else 1}"/>')
        # Rollback labels get their own row. Phase labels closer than 40 px would print over
        # each other, so only the first is labelled; the line alone still marks the moment.
        if marker.kind == "rollback":
            label_y = TOP + 22
        elif position - last_label_at >= 40:
            label_y, last_label_at = TOP + 10, position
        else:
            continue
        parts.append(f'<text x="{position + 3:.1f}" y="{label_y}" font-size="10" fill="{colour}">'
                     f'{escape(marker.label)}</text>')

    for mode in ("sequential", "parallel"):
        for field in fields:
            line = [(x(p.bucket_start), y(getattr(p, field) * scale)) for p in points
                    if p.execution_mode == mode and getattr(p, field) is not None]
            if not line:
                continue
            colour, dash = SERIES_STYLES[(mode, field)]
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in line)
            dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline class="series-{mode}-{field}" points="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash_attribute}><title>{mode} {field}</title></polyline>')
            for px, py in line:
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is a number or escaped


def _markers(rollout: Rollout) -> list[Marker]:
    markers = [
        Marker(phase.started_at, f"phase {phase.number}", "phase")
        for phase in rollout.phases.all() if phase.started_at is not None
    ]
    for event in rollout.events.filter(kind=RolloutEvent.Kind.ROLLBACK):
        target = f" {event.scope_id}" if event.scope_id else ""
        markers.append(Marker(event.created_at, f"rollback {event.trigger or 'by hand'}{target}", "rollback"))
    return sorted(markers, key=lambda marker: marker.at)


def _rollout_tenants(rollout: Rollout) -> list[str]:
    return list(dict.fromkeys([*rollout.internal_tenants, *rollout.canary_tenants]))


def _nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2 or 5 times a power of ten at or above ``value``, or 1 when it is not positive."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.01
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if magnitude * step >= value:
            return magnitude * step
    return magnitude * 10


def _shortest_window_s(stage: str, since: datetime) -> int:
    shortest = EvidenceWindow.objects.filter(stage=stage, window_start__gte=since).aggregate(
        shortest=Min("window_seconds")
    )["shortest"]
    return shortest or 1
