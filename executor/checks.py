"""System checks of the executor's configuration, run by every management command."""
from typing import Any

from django.core.checks import CheckMessage, Error, register

from executor.core.flags import EnvironmentFlagSource, FlagConfigError


@register()
def check_parallel_execution_flags(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Report an ``EXTENSION_PIPELINE_*`` variable whose value its flag cannot take."""
    try:
        EnvironmentFlagSource().current()
    except FlagConfigError as error:
        return [Error(str(error), id="executor.E001")]
    return []
