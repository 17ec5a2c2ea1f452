"""Decode steps replayed from CUDA graphs.

A decode step of a small model is hundreds of short kernel launches; launched one by one
from Python, the GPU waits on the CPU. Captured once per batch size into a CUDA graph, the
whole step is one launch. A graph replays fixed tensors, so every input of a decode step
lives in a static buffer sized for the largest batch: the tokens, their positions and
cache slots, the block tables and the context lengths. A batch of n sequences fills the
first n rows and runs the graph of the smallest captured size >= n; the padding rows
decode token 0 with no context, write to the cache's scratch slot and are dropped.

Without capture (``capture=False``, or off CUDA) the same buffers run eagerly: that is how
the CPU tests check the padding and the buffers, with the Triton kernel interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bosun.engine.model import Decoder, PagedKVCache, PagedStep

__all__ = ["DecodeGraphs", "capture_sizes"]


def capture_sizes(max_batch: int) -> list[int]:
    """The batch sizes captured: 1, 2, 4, 8, then every multiple of 8 up to ``max_batch``
    (vLLM's choice: padding costs at most 7 rows)."""
    sizes = [s for s in (1, 2, 4) if s < max_batch]
    sizes += list(range(8, max_batch + 8, 8))
    return sorted({min(s, max_batch) for s in sizes})


class DecodeGraphs:
    """One decode step (one token for each of up to ``max_batch`` sequences) per batch
    size, captured as CUDA graphs over static buffers."""

    def __init__(
        self,
        model: Decoder,
        cache: PagedKVCache,
        max_batch: int,
        max_blocks: int,
        *,
        capture: bool,
    ) -> None:
        device = cache.kv.device
        self.model, self.cache, self.max_batch = model, cache, max_batch
        self.sizes = capture_sizes(max_batch)
        self.tokens = torch.zeros(max_batch, dtype=torch.long, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.long, device=device)
        self.slots = torch.full((max_batch,), cache.scratch_slot, dtype=torch.long, device=device)
        self.tables = torch.zeros(max_batch, max_blocks, dtype=torch.int32, device=device)
        self.lengths = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.rows = torch.arange(max_batch, device=device)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._outputs: dict[int, torch.Tensor] = {}
        if capture:
            self._capture()

    def _step(self, size: int) -> PagedStep:
        rows = self.rows[:size]
        return PagedStep(
            positions=self.positions[:size],
            slot_mapping=self.slots[:size],
            q_index=rows[:, None],
            q_valid=torch.ones_like(rows[:, None], dtype=torch.bool),
            kv_index=None,
            mask=None,
            last=rows,
            block_tables=self.tables[:size],
            lengths=self.lengths[:size],
        )

    def _forward(self, size: int) -> torch.Tensor:
        logits: torch.Tensor = self.model(self.tokens[:size], self.cache, self._step(size))
        return logits

    def _capture(self) -> None:
        """Largest first, all graphs sharing one memory pool (only one runs at a time)."""
        pool = None
        torch.cuda.synchronize()
        for size in reversed(self.sizes):
            self._forward(size)  # warm-up: compiles the kernels, settles the allocator
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._outputs[size] = self._forward(size)
            pool = graph.pool()
            self._graphs[size] = graph
        torch.cuda.synchronize()

    def run(
        self, tokens: Sequence[int], starts: Sequence[int], tables: Sequence[list[int]]
    ) -> torch.Tensor:
        """Decode ``tokens[i]`` at position ``starts[i]`` of the sequence whose blocks are
        ``tables[i]``; the logits [n, vocab] (a view valid until the next run)."""
        n = len(tokens)
        size = next(s for s in self.sizes if s >= n)
        block_size = self.cache.block_size
        used = max(-(-(start + 1) // block_size) for start in starts)
        rows = [table[:used] + [0] * (used - min(used, len(table))) for table in tables]
        slots = [
            table[start // block_size] * block_size + start % block_size
            for table, start in zip(tables, starts, strict=True)
        ]
        host = torch.tensor([list(tokens), list(starts), slots], dtype=torch.long)
        self.tokens[:n].copy_(host[0])
        self.positions[:n].copy_(host[1])
        self.slots[:n].copy_(host[2])
        self.lengths[:n].copy_(host[1] + 1)
        self.tables[:n, :used].copy_(torch.tensor(rows, dtype=torch.int32))
        # Padding rows: token 0 at position 0, no context, writes to the scratch slot.
        self.tokens[n:size].zero_()
        self.positions[n:size].zero_()
        self.slots[n:size].fill_(self.cache.scratch_slot)
        self.lengths[n:size].zero_()
        graph = self._graphs.get(size)
        if graph is None:
            return self._forward(size)[:n]
        graph.replay()
        return self._outputs[size][:n]
