"""The executor's flag source: database overrides over environment over defaults.

Start-up and the snapshot loader read flags through this source, so a change made in the
admin, the API or the management command reaches the executor with its next snapshot.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from executor.core.flags import FlagConfigError, ParallelFlags
from rollout.flags import InvalidFlagEnvironment, environment_values
from rollout.status import effective_values


class DatabaseFlagSource:
    """Flags as the rollout app computes them, read from the database on every ``current()`` call.

    The snapshot provider calls ``current()`` on its database thread with the rest of the
    snapshot. When the database cannot be reached the load fails whole and the executor
    keeps its last snapshot, flags included. An executor that has never loaded a snapshot
    has no policies either, so it replies ``snapshot_unavailable`` to every request and
    runs nothing, in parallel or otherwise.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def check_environment(self) -> None:
        """Raise ``FlagConfigError`` naming the variable when an environment variable is invalid.

        Unlike ``current()`` it does not read the database, so start-up can check the
        configuration before the database is reachable.
        """
        try:
            environment_values(self._environ)
        except InvalidFlagEnvironment as error:
            raise FlagConfigError(str(error)) from error

    def current(self) -> ParallelFlags:
        """Return the flags in force now; raises ``FlagConfigError`` for an invalid environment variable."""
        try:
            values = effective_values(self._environ)
        except InvalidFlagEnvironment as error:
            raise FlagConfigError(str(error)) from error

        values["tenant_overrides"] = MappingProxyType(dict(values["tenant_overrides"]))
        values["policy_overrides"] = MappingProxyType(dict(values["policy_overrides"]))
        return ParallelFlags(**values)
