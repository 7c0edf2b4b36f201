"""``audit_log`` (pre-processor with a side effect): one JSON line per message in a file.

This is the reference extension that is not side-effect free: its registry entry declares
``side_effect_free: false``, so the executor runs it as a barrier and never repeats a call
on its own. It replies with the message and context unchanged.

Each line records when the message was seen, its ids, its tenant, policy and trace, and
the SHA-256 digest and length of its text, never the text itself, because the text may
carry personal data that a validator later rejects. The file is, in order of precedence,
the step's ``config.path``, the ``BEAMLINE_AUDIT_LOG`` environment variable, or
``audit/extensions.jsonl`` under ``BEAMLINE_VAR_DIR`` (default: ``var/`` in the project).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from executor.extensions._contract import (
    ExtensionError,
    InvalidConfig,
    InvalidMessage,
    Reply,
    Request,
    config_of,
    context_of,
    message_of,
    replies_with_error,
    text_of,
)

SUBJECT = "beamline.ext.pre.audit_log.v1"
PATH_ENVIRONMENT_VARIABLE = "BEAMLINE_AUDIT_LOG"
PROJECT_DIR = Path(__file__).resolve().parents[2]

# The service runs handlers in worker threads; one lock keeps each line whole.
_write_lock = threading.Lock()


class AuditWriteFailed(ExtensionError):
    """The audit line could not be appended to the file."""

    code = "audit_write_failed"


def audit_log_path(config: dict[str, Any]) -> Path:
    """Return the file to append to: ``config.path``, then the environment, then ``var/``."""
    configured = config.get("path")
    if configured is not None:
        if not isinstance(configured, str) or not configured:
            raise InvalidConfig(f"config.path must be a non-empty string, got {configured!r}.")
        return Path(configured)

    from_environment = os.environ.get(PATH_ENVIRONMENT_VARIABLE)
    if from_environment:
        return Path(from_environment)

    var_dir = Path(os.environ.get("BEAMLINE_VAR_DIR", PROJECT_DIR / "var"))
    return var_dir / "audit" / "extensions.jsonl"


def audit_record(request: Request, seen_at: float) -> dict[str, Any]:
    """Return the audit line for ``request``, with the text's digest in place of the text."""
    message = message_of(request)
    context = context_of(request)
    try:
        text: str | None = text_of(message)
    except InvalidMessage:
        text = None

    return {
        "seen_at": datetime.fromtimestamp(seen_at, UTC).isoformat(timespec="milliseconds"),
        "trace_id": request.get("trace_id"),
        "tenant_id": request.get("tenant_id"),
        "policy_id": context.get("policy_id"),
        "message_id": message.get("message_id"),
        "message_type": message.get("message_type"),
        "text_sha256": hashlib.sha256(text.encode()).hexdigest() if text is not None else None,
        "text_length": len(text) if text is not None else None,
    }


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to ``path`` as one JSON line, creating the folder when needed."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock, path.open("a", encoding="utf-8") as audit_file:
        audit_file.write(line)


def handle_with_clock(request: Request, clock: Callable[[], float]) -> Reply:
    """Append the audit line for ``request``, read at ``clock()``, and echo the input."""
    record = audit_record(request, clock())
    path = audit_log_path(config_of(request))
    try:
        append_line(path, record)
    except OSError as error:
        raise AuditWriteFailed(f"Could not append to the audit log {path}: {error}") from error

    return {"payload": request["payload"], "metadata": context_of(request)}


@replies_with_error
def handle(request: Request) -> Reply:
    """Append the audit line for ``request`` and reply with the message and context unchanged."""
    return handle_with_clock(request, time.time)
