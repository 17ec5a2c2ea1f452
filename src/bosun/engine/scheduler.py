"""Continuous batching over the paged KV cache: which tokens of which sequences the next
forward pass computes. Plain Python, no torch.

Each step has a token budget. Running sequences come first, oldest first: a decoding
sequence takes one token, a sequence still in its prompt takes as much of it as the budget
allows (chunked prefill), so a long prompt never stalls the others' decoding. Then waiting
sequences are admitted, oldest first, while blocks, the budget and the sequence limit
allow; a prompt prefix already in the cache is not computed again. When the blocks run
out, the newest running sequence is preempted: its blocks are freed and it waits at the
front of the queue, to be recomputed (its prefix likely still cached) when blocks free up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from bosun.engine.blocks import NO_HASH, BlockManager

__all__ = ["Batch", "Scheduled", "Scheduler", "Sequence", "SequenceState"]


class SequenceState(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """A request's tokens (prompt, then output) and where its KV cache lives."""

    id: int
    tokens: list[int]
    max_tokens: int
    prompt_len: int = field(init=False)
    computed: int = 0  # tokens whose keys and values are in the cache
    block_table: list[int] = field(default_factory=list)
    state: SequenceState = SequenceState.WAITING
    preemptions: int = 0
    adapter: int = 0  # the LoRA adapter's slot in the runner (0: the base model)
    salt: int = NO_HASH  # the prefix cache's hash seed: one per adapter

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("a sequence needs at least one token")
        self.prompt_len = len(self.tokens)

    @property
    def output_len(self) -> int:
        return len(self.tokens) - self.prompt_len

    @property
    def pending(self) -> int:
        """Tokens not yet in the cache (the prompt's rest, or the last sampled token)."""
        return len(self.tokens) - self.computed


@dataclass(frozen=True)
class Scheduled:
    seq: Sequence
    start: int  # first position computed in this step
    count: int  # tokens computed in this step
    samples: bool  # it reaches the sequence's last token, so it yields the next one

    @classmethod
    def of(cls, seq: Sequence, count: int) -> Scheduled:
        return cls(seq, seq.computed, count, seq.computed + count == len(seq.tokens))


@dataclass(frozen=True)
class Batch:
    items: list[Scheduled]
    preempted: list[Sequence]

    @property
    def tokens(self) -> int:
        return sum(s.count for s in self.items)


@dataclass
class Scheduler:
    blocks: BlockManager
    max_num_seqs: int = 64
    max_batched_tokens: int = 2048
    waiting: deque[Sequence] = field(default_factory=deque)
    running: list[Sequence] = field(default_factory=list)
    preemptions: int = 0

    def add(self, seq: Sequence) -> None:
        limit = self.blocks.num_blocks * self.blocks.block_size
        if len(seq.tokens) + seq.max_tokens > limit:
            raise ValueError(
                f"the sequence needs {len(seq.tokens) + seq.max_tokens} tokens of KV cache; "
                f"the whole cache holds {limit}"
            )
        self.waiting.append(seq)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def schedule(self) -> Batch:
        budget = self.max_batched_tokens
        items: list[Scheduled] = []
        preempted: list[Sequence] = []
        for seq in list(self.running):
            if budget == 0:
                break
            if seq.state is not SequenceState.RUNNING:
                continue  # preempted earlier in this loop
            count = min(seq.pending, budget)
            while not self.blocks.grow(seq.block_table, seq.computed + count):
                victim = self.running[-1]
                self._preempt(victim)
                preempted.append(victim)
                if victim is seq:
                    break
            if seq.state is not SequenceState.RUNNING:
                continue
            items.append(Scheduled.of(seq, count))
            budget -= count
        if not preempted:  # no room was freed by preemption: admit new work
            while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
                seq = self.waiting[0]
                allocated = self.blocks.allocate(seq.tokens, seq.salt)
                if allocated is None:
                    break
                self.waiting.popleft()
                seq.block_table, seq.computed = allocated
                seq.state = SequenceState.RUNNING
                self.running.append(seq)
                count = min(seq.pending, budget)
                items.append(Scheduled.of(seq, count))
                budget -= count
        return Batch(items, preempted)

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.blocks.free(seq.block_table)
        seq.computed = 0
        seq.state = SequenceState.WAITING
        seq.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(seq)

    def update(self, batch: Batch, sampled: dict[int, int]) -> list[Sequence]:
        """After the forward pass: advance what was computed and append each sampled
        token (``sampled``: sequence id -> token). Returns the sequences that reached
        ``max_tokens``; the caller ends others (stop strings, EOS) with :meth:`finish`."""
        done = []
        for item in batch.items:
            seq = item.seq
            seq.computed = item.start + item.count
            # Full blocks are shareable as soon as they are computed (even mid-prompt).
            self.blocks.commit(seq.block_table, seq.tokens[: seq.computed], seq.salt)
            if item.samples and seq.id in sampled:
                seq.tokens.append(sampled[seq.id])
                if seq.output_len >= seq.max_tokens:
                    done.append(seq)
        for seq in done:
            self.finish(seq)
        return done

    def finish(self, seq: Sequence) -> None:
        """End a sequence (finished or cancelled) and free its blocks; idempotent."""
        if seq.state is SequenceState.FINISHED:
            return
        if seq.state is SequenceState.RUNNING:
            self.running.remove(seq)
        elif seq.state is SequenceState.WAITING and seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq.block_table)
        seq.state = SequenceState.FINISHED
