"""The executor's own ``/metrics`` endpoint, on a port of its own (``EXECUTOR_METRICS_PORT``)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, multiprocess, start_http_server

logger = logging.getLogger("executor.telemetry")


@dataclass
class MetricsServer:
    """A running metrics endpoint; ``port`` is the port it listens on."""

    address: str
    port: int
    _server: WSGIServer
    _thread: Thread

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, address: str = "127.0.0.1") -> MetricsServer:
    """Serve prometheus_client's metrics on ``address:port`` from a thread of its own.

    When ``PROMETHEUS_MULTIPROC_DIR`` is set the process writes its metrics there, so the
    endpoint serves that directory's aggregate.
    """
    # The ``_created`` series would double every counter's and histogram's series count for
    # a creation timestamp that no dashboard or alert reads.
    disable_created_metrics()
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    server, thread = start_http_server(port, addr=address, registry=registry)
    bound_port = server.server_address[1]
    logger.info("Executor metrics at http://%s:%s/metrics", address, bound_port)
    return MetricsServer(address, bound_port, server, thread)
