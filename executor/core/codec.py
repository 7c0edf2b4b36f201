"""JSON encoding and decoding for everything the executor sends or receives.

orjson does the work because the executor encodes and decodes JSON on every extension call.
The standard library's encoder takes over for the values orjson rejects (integers beyond
64 bits, for example), so any JSON value a request carries can be sent on.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_fallback_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> bytes:
    """Return ``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _fallback_encoder.encode(value).encode()


def decode(data: bytes | str) -> Any:
    """Parse UTF-8 JSON; raises ``ValueError`` when ``data`` is not valid JSON."""
    return orjson.loads(data)
