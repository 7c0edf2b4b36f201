"""Import policies from a JSON file; a file with any error changes nothing."""
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from registry.management.commands._files import run_import


class Command(BaseCommand):
    help = (
        "Import policies from a JSON file, creating or replacing each by its id. The whole file is "
        "validated first; on any error every error is printed with its path and nothing is saved."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="Path of the JSON file, or - for standard input.")

    def handle(self, *args: Any, **options: Any) -> None:
        run_import(self, options["file"], ("policies",))
