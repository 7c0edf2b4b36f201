"""``manage.py probe_extension ID``: run the determinism probe against a live extension."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from executor.probe import DEFAULT_MESSAGE_COUNT, ProbeError, load_messages, probe_and_record
from registry.models import Extension, ExtensionVersion


class Command(BaseCommand):
    help = (
        "Send sample messages to an extension's subject, each twice in a row and twice at once, and compare "
        "the replies. The result is stored on the version; a side-effect-free version that fails is planned "
        "as having side effects until it passes. Exits with status 1 unless the probe passes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("extension_id", help="The extension's id, for example normalize_text.")
        parser.add_argument("--version-label", dest="version_label", help="The version label to probe; the active version by default.")
        parser.add_argument(
            "--messages",
            type=Path,
            help="A JSON Lines file of message objects; bench/messages/messages.jsonl by default.",
        )
        parser.add_argument(
            "--count",
            type=int,
            default=DEFAULT_MESSAGE_COUNT,
            help=f"How many messages to take from the file, evenly spread (default {DEFAULT_MESSAGE_COUNT}).",
        )
        parser.add_argument("--timeout-ms", type=int, help="Timeout of each send in ms; the version's, at least 1000, by default.")
        parser.add_argument("--nats-url", help="The NATS server the extension listens on; NATS_URL by default.")

    def handle(self, *args: Any, **options: Any) -> None:
        version = self._version(options["extension_id"], options["version_label"])
        try:
            messages = load_messages(options["messages"], options["count"])
        except (OSError, ValueError) as error:
            raise CommandError(f"Could not read the sample messages: {error}") from error

        try:
            [(_, result)] = probe_and_record(
                [version], messages=messages, nats_url=options["nats_url"], timeout_ms=options["timeout_ms"]
            )
        except ProbeError as error:
            raise CommandError(str(error)) from error

        if not result.passed:
            raise CommandError(f"{version}: probe {result.status}. {result.detail}")
        self.stdout.write(self.style.SUCCESS(f"{version}: probe passed. {result.detail}"))

    def _version(self, extension_id: str, label: str | None) -> ExtensionVersion:
        extension = Extension.objects.filter(extension_id=extension_id).first()
        if extension is None:
            raise CommandError(f"Extension {extension_id!r} was not found.")
        if label is None:
            version = extension.active_version
            if version is None:
                raise CommandError(f"Extension {extension_id!r} has no active version; name one with --version-label.")
            return version
        version = extension.versions.filter(version=label).first()
        if version is None:
            raise CommandError(f"Extension {extension_id!r} has no version {label!r}.")
        return version
