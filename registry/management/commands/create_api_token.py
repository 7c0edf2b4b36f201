"""Create an API token and print its secret, which is shown only this once."""
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry import services
from registry.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token and print it once; only its SHA-256 hash is stored."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Who or what uses the token, for example router-prod.")
        parser.add_argument("--scope", choices=ApiToken.Scope.values, required=True, help="read, or write to change data.")
        parser.add_argument("--user", help="Username the token acts for; changes are recorded under this user.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options["user"]:
            user_model = get_user_model()
            try:
                user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["user"]})
            except user_model.DoesNotExist as error:
                raise CommandError(f"User {options['user']!r} does not exist; create the user first.") from error

        token, secret = services.create_api_token(options["name"], options["scope"], user=user)
        self.stderr.write(f"Created {token.scope} token {token.name!r}. Store it now; it cannot be shown again.")
        self.stdout.write(secret)
