"""Getting a model ready before a server starts: shared by `bosun serve` and `bosun up`."""

from __future__ import annotations

from bosun.cli.output import fail, progress_bar


def prepare_model(model: str) -> None:
    """Find the model, and convert a GGUF model into the cache now, with a progress bar,
    if it is not there yet (tens of seconds, once): a wrong --model fails before the
    server starts, and the server itself starts in seconds."""
    from bosun.engine.client import EngineError
    from bosun.engine.loader import needs_conversion, resolve_model

    try:
        if not needs_conversion(model):
            resolve_model(model)  # fast: only finds it, or says why it cannot
            return
        with progress_bar("preparing") as update:
            resolve_model(model, progress=update)
    except EngineError as exc:
        fail(str(exc))
