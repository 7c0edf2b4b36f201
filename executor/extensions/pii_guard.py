"""``pii_guard`` (validator): rejects a message that carries a card number or a national id.

It looks for:

- ``credit_card``: 13 to 19 digits, optionally grouped by spaces or hyphens, that pass the
  Luhn check (so a random long number is rejected only about one time in ten);
- ``us_ssn``: a US Social Security number written ``AAA-GG-SSSS``, without the area,
  group and serial values the SSA never issues (000, 666, 900-999; 00; 0000);
- ``uk_nino``: a UK National Insurance number, two prefix letters, six digits and a suffix
  letter A-D, with or without spaces.

A reject names the kinds found and how many of each, never the values themselves, so the
reply and the logs that record it carry no personal data.
"""
from __future__ import annotations

import re
from collections import Counter

from executor.extensions._contract import Reply, Request, message_of, replies_with_error, text_of

SUBJECT = "beamline.ext.validate.pii_guard.v1"

CARD_NUMBER_RUN = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
US_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
UK_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19


def passes_luhn(digits: str) -> bool:
    """Return whether the digit string passes the Luhn (mod 10) check."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def count_card_numbers(text: str) -> int:
    """Return how many Luhn-valid card numbers ``text`` contains."""
    return sum(_contains_card_number(re.split(r"[ -]", run)) for run in CARD_NUMBER_RUN.findall(text))


def find_pii(text: str) -> Counter[str]:
    """Return how many of each kind of personal data ``text`` contains."""
    found: Counter[str] = Counter()
    found["credit_card"] = count_card_numbers(text)
    found["us_ssn"] = len(US_SSN.findall(text))
    found["uk_nino"] = len(UK_NINO.findall(text))
    return +found  # drops the kinds that were not found


@replies_with_error
def handle(request: Request) -> Reply:
    """Reply ``ok``, or ``reject`` with the kinds of personal data found."""
    found = find_pii(text_of(message_of(request)))
    if not found:
        return {"status": "ok"}

    kinds = sorted(found)
    return {
        "status": "reject",
        "reason": f"The message contains personal data that must not leave the pipeline: {', '.join(kinds)}.",
        "details": {"kinds": kinds, "counts": dict(sorted(found.items()))},
    }


def _contains_card_number(groups: list[str]) -> bool:
    # A run such as "card 4111 1111 1111 1111 exp 12 30" may join a card number with the
    # numbers around it, so every span of whole digit groups is checked, not just the run.
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > CARD_MAX_DIGITS:
                break
            if len(digits) >= CARD_MIN_DIGITS and passes_luhn(digits):
                return True
    return False
