"""The Kubernetes operator: kopf handlers that reconcile Workspaces on a cluster.

With the gateway's Kubernetes source (which borrows ``connection.py``), the only code
that talks to an API server. It plans and renders with the pure core
(``catalog``, ``devices``, ``render``) and adds what needs the cluster: discovery of its
devices, server-side apply, NodeClaims, drift repair, status conditions and events.
Must not import torch or fastapi; the operator image carries neither.
"""
