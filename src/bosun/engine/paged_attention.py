"""Decode attention over the paged KV cache: one Triton kernel.

When every sequence of a step decodes one token, each one's query attends to its context
where it lies, block by block, through its block table: no gathered copy of the context
(the SDPA path copies every context, every layer, every step) and no padding to the
longest one. One program computes one sequence and one KV head: the G = H / K query heads
that share that KV head are one [G, D] tile (padded to 16 rows for the tensor cores), so
each key and value is read once per group (GQA). Softmax is online over tiles of the
context, in float32.

This module imports Triton; import it only where the kernel runs (CUDA, or the Triton
interpreter with ``TRITON_INTERPRET=1``, which the CPU tests use).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["paged_decode"]

TILE = 64  # context tokens per step of the online softmax (a multiple of the block size)


@triton.jit
def _paged_decode_kernel(
    q_ptr,  # [B, H, D]
    kv_ptr,  # one layer's cache: [blocks * block_size, 2K, D], keys then values
    out_ptr,  # [B, H, D]
    tables_ptr,  # [B, max_blocks] int32
    lengths_ptr,  # [B] int32: context tokens, the new one included (0: a padding row)
    stride_qb,
    stride_qh,
    stride_slot,
    stride_tb,
    stride_ob,
    stride_oh,
    scale,
    softcap,
    window,  # only the last ``window`` tokens are seen
    KV_HEADS: tl.constexpr,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,  # HEAD_DIM rounded up to a power of two, at least 16
    BLOCK_SIZE: tl.constexpr,
    TILE_TOKENS: tl.constexpr,
    SOFTCAP: tl.constexpr,
):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    length = tl.load(lengths_ptr + seq)
    rows = tl.arange(0, GROUP_PAD)
    dims = tl.arange(0, HEAD_PAD)
    heads = kv_head * GROUP + rows
    real = (rows < GROUP)[:, None] & (dims < HEAD_DIM)[None, :]
    q = tl.load(
        q_ptr + seq * stride_qb + heads[:, None] * stride_qh + dims[None, :],
        mask=real,
        other=0.0,
    )
    best = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    total = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, HEAD_PAD], tl.float32)
    first = length - window
    first = first * (first > 0)  # (tl.maximum would make it a 1-element tensor)
    for tile in range((first // TILE_TOKENS) * TILE_TOKENS, length, TILE_TOKENS):
        tokens = tile + tl.arange(0, TILE_TOKENS)
        valid = (tokens < length) & (tokens >= first)
        block = tl.load(tables_ptr + seq * stride_tb + tokens // BLOCK_SIZE, mask=valid, other=0)
        slot = block.to(tl.int64) * BLOCK_SIZE + tokens % BLOCK_SIZE
        base = kv_ptr + slot[:, None] * stride_slot + dims[None, :]
        present = valid[:, None] & (dims < HEAD_DIM)[None, :]
        k = tl.load(base + kv_head * HEAD_DIM, mask=present, other=0.0)
        v = tl.load(base + (KV_HEADS + kv_head) * HEAD_DIM, mask=present, other=0.0)
        scores = tl.dot(q, tl.trans(k)).to(tl.float32) * scale  # [GROUP_PAD, TILE]
        if SOFTCAP:  # Gemma-2: softcap * tanh(scores / softcap)
            scores = softcap * (2.0 * tl.sigmoid(2.0 * scores / softcap) - 1.0)
        scores = tl.where(valid[None, :], scores, float("-inf"))
        new_best = tl.maximum(best, tl.max(scores, 1))
        weights = tl.exp(scores - new_best[:, None])
        rescale = tl.exp(best - new_best)
        total = total * rescale + tl.sum(weights, 1)
        acc = acc * rescale[:, None] + tl.dot(weights.to(v.dtype), v).to(tl.float32)
        best = new_best
    out = acc / tl.maximum(total, 1e-30)[:, None]  # a padding row (no context) gets zeros
    tl.store(
        out_ptr + seq * stride_ob + heads[:, None] * stride_oh + dims[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=real,
    )


def paged_decode(
    q: torch.Tensor,
    cache_kv: torch.Tensor,
    block_tables: torch.Tensor,
    lengths: torch.Tensor,
    *,
    scale: float,
    softcap: float = 0.0,
    window: int = 0,
) -> torch.Tensor:
    """Attention of one new token per sequence over its cached context.

    ``q`` [B, H, D]; ``cache_kv`` [blocks, block_size, 2K, D] (one layer; keys in the first
    K heads, values in the last K); ``block_tables`` [B, max_blocks] and ``lengths`` [B]
    (int32, on the device). Returns [B, H, D]. Shapes other than B stay fixed from step to
    step, so the call can be captured in a CUDA graph.
    """
    batch, heads, dim = q.shape
    blocks, block_size, two_k, _ = cache_kv.shape
    kv_heads = two_k // 2
    group = heads // kv_heads
    if TILE % block_size:
        raise ValueError(f"paged_decode: the block size {block_size} does not divide {TILE}")
    out = torch.empty_like(q)
    flat = cache_kv.view(blocks * block_size, two_k, dim)
    _paged_decode_kernel[(batch, kv_heads)](
        q,
        flat,
        out,
        block_tables,
        lengths,
        q.stride(0),
        q.stride(1),
        flat.stride(0),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        scale,
        softcap,
        window or 2**30,
        KV_HEADS=kv_heads,
        GROUP=group,
        GROUP_PAD=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=dim,
        HEAD_PAD=max(16, triton.next_power_of_2(dim)),
        BLOCK_SIZE=block_size,
        TILE_TOKENS=TILE,
        SOFTCAP=softcap > 0,
    )
    return out
