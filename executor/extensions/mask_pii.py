"""``mask_pii`` (post-processor): masks e-mail addresses and phone numbers in the response.

Every e-mail address becomes ``[email]`` and every phone number ``[phone]``, in the
message text and, when present, in its ``normalized_text``. A phone number here is 7 to 15
digits (the E.164 maximum) in at least two groups, optionally with a ``+`` country code and
an area code in brackets, separated by spaces, dots or hyphens. A date such as
``2024-01-27`` and a US Social Security number such as ``078-05-1120`` are not phone numbers. The context gets ``pii_masked`` with the counts
masked in the message text.
"""
from __future__ import annotations

import re
from typing import Any

from executor.extensions._contract import (
    Reply,
    Request,
    message_of,
    replies_with_error,
    text_of,
    with_text,
)
from executor.extensions.extract_metadata import EMAIL
from executor.extensions.pii_guard import US_SSN

SUBJECT = "beamline.ext.post.mask_pii.v1"
EMAIL_MASK = "[email]"
PHONE_MASK = "[phone]"

PHONE_CANDIDATE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15


def is_phone_number(candidate: str) -> bool:
    """Return whether a ``PHONE_CANDIDATE`` match has a phone number's digit count and is no date or SSN."""
    if ISO_DATE.fullmatch(candidate) or US_SSN.fullmatch(candidate):
        return False
    digit_count = sum(character.isdigit() for character in candidate)
    return PHONE_MIN_DIGITS <= digit_count <= PHONE_MAX_DIGITS


def mask(text: str) -> tuple[str, dict[str, int]]:
    """Return ``text`` with e-mail addresses and phone numbers masked, and the counts masked."""
    text, email_count = EMAIL.subn(EMAIL_MASK, text)

    phone_count = 0

    def mask_phone(match: re.Match[str]) -> str:
        nonlocal phone_count
        if not is_phone_number(match.group()):
            return match.group()
        phone_count += 1
        return PHONE_MASK

    text = PHONE_CANDIDATE.sub(mask_phone, text)
    return text, {"emails": email_count, "phones": phone_count}


@replies_with_error
def handle(request: Request) -> Reply:
    """Reply with the message masked and ``pii_masked`` counts in the context."""
    message = message_of(request)
    masked_text, counts = mask(text_of(message))

    masked_message: dict[str, Any] = with_text(message, masked_text)
    if isinstance(message.get("normalized_text"), str):
        masked_message["normalized_text"], _ = mask(message["normalized_text"])
    return {"payload": masked_message, "metadata": {"pii_masked": counts}}
