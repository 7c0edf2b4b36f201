"""Shadow comparison: re-running sampled parallel groups one member after another, after the reply.

For a sampled request the runtime records every parallel processor group that ended with all
members ``ok``: its input, its members with their extension specs, and its merged output. Once
the reply has gone out, ``ShadowComparer`` runs each recorded group's members in declared order
from that input. Each member gets the previous member's output, as in a sequential run, and the
final payload and metadata are compared with the parallel merge. Re-running is safe because
a parallel group holds only side-effect-free members; barrier steps run in groups of their own,
are never recorded, and a member whose spec is not side-effect free is never re-run.

A difference is a functional regression: it is counted in the evidence and handed to
``on_mismatch`` with a bounded diff. The comparer runs at most ``max_concurrent`` comparisons;
a sample that arrives when all are busy is skipped and counted, never queued. Nothing here
raises into the service, and ``stop`` cancels what is still running.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from executor.core.calls import OK, CallInput, ExtensionCaller, MemberOutcome
from executor.core.evidence import EvidenceAggregator
from executor.core.merge import apply_reply
from executor.core.model import ExtensionSpec, StepSpec
from executor.core.transport import Transport

logger = logging.getLogger("executor.shadow")

MAX_DIFF_ENTRIES = 20
MAX_VALUE_CHARS = 200
MAX_DIFF_CHARS = 4000
"""Bounds of a stored diff: entries, characters of each value's JSON, and characters in all."""


@dataclass(frozen=True)
class ShadowCapture:
    """One parallel group of a sampled request: its input, members and merged output."""

    trace_id: str
    tenant_id: str
    policy_id: str
    stage: str
    group_id: str
    steps: tuple[StepSpec, ...]
    extensions: Mapping[str, ExtensionSpec]
    payload: Any
    metadata: Mapping[str, Any]
    merged_payload: Any
    merged_metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ShadowResult:
    """The outcome of one comparison; ``diff`` is empty when the results matched."""

    trace_id: str
    tenant_id: str
    policy_id: str
    stage: str
    group_id: str
    members: tuple[str, ...]
    matched: bool
    diff: list[dict[str, Any]]
    truncated: bool


class ShadowComparer:
    """Samples requests and compares their parallel groups with sequential runs in the background.

    ``sample_rate`` is the share of requests to compare (0 turns shadow comparison off).
    ``evidence`` counts each comparison; ``on_mismatch`` gets each mismatch and must not block.
    """

    def __init__(self, transport: Transport, *, sample_rate: float, max_concurrent: int = 4,
                 retry_backoff_s: float = 0.01, evidence: EvidenceAggregator | None = None,
                 on_mismatch: Callable[[ShadowResult], None] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate}.")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}.")
        self.sample_rate = sample_rate
        self.max_concurrent = max_concurrent
        self._caller = ExtensionCaller(transport, retry_backoff_s)
        self._evidence = evidence
        self._on_mismatch = on_mismatch
        self._rng = rng
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.compared = 0
        self.mismatched = 0
        self.skipped = 0
        self.failed = 0

    @property
    def running(self) -> int:
        """The number of comparisons running now."""
        return len(self._tasks)

    def sample(self) -> bool:
        """Return whether to record the next request's parallel groups for comparison."""
        return self.sample_rate > 0.0 and not self._stopped and self._rng() < self.sample_rate

    def submit(self, captures: Sequence[ShadowCapture]) -> None:
        """Start comparing ``captures`` in the background; skipped (and counted) when all slots are busy."""
        if not captures or self._stopped:
            return
        if len(self._tasks) >= self.max_concurrent:
            self.skipped += 1
            logger.debug("Shadow comparison skipped: %s already running (trace %s)",
                         len(self._tasks), captures[0].trace_id)
            return
        task = asyncio.create_task(self._compare_all(list(captures)), name="shadow-compare")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until the comparisons running now have finished (for tests and orderly stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Refuse new samples and cancel the comparisons still running."""
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def compare(self, capture: ShadowCapture) -> ShadowResult | None:
        """Re-run one group sequentially and compare; None when it could not be re-run."""
        steps = capture.steps
        if any(not _rerunnable(capture.extensions.get(step.id)) for step in steps):
            return None

        payload, metadata = capture.payload, capture.metadata
        for step in steps:
            call_input = CallInput(capture.trace_id, capture.tenant_id, payload, dict(metadata))
            outcome = await self._caller.call(capture.stage, step, capture.extensions[step.id], call_input,
                                              MemberOutcome(step))
            if outcome.status != OK:
                logger.info("Shadow run of %s in group %s failed with %s (trace %s); not compared",
                            step.id, capture.group_id, outcome.error_type, capture.trace_id)
                return None
            if outcome.reply:
                payload, metadata = apply_reply(payload, metadata, outcome.reply)

        diff, truncated = bounded_diff(
            {"payload": capture.merged_payload, "metadata": dict(capture.merged_metadata)},
            {"payload": payload, "metadata": dict(metadata)},
        )
        return ShadowResult(capture.trace_id, capture.tenant_id, capture.policy_id, capture.stage,
                            capture.group_id, tuple(step.id for step in steps), not diff, diff, truncated)

    async def _compare_all(self, captures: list[ShadowCapture]) -> None:
        for capture in captures:
            try:
                result = await self.compare(capture)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a shadow run must never disturb the service
                logger.exception("Shadow comparison of group %s failed (trace %s)", capture.group_id,
                                 capture.trace_id)
                result = None
            if result is None:
                self.failed += 1
                continue
            self._note(result)

    def _note(self, result: ShadowResult) -> None:
        self.compared += 1
        if self._evidence is not None:
            self._evidence.record_shadow(result.tenant_id, result.policy_id, result.stage, matched=result.matched)
        if result.matched:
            return

        self.mismatched += 1
        logger.warning(
            "Shadow mismatch in group %s (stage %s, policy %s, tenant %s, trace %s): parallel and sequential "
            "results differ at %s", result.group_id, result.stage, result.policy_id, result.tenant_id,
            result.trace_id, ", ".join(entry["path"] for entry in result.diff[:5]),
        )
        if self._on_mismatch is not None:
            try:
                self._on_mismatch(result)
            except Exception:  # noqa: BLE001 - storing a mismatch must not stop the comparer
                logger.exception("Handing over the shadow mismatch of trace %s failed", result.trace_id)


def _rerunnable(extension: ExtensionSpec | None) -> bool:
    return extension is not None and extension.side_effect_free and extension.enabled


def bounded_diff(parallel: Any, sequential: Any) -> tuple[list[dict[str, Any]], bool]:
    """Return the paths where the two values differ, each with both values, and whether it was cut.

    Paths are dotted (``metadata.lang``, ``payload.items[2]``). Each value is its JSON text cut
    to ``MAX_VALUE_CHARS``; the list stops at ``MAX_DIFF_ENTRIES`` entries or ``MAX_DIFF_CHARS``.
    """
    raw: list[tuple[str, Any, Any]] = []
    _walk("", parallel, sequential, raw)
    entries: list[dict[str, Any]] = []
    truncated = False
    size = 0
    for path, left, right in raw:
        left_text, left_cut = _short(left)
        right_text, right_cut = _short(right)
        entry = {"path": path, "parallel": left_text, "sequential": right_text}
        size += len(path) + len(left_text) + len(right_text)
        if len(entries) >= MAX_DIFF_ENTRIES or size > MAX_DIFF_CHARS:
            return entries, True
        entries.append(entry)
        truncated = truncated or left_cut or right_cut
    return entries, truncated


_MISSING = "<missing>"


def _walk(path: str, left: Any, right: Any, out: list[tuple[str, Any, Any]]) -> None:
    if len(out) > MAX_DIFF_ENTRIES:
        return
    if isinstance(left, dict) and isinstance(right, dict):
        for key in list(dict.fromkeys([*left, *right])):
            child = f"{path}.{key}" if path else str(key)
            _walk(child, left.get(key, _MISSING), right.get(key, _MISSING), out)
        return
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right)):
            _walk(f"{path}[{index}]", a, b, out)
        return
    if left != right or type(left) is not type(right):
        out.append((path or "$", left, right))


def _short(value: Any) -> tuple[str, bool]:
    text = value if value is _MISSING else json.dumps(value, default=str, sort_keys=True)
    if len(text) <= MAX_VALUE_CHARS:
        return text, False
    return text[: MAX_VALUE_CHARS - 3] + "...", True
