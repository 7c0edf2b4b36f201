"""The executor's metrics, traces and structured logs, fed by the runtime's observer and tracing hooks."""
