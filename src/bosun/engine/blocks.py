"""The paged KV cache's bookkeeping: fixed-size blocks, block tables, prefix caching.

Plain Python, no torch: a block is an index into the cache tensor the model runner owns.
A full block is known by a hash of its tokens chained with the hash of the block before
it, so two sequences with the same prefix share the blocks of that prefix (reference
counted). A block whose last user finishes keeps its hash and contents until the block is
needed again, so a later request with that prefix still finds it (least recently freed
blocks are reused first).

Where the cache's memory is committed as it is first written (a CPU's ``torch.empty``:
pages are mapped on first touch), ``fresh_last`` hands out blocks already used before
blocks never used: the memory a server holds then follows its peak load, not the
number of requests it served (cycling through every block would commit the whole cache
over time, which looks like a leak). The prefix cache then keeps what fits in the blocks
touched so far, plus ``retain_blocks``: while fewer blocks than that have been touched, a
never-used block is handed out rather than one holding a cached prefix, so prefixes of
finished requests (a tenant's system prompt) survive. Where the cache is allocated up
front (a GPU), never-used blocks go first, so cached prefixes live as long as possible.

Either way, a freed block that holds no cached prefix (a sequence's partial last block) is
reused before one that does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["NO_HASH", "Block", "BlockManager", "BlockStats"]

NO_HASH = -1


@dataclass
class Block:
    id: int
    ref_count: int = 0
    hash: int = NO_HASH
    tokens: tuple[int, ...] = ()


@dataclass
class BlockStats:
    """Prefix-cache counters, in tokens (vLLM's prefix_cache_queries / _hits)."""

    queries: int = 0
    hits: int = 0


def _chain(previous: int, tokens: tuple[int, ...]) -> int:
    # Tuples of ints hash the same in every process (no hash randomisation for them).
    return hash((previous, tokens)) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class BlockManager:
    num_blocks: int
    block_size: int
    prefix_caching: bool = True
    fresh_last: bool = False  # used blocks before never-used ones (memory touched lazily)
    # With fresh_last: keep cached prefixes (touch never-used blocks instead of evicting
    # them) while fewer blocks than this have been touched.
    retain_blocks: int = 0
    blocks: list[Block] = field(init=False)
    stats: BlockStats = field(default_factory=BlockStats)
    # Free blocks holding a cached prefix, least recently freed first; a freed block keeps
    # its hash until reused.
    _free: OrderedDict[int, None] = field(init=False)
    # Free blocks holding nothing cached (freed with no hash), least recently freed first.
    _spare: OrderedDict[int, None] = field(init=False)
    # With fresh_last: blocks never handed out yet, lowest first.
    _fresh: OrderedDict[int, None] = field(init=False)
    _by_hash: dict[int, int] = field(init=False)
    _taken: bytearray = field(init=False)  # 1 for each block handed out at least once
    _touched: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.num_blocks < 1 or self.block_size < 1:
            raise ValueError("num_blocks and block_size must be at least 1")
        self.blocks = [Block(i) for i in range(self.num_blocks)]
        every = OrderedDict((i, None) for i in range(self.num_blocks))
        self._free, self._fresh = (
            (OrderedDict(), every) if self.fresh_last else (every, OrderedDict())
        )
        self._spare = OrderedDict()
        self._by_hash = {}
        self._taken = bytearray(self.num_blocks)

    # ------------------------------------------------------------------ queries

    @property
    def free_blocks(self) -> int:
        return len(self._free) + len(self._spare) + len(self._fresh)

    @property
    def touched_blocks(self) -> int:
        """Blocks handed out at least once: where memory is committed on first write, the
        cache's memory in use."""
        return self._touched

    @property
    def usage(self) -> float:
        """Fraction of blocks held by running sequences (0..1)."""
        return 1.0 - self.free_blocks / self.num_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def _cached_prefix(self, tokens: Sequence[int], salt: int) -> list[int]:
        """The blocks that already hold this prefix, in order (full blocks only, and never
        the whole sequence)."""
        found: list[int] = []
        if not self.prefix_caching:
            return found
        previous = salt
        for start in range(0, len(tokens) - self.block_size + 1, self.block_size):
            chunk = tuple(tokens[start : start + self.block_size])
            h = _chain(previous, chunk)
            block_id = self._by_hash.get(h)
            if block_id is None or self.blocks[block_id].tokens != chunk:
                break
            found.append(block_id)
            previous = h
        if found and len(found) * self.block_size >= len(tokens):
            found.pop()  # recompute the last block: its last token gives the logits
        return found

    def allocate(self, tokens: Sequence[int], salt: int = NO_HASH) -> tuple[list[int], int] | None:
        """Blocks for a new sequence of ``tokens``: (block table, tokens already cached),
        or None when there are not enough free blocks. At least the last token is left
        to compute, so the sequence always yields logits. ``salt`` starts the hash chain:
        sequences whose keys and values differ for the same tokens (another LoRA adapter)
        share no blocks."""
        cached = self._cached_prefix(tokens, salt)
        reusable = sum(1 for b in cached if self.blocks[b].ref_count == 0)
        if self.blocks_for(len(tokens)) - len(cached) + reusable > self.free_blocks:
            return None
        table: list[int] = []
        for block_id in cached:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1
            table.append(block_id)
        for _ in range(self.blocks_for(len(tokens)) - len(cached)):
            table.append(self._take(table[-1] if table else None))
        hit = len(cached) * self.block_size
        self.stats.queries += len(tokens)
        self.stats.hits += hit
        return table, hit

    def _take(self, after: int | None = None) -> int:
        """A free block: the one after ``after`` when it is free in the chosen pool (a
        sequence whose blocks lie in order is read without a gather), else that pool's
        least recently freed. Pools in order: freed blocks holding nothing cached; with
        ``fresh_last``, never-used blocks while under ``retain_blocks`` touched; freed
        blocks holding a cached prefix (evicting it); never-used blocks."""
        if self._spare:
            pool = self._spare
        elif self.fresh_last and self._fresh and self._touched < self.retain_blocks:
            pool = self._fresh
        else:
            pool = self._free if self._free else self._fresh
        if after is not None and after + 1 in pool:
            block_id = after + 1
            del pool[block_id]
        else:
            block_id, _ = pool.popitem(last=False)
        if not self._taken[block_id]:
            self._taken[block_id] = 1
            self._touched += 1
        block = self.blocks[block_id]
        if block.hash != NO_HASH and self._by_hash.get(block.hash) == block_id:
            del self._by_hash[block.hash]  # evicted from the prefix cache
        block.hash, block.tokens, block.ref_count = NO_HASH, (), 1
        return block_id

    def grow(self, table: list[int], tokens: int) -> bool:
        """Make ``table`` hold ``tokens`` tokens; False (nothing changed) when the free
        blocks do not suffice."""
        needed = self.blocks_for(tokens) - len(table)
        if needed > self.free_blocks:
            return False
        for _ in range(needed):
            table.append(self._take(table[-1] if table else None))
        return True

    def commit(self, table: list[int], tokens: Sequence[int], salt: int = NO_HASH) -> None:
        """Record the hashes of the full blocks of ``tokens`` (now computed), so later
        sequences with the same prefix (and salt) can share them."""
        if not self.prefix_caching:
            return
        previous = salt
        for i, block_id in enumerate(table):
            start = i * self.block_size
            if start + self.block_size > len(tokens):
                break
            block = self.blocks[block_id]
            if block.hash != NO_HASH:  # committed before: no need to hash it again
                previous = block.hash
                continue
            chunk = tuple(tokens[start : start + self.block_size])
            h = _chain(previous, chunk)
            block.hash, block.tokens = h, chunk
            self._by_hash.setdefault(h, block_id)
            previous = h

    def free(self, table: list[int]) -> None:
        """Release a sequence's blocks (last block first, so a prefix outlives its tail)."""
        for block_id in reversed(table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                (self._free if block.hash != NO_HASH else self._spare)[block_id] = None
        table.clear()
