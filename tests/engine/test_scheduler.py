"""The paged cache's block manager and the scheduler, by scenario (no model needed:
a step "computes" what the scheduler chose and samples a fixed token)."""

from __future__ import annotations

import pytest

from bosun.engine.blocks import BlockManager
from bosun.engine.scheduler import Batch, Scheduler, Sequence, SequenceState


def _run_step(scheduler: Scheduler, token: int = 7) -> Batch:
    batch = scheduler.schedule()
    scheduler.update(batch, {i.seq.id: token for i in batch.items if i.samples})
    return batch


def test_a_shared_prefix_is_computed_once_and_outlives_its_first_user() -> None:
    blocks = BlockManager(num_blocks=16, block_size=4)
    scheduler = Scheduler(blocks)
    system = list(range(100, 112))  # three full blocks
    first = Sequence(1, [*system, 1, 2], max_tokens=1)
    scheduler.add(first)
    batch = _run_step(scheduler)
    assert [(i.start, i.count) for i in batch.items] == [(0, 14)]
    assert first.state is SequenceState.FINISHED  # one token, then done: blocks freed

    second = Sequence(2, [*system, 3, 4, 5], max_tokens=2)
    scheduler.add(second)
    batch = _run_step(scheduler)
    # The 12 prompt tokens of the shared prefix come from the cache.
    assert [(i.start, i.count) for i in batch.items] == [(12, 3)]
    assert blocks.stats.hits == 12 and blocks.stats.queries == 14 + 15


def test_running_sequences_share_prefix_blocks_by_reference() -> None:
    blocks = BlockManager(num_blocks=8, block_size=4)
    scheduler = Scheduler(blocks)
    a = Sequence(1, [*list(range(8)), 50], max_tokens=4)
    scheduler.add(a)
    _run_step(scheduler)
    b = Sequence(2, [*list(range(8)), 60], max_tokens=4)
    scheduler.add(b)
    _run_step(scheduler)
    assert a.block_table[:2] == b.block_table[:2]
    assert blocks.blocks[a.block_table[0]].ref_count == 2
    assert a.block_table[2] != b.block_table[2]


def test_a_whole_cached_prompt_still_computes_its_last_token() -> None:
    blocks = BlockManager(num_blocks=8, block_size=4)
    scheduler = Scheduler(blocks)
    for i in (1, 2):
        seq = Sequence(i, list(range(8)), max_tokens=1)
        scheduler.add(seq)
        batch = _run_step(scheduler)
        assert batch.items[0].samples and batch.items[0].count >= 1
    assert blocks.stats.hits == 4  # the first block; the last is recomputed for logits


def test_a_long_prompt_is_prefilled_in_chunks_beside_decoding() -> None:
    blocks = BlockManager(num_blocks=64, block_size=4)
    scheduler = Scheduler(blocks, max_batched_tokens=16)
    short = Sequence(1, [1, 2, 3], max_tokens=10)
    scheduler.add(short)
    _run_step(scheduler)
    long = Sequence(2, list(range(40)), max_tokens=2)
    scheduler.add(long)
    chunks = []
    while long.output_len == 0:
        batch = _run_step(scheduler)
        mine = {i.seq.id: i for i in batch.items}
        assert mine[1].count == 1  # the short one decodes every step
        chunks.append(mine[2].count)
        assert batch.tokens <= 16
    assert chunks == [15, 15, 10]
    assert long.computed == 40 and long.tokens[-1] == 7


def test_when_blocks_run_out_the_newest_is_preempted_and_later_recomputed() -> None:
    blocks = BlockManager(num_blocks=6, block_size=4, prefix_caching=False)
    scheduler = Scheduler(blocks)
    old = Sequence(1, list(range(8)), max_tokens=8)  # grows to 16 tokens: 4 blocks
    new = Sequence(2, list(range(100, 108)), max_tokens=8)
    scheduler.add(old)
    scheduler.add(new)
    _run_step(scheduler)  # both prefilled: 2 + 2 blocks (+1 for the sampled tokens later)
    preempted = []
    for _ in range(40):
        if scheduler.idle:
            break
        batch = _run_step(scheduler)
        preempted += [s.id for s in batch.preempted]
    assert scheduler.idle
    assert preempted and set(preempted) == {2}  # always the newest
    assert new.preemptions >= 1 and scheduler.preemptions == len(preempted)
    assert old.output_len == 8 and new.output_len == 8
    assert new.tokens[:8] == list(range(100, 108))  # its prompt and outputs kept
    assert blocks.free_blocks == 6


def test_a_sequence_larger_than_the_cache_is_refused_up_front() -> None:
    scheduler = Scheduler(BlockManager(num_blocks=2, block_size=4))
    with pytest.raises(ValueError, match="whole cache holds 8"):
        scheduler.add(Sequence(1, list(range(6)), max_tokens=4))


def test_the_sequence_limit_and_cancel() -> None:
    blocks = BlockManager(num_blocks=32, block_size=4)
    scheduler = Scheduler(blocks, max_num_seqs=2)
    seqs = [Sequence(i, [i, i + 1], max_tokens=5) for i in range(3)]
    for s in seqs:
        scheduler.add(s)
    batch = _run_step(scheduler)
    assert {i.seq.id for i in batch.items} == {0, 1}
    scheduler.finish(seqs[0])  # cancelled: its slot goes to the waiting one
    batch = _run_step(scheduler)
    assert {i.seq.id for i in batch.items} == {1, 2}
    scheduler.finish(seqs[1])
    scheduler.finish(seqs[2])
    assert blocks.free_blocks == 32 and blocks.usage == 0.0


def _serve_one_at_a_time(blocks: BlockManager, requests: int) -> int:
    """Requests of two blocks each (a prompt of 5 tokens, 3 generated), one after the
    other, each a different prompt; the hits on the last prompt, asked again."""
    scheduler = Scheduler(blocks)
    for n in range(requests):
        scheduler.add(Sequence(n, [1000 + n, 1, 2, 3, 4], max_tokens=3))
        while not scheduler.idle:
            _run_step(scheduler)
    before = blocks.stats.hits
    scheduler.add(Sequence(requests, [1000 + requests - 1, 1, 2, 3, 4, 5, 6, 7, 8], 1))
    _run_step(scheduler)
    return blocks.stats.hits - before


@pytest.mark.parametrize("fresh_last", [False, True])
def test_memory_touched_follows_the_load_not_the_request_count(fresh_last: bool) -> None:
    """Where the cache is committed on first write (a CPU), a server that serves one
    request at a time must not walk through every block over time: used blocks are
    handed out again before never-used ones. The prefix cache still holds the latest."""
    blocks = BlockManager(num_blocks=64, block_size=4, fresh_last=fresh_last)
    hits = _serve_one_at_a_time(blocks, requests=100)
    assert hits == 4  # the last prompt's full first block came from the cache
    if fresh_last:
        assert blocks.touched_blocks <= 4  # one request's two blocks, and the next's
    else:
        assert blocks.touched_blocks == 64  # every block cycled through (a GPU's choice)


def test_never_used_blocks_are_still_all_usable() -> None:
    """``fresh_last`` changes the order, not the capacity; new blocks still lie in order."""
    blocks = BlockManager(num_blocks=8, block_size=4, fresh_last=True)
    first = blocks.allocate(list(range(12)))  # three blocks
    assert first is not None and first[0] == [0, 1, 2]
    second = blocks.allocate(list(range(100, 120)))  # the other five
    assert second is not None and second[0] == [3, 4, 5, 6, 7]
    assert blocks.free_blocks == 0 and blocks.allocate([1]) is None
    blocks.free(first[0])
    again = blocks.allocate([9] * 8)  # two of the freed blocks (the tail's go first)
    assert again is not None and set(again[0]) <= {0, 1, 2} and blocks.touched_blocks == 8


def _rotate_tenants(blocks: BlockManager, rounds: int) -> int:
    """Requests of four tenants in turn, one at a time: each prompt is its tenant's
    8-token prefix (two full blocks) and a question of its own. The tokens the prefix
    cache supplied, over every round after the first."""
    hits = 0
    for r in range(rounds):
        for tenant in range(4):
            prompt = [tenant * 100 + i for i in range(8)] + [9000 + r * 10 + tenant, 1, 2]
            allocated = blocks.allocate(prompt)
            assert allocated is not None
            table, hit = allocated
            hits += hit if r else 0
            blocks.commit(table, prompt)
            blocks.free(table)
    return hits


def test_a_retention_budget_keeps_finished_prefixes_where_memory_is_touched_lazily() -> None:
    """With nothing retained, each tenant's prefix is evicted before its turn comes back;
    with room for them, every later request finds its tenant's prefix, and the memory
    touched stays within the budget (and the working set)."""
    lean = BlockManager(num_blocks=64, block_size=4, fresh_last=True)
    assert _rotate_tenants(lean, rounds=5) == 0 and lean.touched_blocks <= 4
    kept = BlockManager(num_blocks=64, block_size=4, fresh_last=True, retain_blocks=16)
    assert _rotate_tenants(kept, rounds=5) == 4 * 4 * 8  # every prefix, from round two on
    assert kept.touched_blocks <= 16 + 3


def test_blocks_holding_nothing_cached_are_reused_before_cached_prefixes() -> None:
    """A freed partial block (nothing cached) goes before a freed full one (a prefix)."""
    blocks = BlockManager(num_blocks=8, block_size=4, fresh_last=True)
    first = blocks.allocate(list(range(6)))  # one full block, one partial
    assert first is not None
    blocks.commit(first[0], list(range(6)))
    full, partial = first[0]
    blocks.free(first[0])
    other = blocks.allocate([50, 51])  # one block: the partial one, not the cached prefix
    assert other is not None and other[0] == [partial]
    again = blocks.allocate(list(range(6)))
    assert again is not None and again[1] == 4 and again[0][0] == full


def test_the_engine_retains_its_default_or_the_tokens_asked_for_at_most_the_cache() -> None:
    from bosun.engine.engine import PREFIX_CACHE_TOKENS, EngineOptions, retained_blocks

    assert retained_blocks(EngineOptions("m"), 10_000, 16) == PREFIX_CACHE_TOKENS // 16
    assert retained_blocks(EngineOptions("m", prefix_cache_tokens=0), 10_000, 16) == 0
    assert retained_blocks(EngineOptions("m", prefix_cache_tokens=20), 10_000, 16) == 2
    assert retained_blocks(EngineOptions("m", prefix_cache_tokens=10**9), 512, 16) == 512
