"""The extension-call contract as the reference extensions parse requests and build replies.

A request is ``{trace_id, tenant_id, payload, metadata, config?}``: ``payload`` is the message
``{message_id, message_type, payload, metadata}`` and ``metadata`` is the request context.
The message text sits in the message's ``payload``, either as a string or as an object
with a string ``text``.

Handlers raise ``ExtensionError`` (or a subclass) for a request they cannot serve, and the
``replies_with_error`` decorator turns it into the contract's ``{error: {code, message}}``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

Request = dict[str, Any]
Reply = dict[str, Any]
Handler = Callable[[Request], Reply]


class ExtensionError(Exception):
    """A request the extension cannot serve; ``code`` becomes the error reply's code."""

    code = "extension_failed"

    def to_reply(self) -> Reply:
        return {"error": {"code": self.code, "message": str(self)}}


class InvalidMessage(ExtensionError):
    """The message is missing, is not an object, or has no text where the extension needs one."""

    code = "invalid_message"


class InvalidConfig(ExtensionError):
    """The step's ``config`` has a value of the wrong type or out of range."""

    code = "invalid_config"


class MissingDependency(ExtensionError):
    """The output of an extension this one depends on is not in the message."""

    code = "missing_dependency"


def replies_with_error(handler: Handler) -> Handler:
    """Wrap ``handler`` so an ``ExtensionError`` it raises is returned as an error reply."""

    @functools.wraps(handler)
    def wrapper(request: Request) -> Reply:
        try:
            return handler(request)
        except ExtensionError as error:
            return error.to_reply()

    return wrapper


def message_of(request: Request) -> dict[str, Any]:
    """Return the message (the request's ``payload``); raises ``InvalidMessage`` unless it is an object."""
    message = request.get("payload")
    if not isinstance(message, dict):
        raise InvalidMessage(
            f"The request's payload must be the message object, got {type(message).__name__}."
        )
    return message


def context_of(request: Request) -> dict[str, Any]:
    """Return the request context (the request's ``metadata``); a missing context is empty."""
    context = request.get("metadata")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise InvalidMessage(f"The request's metadata must be an object, got {type(context).__name__}.")
    return context


def config_of(request: Request) -> dict[str, Any]:
    """Return the step's ``config``; a missing config is empty."""
    config = request.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidConfig(f"The request's config must be an object, got {type(config).__name__}.")
    return config


def text_of(message: dict[str, Any]) -> str:
    """Return the message text: ``payload`` when it is a string, else ``payload.text``."""
    body = message.get("payload")
    if isinstance(body, str):
        return body
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        return body["text"]
    raise InvalidMessage(
        "The message has no text: expected payload.payload to be a string "
        "or an object with a string 'text'."
    )


def with_text(message: dict[str, Any], text: str) -> dict[str, Any]:
    """Return a copy of ``message`` with its text replaced, keeping the payload's shape."""
    body = message.get("payload")
    if isinstance(body, dict):
        return {**message, "payload": {**body, "text": text}}
    return {**message, "payload": text}


def positive_int_config(config: dict[str, Any], key: str, default: int) -> int:
    """Return ``config[key]`` as a positive int, or ``default`` when it is absent."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfig(f"config.{key} must be a positive integer, got {value!r}.")
    return value
