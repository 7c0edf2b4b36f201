"""``manage.py run_extensions``: serve the reference extensions over NATS.

The same service as ``python -m executor.extensions``, with the NATS URL taken from
``settings.NATS_URL`` unless ``--nats-url`` is given, and Django's logging configuration.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from executor.extensions.cli import add_service_arguments, extensions_from_option
from executor.extensions.service import NatsConnectionFailed, run_until_signal


class Command(BaseCommand):
    help = (
        "Serve the reference extensions as NATS request/reply services until Ctrl-C or SIGTERM. "
        "Each extension listens on its registry subject in a queue group, so several copies share the load."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--nats-url", help="NATS server URL (default: settings.NATS_URL)")
        add_service_arguments(parser)

    def handle(self, *args: Any, nats_url: str | None, only: str | None, max_concurrency: int,
               **options: Any) -> None:
        nats_url = nats_url or settings.NATS_URL
        if not nats_url:
            raise CommandError("No NATS server given: pass --nats-url or set NATS_URL.")
        try:
            extensions = extensions_from_option(only)
        except ValueError as error:
            raise CommandError(str(error)) from error

        try:
            run_until_signal(nats_url, extensions, max_concurrency=max_concurrency)
        except NatsConnectionFailed as error:
            raise CommandError(str(error)) from error
