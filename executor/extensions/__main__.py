"""``python -m executor.extensions``: serve the reference extensions over NATS.

It needs no Django settings, so it runs wherever the executor's dependencies are installed.
Logs are JSON lines on standard error. Ctrl-C or SIGTERM stops it after the requests in
progress finish.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

from executor.extensions.cli import add_service_arguments, extensions_from_option
from executor.extensions.service import NatsConnectionFailed, run_until_signal

logger = logging.getLogger("executor.extensions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m executor.extensions",
        description="Serve the reference extensions (normalize_text, detect_language, extract_metadata, "
        "enrich_context, audit_log, pii_guard, mask_pii) as NATS request/reply services. Each "
        "extension listens on its registry subject in a queue group, so several copies share the load.",
    )
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL") or None,
        help="NATS server URL, such as nats://127.0.0.1:4222 (default: the NATS_URL environment variable)",
    )
    add_service_arguments(parser)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum log level to write (default: the LOG_LEVEL environment variable, else INFO)",
    )
    return parser


def configure_json_logging(level: str) -> None:
    """Write log records as JSON lines to standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not arguments.nats_url:
        parser.error("no NATS server given: pass --nats-url or set NATS_URL.")
    try:
        extensions = extensions_from_option(arguments.only)
    except ValueError as error:
        parser.error(str(error))

    configure_json_logging(arguments.log_level)
    try:
        run_until_signal(arguments.nats_url, extensions, max_concurrency=arguments.max_concurrency)
    except NatsConnectionFailed as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
