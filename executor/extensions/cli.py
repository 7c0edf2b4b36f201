"""Command-line options of the reference extensions service, shared by its two entry points.

``python -m executor.extensions`` needs no Django settings; ``manage.py run_extensions`` takes
its default NATS URL from ``settings.NATS_URL``. Both parse the same ``--only`` and
``--max-concurrency`` options.
"""
from __future__ import annotations

import argparse

from executor.extensions.registry import EXTENSIONS_BY_ID, ReferenceExtension, select_extensions
from executor.extensions.service import DEFAULT_MAX_CONCURRENCY


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--only`` and ``--max-concurrency`` to ``parser``."""
    parser.add_argument(
        "--only",
        metavar="ID[,ID...]",
        help=f"comma-separated ids of the extensions to serve (default: all of {', '.join(EXTENSIONS_BY_ID)})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help="most requests each extension handles at once; also the size of the worker thread "
        f"pool the handlers share (default: {DEFAULT_MAX_CONCURRENCY})",
    )


def positive_int(value: str) -> int:
    """Parse an argument that must be an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def extensions_from_option(only: str | None) -> list[ReferenceExtension]:
    """Return the extensions ``--only`` names, or all of them; raises ``ValueError`` on an unknown id."""
    if only is None:
        return select_extensions(None)
    ids = [extension_id.strip() for extension_id in only.split(",") if extension_id.strip()]
    if not ids:
        raise ValueError("--only names no extension; give comma-separated extension ids.")
    return select_extensions(ids)
