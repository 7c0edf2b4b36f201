"""One error shape for every API response that is not a success.

``{"error": {"code": ..., "message": ..., "details": [{"path", "field", "code", "message", ...}]}}``;
``details`` is present for validation errors and names the path of every problem.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from registry.services import RegistryConflict
from registry.validation import InvalidDocument

CODE_BY_EXCEPTION = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate an exception raised by an API view into the error shape; ``None`` for a server error."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, InvalidDocument):
        details = [error.as_dict() for error in exc.errors]
        return _error_response(status.HTTP_400_BAD_REQUEST, exc.code, exc.message, details)
    if isinstance(exc, RegistryConflict):
        return _error_response(status.HTTP_409_CONFLICT, exc.code, exc.message)
    if not isinstance(exc, exceptions.APIException):
        return None

    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        details = list(_flatten_validation_detail(exc.detail, ""))
        message = "The request is invalid."
        if details:
            message += f" {details[0]['path']}: {details[0]['message']}"
        response = _error_response(exc.status_code, "invalid_request", message, details)
    else:
        response = _error_response(exc.status_code, _code_of(exc), str(exc.detail))
    _add_standard_headers(exc, response)
    return response


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return the error body for ``code`` and ``message``, with ``details`` when given."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _error_response(
    status_code: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    set_rollback()
    return Response(error_body(code, message, details), status=status_code)


def _code_of(exc: exceptions.APIException) -> str:
    detail_code = getattr(exc.detail, "code", None)
    if isinstance(exc, exceptions.AuthenticationFailed):
        return detail_code or "authentication_failed"
    for exception_class, code in CODE_BY_EXCEPTION.items():
        if isinstance(exc, exception_class):
            return code
    return detail_code or exc.default_code


def _add_standard_headers(exc: exceptions.APIException, response: Response) -> None:
    # APIView.handle_exception stores the authenticate header on a 401 exception; a 401 must send it.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        response["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        response["Retry-After"] = str(int(wait))


def _flatten_validation_detail(detail: Any, path: str) -> Iterator[dict[str, Any]]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            field_path = str(key) if not path else f"{path}.{key}"
            if key == "non_field_errors":
                field_path = path
            yield from _flatten_validation_detail(value, field_path)
    elif isinstance(detail, list):
        if all(isinstance(item, (str, exceptions.ErrorDetail)) for item in detail):
            for item in detail:
                yield _detail(path, item)
        else:
            for index, item in enumerate(detail):
                yield from _flatten_validation_detail(item, f"{path}[{index}]")
    else:
        yield _detail(path, detail)


def _detail(path: str, item: Any) -> dict[str, Any]:
    field_name = path.rsplit(".", 1)[-1] if path else ""
    return {"path": path, "field": field_name, "code": getattr(item, "code", "invalid"), "message": str(item)}
