"""The Bosun gateway: one OpenAI endpoint in front of every Workspace, requests routed by
their ``model`` field and balanced across its replicas.

- ``policy.py``: which replica takes a request. Pure (no I/O): prefix-cache-aware
  consistent hashing with bounded load, adapter affinity, least outstanding requests
  otherwise. The proxy feeds it each replica's load.
- ``load.py``: a replica's load as its ``/metrics`` reports it (vLLM's names).
- ``models.py``: which replicas serve each model name (base or adapter), from their
  ``/v1/models``; an unknown name is refused with the closest ones.
- ``metrics.py``: the gateway's own Prometheus metrics (requests, routing decisions,
  retries, broken streams, requests in flight).
- ``proxy.py``: the HTTP side (uvicorn in, aiohttp out): forwards the OpenAI routes to
  the chosen replica, streams passed through as they arrive, one retry elsewhere for a
  replica that cannot be reached, 503 with Retry-After when none can.

``bosun gateway`` (cli/gateway.py) serves the proxy. The gateway must not import torch
or the engine: it runs where no model does.
"""
