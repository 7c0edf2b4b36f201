"""The reference extensions: small, real extensions that speak the extension-call contract.

One module per extension, each with a ``SUBJECT`` and a ``handle(request) -> reply`` function
that depends on nothing but its input (``audit_log`` is the one with a side effect, and
declares it). ``registry.REFERENCE_EXTENSIONS`` lists them, ``service`` serves them over NATS,
and ``demo_registry.json`` is the demo data that registers them for two demo tenants.
Run them with ``python -m executor.extensions --nats-url URL``.
"""
