"""The models behind the gateway: which replicas serve each model name, base model or
LoRA adapter, read from each replica's ``/v1/models`` (OpenAI's list; an adapter has a
``parent``, as vLLM and Bosun's server write it). Pure: the proxy fetches the lists."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelTable", "Target", "UnknownModelError", "served_models"]


class UnknownModelError(LookupError):
    """A request named a model no replica serves; the message names the closest ones."""

    def __init__(self, model: str, known: Iterable[str]) -> None:
        self.model = model
        names = sorted(set(known))
        close = difflib.get_close_matches(model, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listed = f" (served: {', '.join(names)})" if names and not close else ""
        super().__init__(f"model {model!r} is not served here{hint}{listed}")


@dataclass(frozen=True)
class Target:
    """Where requests for ``model`` may go: the replicas serving it, and the adapter's
    name when ``model`` is one (its base is ``base``)."""

    model: str
    base: str
    adapter: str | None
    replicas: tuple[str, ...]


def served_models(listing: Mapping[str, Any]) -> dict[str, str | None]:
    """A replica's ``/v1/models`` body as {model name: its parent (None: a base model)};
    entries that are not model objects are left out."""
    data = listing.get("data")
    out: dict[str, str | None] = {}
    if not isinstance(data, list):
        return out
    for entry in data:
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and entry["id"]:
            parent = entry.get("parent")
            out[entry["id"]] = parent if isinstance(parent, str) and parent else None
    return out


@dataclass
class ModelTable:
    """Every replica's models, as last read. ``update`` replaces one replica's list;
    ``remove`` forgets a replica (gone, or scaled away)."""

    _by_replica: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def update(self, replica: str, models: Mapping[str, str | None]) -> None:
        self._by_replica[replica] = dict(models)

    def remove(self, replica: str) -> None:
        self._by_replica.pop(replica, None)

    @property
    def replicas(self) -> list[str]:
        return sorted(self._by_replica)

    def models(self) -> dict[str, str | None]:
        """Every model name served anywhere, with its parent (None: a base model)."""
        out: dict[str, str | None] = {}
        for models in self._by_replica.values():
            out.update(models)
        return dict(sorted(out.items()))

    def target(self, model: str) -> Target:
        """Where a request for ``model`` may go. Raises :class:`UnknownModelError`."""
        replicas: list[str] = []
        parent: str | None = None
        for replica, models in sorted(self._by_replica.items()):
            if model in models:
                replicas.append(replica)
                parent = parent or models[model]
        if not replicas:
            raise UnknownModelError(model, self.models())
        return Target(model, parent or model, model if parent else None, tuple(replicas))
