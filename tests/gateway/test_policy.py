"""The gateway's routing policy (gateway/policy.py): prompts that begin alike meet on one
replica, no replica takes much more than its share, adapters stay together, retries go
elsewhere."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from bosun.gateway.policy import (
    LOAD_FACTOR,
    SPILL_FLOOR,
    NoReplicaError,
    Replica,
    choose,
    prefix_key,
    request_text,
)

THREE = [Replica("http://a"), Replica("http://b"), Replica("http://c")]


def key(i: int) -> str:
    found = prefix_key(f"tenant {i}: you are a helpful assistant " * 10)
    assert found is not None
    return found


def test_the_routing_text_is_how_the_prompt_begins() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]},
            "not a message",
        ]
    }
    assert request_text(chat) == "system\nBe brief.\nuser\nHi[image_url]"
    assert request_text({"prompt": "Once upon"}) == "Once upon"
    assert request_text({"prompt": ["first", "second"]}) == "first"
    assert request_text({"prompt": [1, 2, 3]}) == "1 2 3"
    assert request_text({"prompt": [[4, 5], [6]]}) == "4 5"
    assert request_text({"input": "embed me"}) == "embed me"
    assert request_text({"messages": "nonsense", "prompt": 7}) == ""
    assert request_text({}) == ""


def test_prompts_sharing_their_beginning_share_a_key() -> None:
    system = "You answer questions about the Bosun operator. " * 10  # over 256 characters
    assert prefix_key(system + "How do I scale?") == prefix_key(system + "What is DRA?")
    assert prefix_key("short one") != prefix_key("short two")
    assert prefix_key("") is None


def test_a_prefix_keeps_going_to_its_replica() -> None:
    first = choose(THREE, prefix=key(0))
    assert first.reason == "prefix" and first.home
    for _ in range(20):
        assert choose(THREE, prefix=key(0)).replica == first.replica


def test_keys_spread_evenly_over_idle_replicas() -> None:
    counts = Counter(choose(THREE, prefix=key(i)).replica.name for i in range(3000))
    assert set(counts) == {r.name for r in THREE}
    assert all(750 < n < 1250 for n in counts.values()), counts


def test_removing_a_replica_moves_only_its_keys() -> None:
    four = [*THREE, Replica("http://d")]
    before = {i: choose(four, prefix=key(i)).replica.name for i in range(1000)}
    after = {i: choose(THREE, prefix=key(i)).replica.name for i in range(1000)}
    moved = {i for i in before if before[i] != after[i]}
    assert moved == {i for i in before if before[i] == "http://d"}


def test_a_hot_prefix_spills_over_instead_of_queueing_on_one_replica() -> None:
    """90 requests with one prefix, none finishing: the home replica takes its bounded
    share, then the next ones on the ring take theirs."""
    loads = dict.fromkeys((r.name for r in THREE), 0)
    spilled = 0
    for _ in range(90):
        replicas = [Replica(name, outstanding=n) for name, n in loads.items()]
        choice = choose(replicas, prefix=key(7))
        loads[choice.replica.name] += 1
        spilled += not choice.home
    assert max(loads.values()) <= -(-LOAD_FACTOR * 90 // 3)  # ceil: 38
    assert min(loads.values()) > 0 and spilled > 0


def test_a_replica_holding_few_requests_keeps_its_keys_above_the_mean() -> None:
    """Under SPILL_FLOOR requests a replica takes its own keys, even at twice the others'
    load: batching them costs less than another replica computing the prefix again."""
    home = choose(THREE, prefix=key(5)).replica.name
    loads = {r.name: (SPILL_FLOOR - 1 if r.name == home else 0) for r in THREE}
    replicas = [Replica(name, outstanding=n) for name, n in loads.items()]
    assert choose(replicas, prefix=key(5)).replica.name == home
    full = [replace(r, outstanding=SPILL_FLOOR) if r.name == home else r for r in replicas]
    assert choose(full, prefix=key(5)).replica.name != home  # at the floor, above the mean
    assert choose(replicas, prefix=key(5), spill_floor=0).replica.name != home


def test_replicas_busy_with_others_count_as_loaded() -> None:
    """Load is what the replica's metrics say when that is more than the gateway's own."""
    home = choose(THREE, prefix=key(3)).replica.name
    busy = [replace(r, running=8, waiting=4) if r.name == home else r for r in THREE]
    assert busy[[r.name for r in THREE].index(home)].load == 12
    choice = choose(busy, prefix=key(3))
    assert choice.replica.name != home and not choice.home


def test_an_adapter_stays_on_its_replica_whatever_the_prompt() -> None:
    homes = {choose(THREE, prefix=key(i), adapter="sql-lora").replica.name for i in range(50)}
    assert len(homes) == 1
    choice = choose(THREE, prefix=key(1), adapter="sql-lora")
    assert choice.reason == "adapter"
    spread = {choose(THREE, adapter=f"adapter-{i}").replica.name for i in range(60)}
    assert len(spread) == 3  # different adapters use every replica


def test_without_a_prompt_the_least_loaded_replica_takes_it() -> None:
    replicas = [
        Replica("http://a", outstanding=3),
        Replica("http://b", outstanding=1, kv_usage=0.9),
        Replica("http://c", outstanding=1, kv_usage=0.2),
    ]
    choice = choose(replicas)
    assert choice.replica.name == "http://c" and choice.reason == "least-loaded"
    assert not choice.home


def test_a_retry_goes_to_a_replica_not_yet_tried() -> None:
    first = choose(THREE, prefix=key(5)).replica.name
    second = choose(THREE, prefix=key(5), exclude={first}).replica.name
    third = choose(THREE, prefix=key(5), exclude={first, second}).replica.name
    assert len({first, second, third}) == 3
    with pytest.raises(NoReplicaError):
        choose(THREE, prefix=key(5), exclude={first, second, third})
    with pytest.raises(NoReplicaError):
        choose([], prefix=key(5))


def test_a_load_factor_below_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="load_factor: expected at least 1"):
        choose(THREE, prefix=key(0), load_factor=0.5)


def test_round_robin_takes_each_replica_in_turn_and_skips_those_tried() -> None:
    from bosun.gateway.policy import round_robin

    replicas = [Replica("c"), Replica("a"), Replica("b")]
    assert [round_robin(replicas, turn).replica.name for turn in range(4)] == ["a", "b", "c", "a"]
    assert round_robin(replicas, 0, exclude={"a"}).replica.name == "b"
    assert round_robin(replicas, 5).reason == "round-robin"
    with pytest.raises(NoReplicaError):
        round_robin(replicas, 0, exclude={"a", "b", "c"})
