"""Load the demo tenants, reference extensions and policies into an empty registry."""
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from registry.models import Extension

DEMO_REGISTRY = Path(__file__).resolve().parents[3] / "executor" / "extensions" / "demo_registry.json"


class Command(BaseCommand):
    help = "Import the demo registry when the registry has no extensions yet; --force imports it anyway."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Import even when extensions exist.")

    def handle(self, *args: object, force: bool, **options: object) -> None:
        if Extension.objects.exists() and not force:
            self.stdout.write("The registry already has extensions; the demo data was not loaded.")
            return

        call_command("import_registry", str(DEMO_REGISTRY))
        self.stdout.write(f"Loaded the demo data from {DEMO_REGISTRY.name}.")
