"""The parallel-execution flags: names, defaults, environment variables and effective values.

Each flag has a built-in default, may be set by an environment variable
(``EXTENSION_PIPELINE_`` followed by the flag name in capitals, lists comma-separated) and may
be overridden in the database. The effective value is the database override when there is
one, else the environment's value, else the default.

The executor turns the values returned by ``effective_values`` into its own ``ParallelFlags``
(``executor/flag_source.py``); a test checks that both agree on names, defaults and parsing.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENVIRONMENT_PREFIX = "EXTENSION_PIPELINE_"

SWITCH = "switch"
ID_LIST = "list"
INTEGER = "integer"
NUMBER = "number"

MAX_GROUP_SIZE_RANGE = (1, 64)
TIMEOUT_MULTIPLIER_RANGE = (1.0, 10.0)

DEFAULT = "default"
ENVIRONMENT = "environment"
DATABASE = "database"

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})


class InvalidFlagEnvironment(ValueError):
    """An ``EXTENSION_PIPELINE_*`` environment variable contains a value its flag cannot take."""


@dataclass(frozen=True)
class FlagDefinition:
    """One flag: its name, the kind of value it takes, its default and its allowed range."""

    name: str
    kind: str
    default: Any
    description: str
    bounds: tuple[float, float] | None = None

    @property
    def environment_variable(self) -> str:
        return ENVIRONMENT_PREFIX + self.name.upper()


FLAGS: tuple[FlagDefinition, ...] = (
    FlagDefinition("parallel_execution_enabled", SWITCH, False, "Master switch: off means no tenant runs anything in parallel."),
    FlagDefinition("parallel_pre_processors_enabled", SWITCH, False, "Pre-processors may run in parallel groups."),
    FlagDefinition("parallel_validators_enabled", SWITCH, False, "Validators may run in parallel groups."),
    FlagDefinition("parallel_post_processors_enabled", SWITCH, False, "Post-processors may run in parallel groups."),
    FlagDefinition(
        "parallel_execution_tenant_allowlist", ID_LIST, (),
        "Tenants that get parallel execution; empty means every tenant.",
    ),
    FlagDefinition(
        "parallel_execution_policy_allowlist", ID_LIST, (),
        "Routing policies that get parallel execution; empty means every policy.",
    ),
    FlagDefinition(
        "parallel_execution_max_group_size", INTEGER, 5,
        "Maximum number of extensions in one parallel group.", MAX_GROUP_SIZE_RANGE,
    ),
    FlagDefinition(
        "parallel_execution_timeout_multiplier", NUMBER, 1.5,
        "A parallel group's deadline is its slowest member's budget times this number.",
        TIMEOUT_MULTIPLIER_RANGE,
    ),
)
FLAGS_BY_NAME: dict[str, FlagDefinition] = {flag.name: flag for flag in FLAGS}

MASTER_SWITCH = "parallel_execution_enabled"
TENANT_ALLOWLIST = "parallel_execution_tenant_allowlist"
POLICY_ALLOWLIST = "parallel_execution_policy_allowlist"


@dataclass(frozen=True)
class FlagState:
    """A flag's effective value, where it came from, and the value each layer sets."""

    definition: FlagDefinition
    value: Any
    source: str
    environment_value: Any
    database_value: Any

    def as_dict(self) -> dict[str, Any]:
        """Return the state in the API's shape; lists become JSON arrays and unset layers null."""
        return {
            "value": _jsonable(self.value),
            "source": self.source,
            "default": _jsonable(self.definition.default),
            "environment_variable": self.definition.environment_variable,
            "environment_value": _jsonable(self.environment_value),
            "database_value": _jsonable(self.database_value),
        }


def environment_values(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the value of every flag whose variable is set in ``environ`` (``os.environ`` by default).

    Raises ``InvalidFlagEnvironment`` naming the variable and the accepted values when one is invalid.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for flag in FLAGS:
        if flag.environment_variable in environ:
            values[flag.name] = parse_environment_value(flag, environ[flag.environment_variable])
    return values


def flag_states(database_values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[FlagState]:
    """Return every flag's state, in definition order, from the database overrides and the environment."""
    from_environment = environment_values(environ)
    states = []
    for flag in FLAGS:
        environment_value = from_environment.get(flag.name)
        database_value = database_values.get(flag.name)
        if database_value is not None:
            value, source = database_value, DATABASE
        elif environment_value is not None:
            value, source = environment_value, ENVIRONMENT
        else:
            value, source = flag.default, DEFAULT
        states.append(FlagState(flag, value, source, environment_value, database_value))
    return states


def parse_environment_value(flag: FlagDefinition, raw: str) -> Any:
    """Parse ``raw``, the text of ``flag``'s environment variable, strictly."""
    variable = flag.environment_variable
    if flag.kind == SWITCH:
        return _parse_switch(variable, raw)
    if flag.kind == ID_LIST:
        items = (item.strip() for item in raw.split(","))
        return tuple(item for item in items if item)
    if flag.kind == INTEGER:
        return _parse_integer(variable, raw, flag.bounds)
    return _parse_number(variable, raw, flag.bounds)


def stored_value(flag: FlagDefinition, value: Any) -> Any:
    """Return ``value`` as the Python type the flag takes: lists become tuples."""
    if flag.kind == ID_LIST:
        return tuple(value)
    if flag.kind == NUMBER:
        return float(value)
    return value


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _parse_switch(variable: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise InvalidFlagEnvironment(f"{variable}={raw!r} is not a valid switch; use true, false, 1, 0, yes or no.")


def _parse_integer(variable: str, raw: str, bounds: tuple[float, float] | None) -> int:
    low, high = bounds or (-math.inf, math.inf)
    expected = f"use a whole number from {int(low)} to {int(high)}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidFlagEnvironment(f"{variable}={raw!r} is not an integer; {expected}.") from None
    if not low <= value <= high:
        raise InvalidFlagEnvironment(f"{variable}={raw!r} is out of range; {expected}.")
    return value


def _parse_number(variable: str, raw: str, bounds: tuple[float, float] | None) -> float:
    low, high = bounds or (-math.inf, math.inf)
    expected = f"use a number from {low} to {high}"
    try:
        value = float(raw.strip())
    except ValueError:
        raise InvalidFlagEnvironment(f"{variable}={raw!r} is not a number; {expected}.") from None
    if math.isnan(value) or not low <= value <= high:
        raise InvalidFlagEnvironment(f"{variable}={raw!r} is out of range; {expected}.")
    return value
