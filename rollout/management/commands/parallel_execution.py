"""``manage.py parallel_execution``: show the parallel-execution status, switch it on or off."""
from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from registry.services import RegistryConflict
from registry.validation import InvalidDocument
from rollout import services
from rollout.flags import MASTER_SWITCH, InvalidFlagEnvironment
from rollout.models import FlagChange
from rollout.services import Actor
from rollout.status import status_document


class Command(BaseCommand):
    help = (
        "Show the parallel-execution flags (status), or switch parallel execution on or off "
        "(enable, disable): without a target the master switch, with --tenant or --policy that "
        "tenant's or policy's override. clear removes a tenant's or policy's override."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "enable", "disable", "clear"])
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--tenant", metavar="ID", help="Set or clear the override of this tenant.")
        target.add_argument("--policy", metavar="ID", help="Set or clear the override of this routing policy.")
        parser.add_argument("--reason", default="", help="Why the change is made; kept in the audit trail.")
        parser.add_argument(
            "--confirm-all-tenants",
            action="store_true",
            help="Allow turning the master switch on while the tenant allowlist is empty (every tenant).",
        )
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args: Any, action: str, tenant: str | None, policy: str | None, reason: str,
               confirm_all_tenants: bool, json: bool, **options: Any) -> None:
        actor = Actor(_login_name(), FlagChange.Through.COMMAND)
        try:
            if action == "status":
                if tenant or policy:
                    raise CommandError("status shows everything; leave out --tenant and --policy.")
            elif action == "clear":
                self._clear(tenant, policy, actor, reason)
            else:
                self._switch(action == "enable", tenant, policy, actor, reason, confirm_all_tenants)
            self._print_status(as_json=json)
        except (InvalidDocument, RegistryConflict, InvalidFlagEnvironment) as error:
            raise CommandError(str(error)) from error

    def _switch(self, enabled: bool, tenant: str | None, policy: str | None, actor: Actor, reason: str,
                confirm_all_tenants: bool) -> None:
        if tenant:
            services.set_tenant_override(tenant, enabled, actor=actor, reason=reason)
        elif policy:
            services.set_policy_override(policy, enabled, actor=actor, reason=reason)
        else:
            services.set_flag(MASTER_SWITCH, enabled, actor=actor, reason=reason,
                              confirm_all_tenants=confirm_all_tenants)

    def _clear(self, tenant: str | None, policy: str | None, actor: Actor, reason: str) -> None:
        if tenant:
            cleared = services.clear_tenant_override(tenant, actor=actor, reason=reason)
        elif policy:
            cleared = services.clear_policy_override(policy, actor=actor, reason=reason)
        else:
            raise CommandError("clear needs --tenant or --policy.")
        if cleared is None:
            self.stdout.write(f"There was no override for {tenant or policy}; nothing changed.")

    def _print_status(self, *, as_json: bool) -> None:
        status = status_document()
        if as_json:
            self.stdout.write(json.dumps(status, indent=2, cls=DjangoJSONEncoder))
            return

        self.stdout.write(f"Revision {status['revision']}")
        for name, state in status["flags"].items():
            self.stdout.write(f"  {name:<40} {_format(state['value']):<24} ({state['source']})")
        for kind, key in (("tenant", "tenant_id"), ("policy", "policy_id")):
            for override in status[f"{kind}_overrides"]:
                word = "enabled" if override["enabled"] else "disabled"
                self.stdout.write(f"  {kind} {override[key]}: {word}")


def _format(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "(empty)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in containers without a passwd entry
        return "command"
