"""The executor's exceptions.

Foreign exceptions (nats-py's above all) are translated into these once, at the transport
boundary, with the original kept as ``__cause__``::

    ExecutorError
    ├── ExtensionCallError            one extension call failed; ``error_type`` is its stable code
    │   ├── ExtensionTimeout          timeout
    │   ├── NoResponders              no_responders
    │   ├── BadReply                  bad_reply
    │   ├── ExtensionReplyError       extension_error
    │   ├── NatsUnavailable           nats_unavailable
    │   ├── GroupDeadlineExceeded     group_deadline
    │   ├── Cancelled                 cancelled
    │   ├── UnknownExtension          unknown_extension
    │   ├── ExtensionDisabled         extension_disabled
    │   └── ExtensionTypeMismatch     extension_type_mismatch
    ├── RequestError                  the pipeline request itself is unusable; ``code`` is stable
    │   ├── InvalidRequest            invalid_request (with ``path``)
    │   ├── PolicyNotFound            policy_not_found
    │   └── Overloaded                overloaded
    └── PlanError                     invalid_policy: the policy's dependencies are broken
"""
from __future__ import annotations

from typing import Any


class ExecutorError(Exception):
    """Base of every exception the executor's core raises."""


class ExtensionCallError(ExecutorError):
    """One extension call failed.

    ``retryable`` is true only when the request certainly did not reach the extension, so a
    repeat cannot run a side effect twice.
    """

    error_type = "extension_call_failed"
    retryable = False


class ExtensionTimeout(ExtensionCallError):
    """No reply came within the extension's ``timeout_ms``; the request may have reached it."""

    error_type = "timeout"


class NoResponders(ExtensionCallError):
    """NATS reported that nothing subscribes to the extension's subject."""

    error_type = "no_responders"
    retryable = True


class BadReply(ExtensionCallError):
    """The reply is not a JSON object or breaks the reply contract of its stage."""

    error_type = "bad_reply"


class ExtensionReplyError(ExtensionCallError):
    """The extension replied with a top-level ``error`` object; ``code`` and ``message`` are its own."""

    error_type = "extension_error"

    def __init__(self, code: str | None, message: str | None) -> None:
        super().__init__(f"The extension replied with error {code!r}: {message}")
        self.code = code
        self.message = message


class NatsUnavailable(ExtensionCallError):
    """The NATS connection is closed, reconnecting or unable to send.

    ``retryable`` is true when the request was never sent.
    """

    error_type = "nats_unavailable"

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.retryable = not request_sent


class GroupDeadlineExceeded(ExtensionCallError):
    """The member was still running when its parallel group's deadline passed."""

    error_type = "group_deadline"


class Cancelled(ExtensionCallError):
    """The member was cancelled because a sibling ended the pipeline."""

    error_type = "cancelled"


class UnknownExtension(ExtensionCallError):
    """The step names an extension that the snapshot does not contain."""

    error_type = "unknown_extension"


class ExtensionDisabled(ExtensionCallError):
    """The step's extension is disabled in the registry."""

    error_type = "extension_disabled"


class ExtensionTypeMismatch(ExtensionCallError):
    """The step's extension has a type that does not belong in the step's stage."""

    error_type = "extension_type_mismatch"


class RequestError(ExecutorError):
    """The pipeline request cannot be run; ``code`` is the stable error type in the reply."""

    code = "request_error"

    def as_error(self) -> dict[str, Any]:
        """Return the reply's ``error`` object for this request error."""
        return {"type": self.code, "message": str(self)}


class InvalidRequest(RequestError):
    """The request does not match the contract; ``path`` names the offending field."""

    code = "invalid_request"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path

    def as_error(self) -> dict[str, Any]:
        return {"type": self.code, "message": str(self), "path": self.path}


class PolicyNotFound(RequestError):
    """No policy with that id exists for the request's tenant."""

    code = "policy_not_found"


class Overloaded(RequestError):
    """The executor already runs its maximum number of pipelines; retry later."""

    code = "overloaded"


class PlanError(ExecutorError):
    """The policy's ``depends_on`` declarations are broken in a stage, so no plan can be built."""

    code = "invalid_policy"

    def __init__(self, stage: str, messages: list[str]) -> None:
        super().__init__(f"Stage {stage!r} of the policy is invalid: " + " ".join(messages))
        self.stage = stage
        self.messages = messages
