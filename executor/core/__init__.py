"""The executor's core: plan, merge and the parallel group runner, in plain Python.

Nothing under this package imports Django; a thin adapter elsewhere builds a ``Snapshot``
from the database and hands it in.
"""
