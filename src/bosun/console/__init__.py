"""The web console: one page to see, try and tune Workspaces (docs/console.md).

The gateway serves it at ``/`` (``bosun gateway --local`` under `bosun up`, and
``bosun console`` on its own). The page is static files in this package (no Node build,
no CDN; uPlot vendored with its license); what it shows comes from the JSON API in
app.py, which reads Workspaces through a backend (backends.py locally, cluster.py in a
cluster) and each model's metrics from its replicas (sampler.py).
"""
