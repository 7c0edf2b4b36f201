"""Where to find Debian's promtool and prometheus, and the skip for a machine without them.

CI sets ``REQUIRE_PROMETHEUS_TESTS``: there a missing binary fails the tests instead.
"""
import os
import shutil

import pytest

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
_REQUIRED = bool(os.environ.get("REQUIRE_PROMETHEUS_TESTS"))
_REASON = "{} is not installed (Debian package prometheus; .ci/run installs it)"


def _needs(binary, name):
    if binary is None and _REQUIRED:
        return pytest.mark.usefixtures("fail_missing_prometheus")
    return pytest.mark.skipif(binary is None, reason=_REASON.format(name))


needs_promtool = _needs(PROMTOOL, "promtool")
needs_prometheus = _needs(PROMETHEUS, "prometheus")
