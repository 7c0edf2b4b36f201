"""Export tenants, extensions and policies as JSON in the format the import command reads."""
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from registry import transfer
from registry.management.commands._files import write_json


class Command(BaseCommand):
    help = "Export tenants, extensions and policies as JSON, sorted by id, in the format import_registry reads."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--output", help="File to write; standard output when left out.")

    def handle(self, *args: Any, **options: Any) -> None:
        write_json(self, transfer.export_registry(), options["output"])
