"""Create the first admin account when the database has no superuser yet."""
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Create a superuser with a random password when none exists, and write the password "
        "to --password-file (readable by the owner only)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="Name of the superuser to create.")
        parser.add_argument("--password-file", required=True, type=Path, help="File that receives the password.")

    def handle(self, *args: object, username: str, password_file: Path, **options: object) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            if not password_file.exists():
                password_file.write_text("(unchanged; set it with `manage.py changepassword`)\n")
            return

        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(f"Created the superuser {username!r}.")
