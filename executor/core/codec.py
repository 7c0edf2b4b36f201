"""JSON encoding and decoding for everything the executor sends or receives."""
from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> bytes:
    """Return ``value`` as compact UTF-8 JSON."""
    return _encoder.encode(value).encode()


def decode(data: bytes) -> Any:
    """Parse UTF-8 JSON; raises ``ValueError`` when ``data`` is not valid JSON."""
    return json.loads(data)
