"""The gateway's model table (gateway/models.py): base models and adapters found on the
replicas that serve them, unknown models refused with the closest names."""

from __future__ import annotations

import pytest

from bosun.gateway.models import ModelTable, Target, UnknownModelError, served_models

SMOL = {
    "object": "list",
    "data": [
        {"id": "smollm2", "object": "model", "parent": None},
        {"id": "smollm2-sql", "object": "model", "parent": "smollm2"},
    ],
}


def table() -> ModelTable:
    t = ModelTable()
    t.update("http://a", served_models(SMOL))
    t.update("http://b", {"smollm2": None})
    t.update("http://c", {"qwen2.5-0.5b": None})
    return t


def test_a_replicas_listing_says_which_names_are_adapters() -> None:
    assert served_models(SMOL) == {"smollm2": None, "smollm2-sql": "smollm2"}
    broken = {"data": [{"id": ""}, {"object": "model"}, "x", {"id": "ok", "parent": 3}]}
    assert served_models(broken) == {"ok": None}
    assert served_models({"error": "nope"}) == {}


def test_a_model_goes_to_every_replica_serving_it() -> None:
    assert table().target("smollm2") == Target("smollm2", "smollm2", None, ("http://a", "http://b"))
    sql = table().target("smollm2-sql")
    assert sql == Target("smollm2-sql", "smollm2", "smollm2-sql", ("http://a",))


def test_an_unknown_model_names_the_closest_ones() -> None:
    with pytest.raises(
        UnknownModelError, match=r"'smolm2' is not served here; did you mean 'smollm2'"
    ):
        table().target("smolm2")
    with pytest.raises(UnknownModelError, match=r"served: qwen2\.5-0\.5b, smollm2, smollm2-sql"):
        table().target("llama-70b")
    with pytest.raises(UnknownModelError, match=r"is not served here$"):
        ModelTable().target("anything")


def test_a_replica_that_goes_away_takes_its_models_with_it() -> None:
    t = table()
    t.remove("http://c")
    t.remove("http://never-seen")
    assert t.replicas == ["http://a", "http://b"]
    assert list(t.models()) == ["smollm2", "smollm2-sql"]
    with pytest.raises(UnknownModelError):
        t.target("qwen2.5-0.5b")
