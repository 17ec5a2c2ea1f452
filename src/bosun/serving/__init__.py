"""The OpenAI-compatible HTTP server: FastAPI app factory, wire models, SSE, errors and
metrics. It sees the engine only through :mod:`bosun.engine.client`; it must not import
torch.
"""
