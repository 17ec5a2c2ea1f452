"""Engines: what generates tokens. ``client`` holds the one interface the HTTP layer sees
(:class:`EngineClient`) and its data types; the fake engine serves API tests; the Bosun
engine (scheduler and block bookkeeping in plain Python, model runner in torch) serves
real models. Must not import fastapi or kubernetes.
"""
