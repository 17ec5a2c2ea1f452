"""One generic decoder for the Llama family (Llama, Mistral, Qwen2, Qwen3, Phi-3, SmolLM2) and
Gemma 2 and 3 over a paged KV cache: every forward pass computes the new tokens of many
sequences at once (prompt chunks and single decode tokens), reading each one's context
through its block table.

Shapes in comments: N new tokens in the step (all sequences, one after another), B
sequences, Tq new tokens of one sequence (padded), H query heads, K KV heads, D head dim.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the PyTorch idiom

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "Decoder",
    "DecoderConfig",
    "PagedKVCache",
    "PagedSeq",
    "PagedStep",
    "unsupported",
]

SUPPORTED_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Phi3ForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
    }
)
# Rotary variants the decoder implements: plain, Llama 3.1's frequency scaling, and
# positions divided by a factor (Gemma 3's global layers).
_ROPE_TYPES = ("default", "llama3", "linear")


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu_pytorch_tanh": _gelu_tanh,
}


def unsupported(config: dict[str, Any]) -> str | None:
    """Why the decoder cannot run this Hugging Face config, or None when it can."""
    names = config.get("architectures") or ["?"]
    if names[0] not in SUPPORTED_ARCHITECTURES:
        return f"it does not run {names[0]} yet"
    for rope in _rope_sets(config).values():
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind not in _ROPE_TYPES:
            return f"it does not implement {kind} rotary scaling yet"
    if float(config.get("partial_rotary_factor", 1.0)) != 1.0:
        return "it does not implement partial rotary embeddings yet"
    activation = config.get("hidden_activation") or config.get("hidden_act") or "silu"
    if activation not in ACTIVATIONS:
        return f"it does not implement the {activation} activation yet"
    return None


def _rope_sets(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Rotary parameters by layer type (``full_attention``, ``sliding_attention``): Gemma 3
    gives each its own; other models one set for all, under the key ``full_attention``."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if isinstance(rope.get("full_attention"), dict):
        return {k: v for k, v in rope.items() if isinstance(v, dict)}
    return {"full_attention": rope}


def _sliding_layers(c: dict[str, Any]) -> tuple[bool, ...]:
    """Which layers attend through the sliding window, as transformers decides it."""
    n = int(c["num_hidden_layers"])
    if not c.get("sliding_window") or c.get("use_sliding_window", True) is False:
        return (False,) * n
    if c.get("layer_types"):
        return tuple(t == "sliding_attention" for t in c["layer_types"])
    if c.get("model_type") == "gemma2":  # local and global attention alternate
        return tuple(i % 2 == 0 for i in range(n))
    if c.get("model_type") == "qwen2":
        return tuple(i >= int(c.get("max_window_layers", n)) for i in range(n))
    return (True,) * n  # Mistral, Phi-3


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    rms_eps: float
    rope_theta: float
    max_position: int
    tie_embeddings: bool
    attention_bias: bool
    rope_scaling: dict[str, Any] | None = None  # Llama 3.1's frequency scaling
    rope_linear_factor: float = 1.0  # positions divided by it (Gemma 3's global layers)
    local_rope_theta: float = 0.0  # sliding-window layers' own base (Gemma 3); 0: rope_theta
    activation: str = "silu"
    attn_scale: float = 0.0  # 0: head_dim ** -0.5
    # Gemma-2: the embeddings are scaled by sqrt(hidden); norms around attention and MLP
    # on both sides ("sandwich"); attention scores and final logits soft-capped.
    embed_scale: float = 1.0
    norm_offset: float = 0.0
    sandwich_norms: bool = False
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    sliding_window: int = 0
    sliding_layers: tuple[bool, ...] = ()
    qk_norm: bool = False  # RMSNorm of each head's q and k before rotary (Qwen3, Gemma 3)

    @property
    def scale(self) -> float:
        return self.attn_scale or self.head_dim**-0.5

    @classmethod
    def from_hf(cls, c: dict[str, Any]) -> DecoderConfig:
        heads = c["num_attention_heads"]
        ropes = _rope_sets(c)
        rope = ropes["full_attention"]
        theta = rope.get("rope_theta") or c.get("rope_theta") or 10000.0
        kind = rope.get("rope_type", rope.get("type"))
        scaling = rope if kind == "llama3" else None
        local = ropes.get("sliding_attention", {}).get("rope_theta") or c.get(
            "rope_local_base_freq"
        )
        gemma = c.get("model_type") in ("gemma2", "gemma3_text")
        sliding = _sliding_layers(c)
        return cls(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            layers=c["num_hidden_layers"],
            heads=heads,
            kv_heads=c.get("num_key_value_heads") or heads,
            head_dim=c.get("head_dim") or c["hidden_size"] // heads,
            rms_eps=c.get("rms_norm_eps", 1e-6),
            rope_theta=float(theta),
            max_position=c.get("max_position_embeddings", 4096),
            tie_embeddings=bool(c.get("tie_word_embeddings", False)),
            attention_bias=bool(c.get("attention_bias", False)) or c.get("model_type") == "qwen2",
            rope_scaling=scaling,
            rope_linear_factor=float(rope.get("factor", 1.0)) if kind == "linear" else 1.0,
            local_rope_theta=float(local or 0.0),
            activation=c.get("hidden_activation") or c.get("hidden_act") or "silu",
            attn_scale=float(c["query_pre_attn_scalar"]) ** -0.5 if gemma else 0.0,
            embed_scale=float(c["hidden_size"]) ** 0.5 if gemma else 1.0,
            norm_offset=1.0 if gemma else 0.0,
            sandwich_norms=gemma,
            attn_softcap=float(c.get("attn_logit_softcapping") or 0.0),
            final_softcap=float(c.get("final_logit_softcapping") or 0.0),
            sliding_window=int(c.get("sliding_window") or 0) if any(sliding) else 0,
            sliding_layers=sliding,
            qk_norm=c.get("model_type") in ("qwen3", "gemma3_text"),
        )


def _inv_freq(cfg: DecoderConfig, theta: float = 0.0) -> torch.Tensor:
    """Rotary frequencies for base ``theta`` (default: the global layers' own, with their
    scaling; a sliding layer's base is used as given)."""
    base = theta or cfg.rope_theta
    inv = 1.0 / (
        base ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64, device="cpu") / cfg.head_dim)
    )
    if theta:
        return inv.float()
    s = cfg.rope_scaling
    if s:  # Llama 3.1 frequency scaling
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        original = s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = original / low, original / high
        wavelen = 2 * math.pi / inv
        smooth = (original / wavelen - low) / (high - low)
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        mid = (1 - smooth) * inv / factor + smooth * inv
        is_mid = (wavelen <= low_wavelen) & (wavelen >= high_wavelen)
        inv = torch.where(is_mid, mid, scaled)
    return (inv / cfg.rope_linear_factor).float()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, offset: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.offset = offset  # Gemma stores the scale minus one and norms in float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.offset:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        scale = self.weight.float() + self.offset
        return F.rms_norm(x.float(), self.weight.shape, scale, self.eps).to(x.dtype)


def _interleave_rotary(weight: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Reorder the output rows of a q or k projection from Hugging Face's half-split
    rotary layout (x[:D/2] pairs with x[D/2:]) to adjacent pairs, so that rotary embedding
    is one complex multiplication. q and k get the same order, so q.k is unchanged."""
    shape = weight.shape
    w = weight.reshape(heads, 2, head_dim // 2, *shape[1:])
    return w.transpose(1, 2).reshape(shape)


def _attend(
    q: torch.Tensor,  # [B, H, Tq, D]
    k: torch.Tensor,  # [B, K, ctx, D]
    v: torch.Tensor,
    mask: torch.Tensor | None,  # [B, 1, Tq, ctx] bool
    scale: float,
    softcap: float,
) -> torch.Tensor:
    """Attention through PyTorch's fused SDPA; written out when scores are soft-capped
    (Gemma-2), which SDPA cannot do."""
    if not softcap:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = (q @ k.transpose(-1, -2)).float() * scale
    scores = softcap * torch.tanh(scores / softcap)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v


class Layer(nn.Module):
    def __init__(self, cfg: DecoderConfig, index: int) -> None:
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        self.cfg = cfg
        sliding = index < len(cfg.sliding_layers) and cfg.sliding_layers[index]
        self.window = cfg.sliding_window if sliding else 0  # 0: the whole context
        self.act = ACTIVATIONS[cfg.activation]
        self.input_layernorm = RMSNorm(h, cfg.rms_eps, cfg.norm_offset)
        # q, k and v in one matmul, gate and up in another: fewer, larger kernels.
        self.qkv_proj = nn.Linear(h, (cfg.heads + 2 * cfg.kv_heads) * d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(cfg.heads * d, h, bias=False)
        # Llama's is the MLP's input norm; Gemma-2's normalizes the attention's output.
        self.post_attention_layernorm = RMSNorm(h, cfg.rms_eps, cfg.norm_offset)
        if cfg.sandwich_norms:
            self.pre_feedforward_layernorm = RMSNorm(h, cfg.rms_eps, cfg.norm_offset)
            self.post_feedforward_layernorm = RMSNorm(h, cfg.rms_eps, cfg.norm_offset)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(d, cfg.rms_eps, cfg.norm_offset)
            self.k_norm = RMSNorm(d, cfg.rms_eps, cfg.norm_offset)
        self.gate_up_proj = nn.Linear(h, 2 * cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, h, bias=False)

    def _qkv(self, x: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        """q, k and v of ``x`` [..., hidden] as [..., H + 2K, D], rotary applied to q, k."""
        cfg = self.cfg
        heads, kv_heads, d = cfg.heads, cfg.kv_heads, cfg.head_dim
        projected: torch.Tensor = self.qkv_proj(self.input_layernorm(x))
        qkv = projected.view(*x.shape[:-1], heads + 2 * kv_heads, d)
        if cfg.qk_norm:
            qkv[..., :heads, :] = self.q_norm(qkv[..., :heads, :])
            qkv[..., heads : heads + kv_heads, :] = self.k_norm(
                qkv[..., heads : heads + kv_heads, :]
            )
        # Rotary embedding of q and k at once, in place (see _interleave_rotary).
        qk = qkv[..., : heads + kv_heads, :]
        qk32 = qk.float()
        torch.view_as_complex(qk32.reshape(*qk32.shape[:-1], d // 2, 2)).mul_(rotary)
        if qk32 is not qk:
            qk.copy_(qk32)
        return qkv

    def _finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """The output projection, the residual and the MLP."""
        attn = self.o_proj(attn)
        if self.cfg.sandwich_norms:
            x = x + self.post_attention_layernorm(attn)
            h = self.pre_feedforward_layernorm(x)
        else:
            x = x + attn
            h = self.post_attention_layernorm(x)
        gate, up = self.gate_up_proj(h).chunk(2, dim=-1)
        mlp = self.down_proj(self.act(gate) * up)
        if self.cfg.sandwich_norms:
            mlp = self.post_feedforward_layernorm(mlp)
        out: torch.Tensor = x + mlp
        return out

    def forward(
        self,
        x: torch.Tensor,  # [N, hidden]: every sequence's new tokens, one after another
        rotary: torch.Tensor,  # [N, 1, D/2] complex
        cache_kv: torch.Tensor,  # [blocks, block_size, 2K, D] of this layer
        step: PagedStep,
    ) -> torch.Tensor:
        heads = self.cfg.heads
        qkv = self._qkv(x, rotary)
        flat = cache_kv.view(-1, *cache_kv.shape[2:])  # [blocks * block_size, 2K, D]
        if step.view is not None:  # one sequence, its blocks in order: slices, no indexing
            lo, hi = step.view
            flat[hi - x.shape[0] : hi].copy_(qkv[:, heads:])
            kv = flat[lo:hi][None].transpose(1, 2)  # [1, 2K, ctx, D]
            q = qkv[None, :, :heads].transpose(1, 2)
            mask = self._mask(step)
            attn = self._sdpa(q, kv, mask)
            return self._finish(x, attn[0].transpose(0, 1).reshape(x.shape[0], -1))
        flat[step.slot_mapping] = qkv[:, heads:]
        if step.parts is None:
            return self._finish(x, self._attention(qkv, cache_kv, flat, step))
        # Decoding sequences and prompt chunks in one step: each group attended on its own,
        # so one token is never padded to a chunk's length.
        outs = [self._attention(qkv[lo:hi], cache_kv, flat, part) for lo, hi, part in step.parts]
        return self._finish(x, torch.cat(outs))

    def _mask(self, step: PagedStep) -> torch.Tensor | None:
        return step.window_mask if self.window and step.window_mask is not None else step.mask

    def _sdpa(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        kv_heads, cfg = self.cfg.kv_heads, self.cfg
        return _attend(q, kv[:, :kv_heads], kv[:, kv_heads:], mask, cfg.scale, cfg.attn_softcap)

    def _attention(
        self, qkv: torch.Tensor, cache_kv: torch.Tensor, flat: torch.Tensor, step: PagedStep
    ) -> torch.Tensor:
        """[N, H * D]: the attention of ``step``'s tokens (their keys and values already
        written) over their sequences' contexts."""
        cfg = self.cfg
        n, heads = qkv.shape[0], cfg.heads
        if step.block_tables is not None:  # one token each: the paged decode kernel
            if step.native_kernel:  # the C++ one (CPUs)
                from bosun.engine.native import paged_decode
            else:
                from bosun.engine.paged_attention import paged_decode  # imports Triton

            assert step.lengths is not None
            out = paged_decode(
                qkv[:, :heads],
                cache_kv,
                step.block_tables,
                step.lengths,
                scale=cfg.scale,
                softcap=cfg.attn_softcap,
                window=self.window,
            )
            return out.view(n, -1)
        # Each sequence's queries and its whole context (cached and new), padded.
        q = qkv[step.q_index, :heads].transpose(1, 2)  # [B, H, Tq, D]
        assert step.kv_index is not None
        kv = flat[step.kv_index].transpose(1, 2)  # [B, 2K, context, D]
        attn = self._sdpa(q, kv, self._mask(step))
        out = attn.transpose(1, 2)[step.q_valid]  # [N, H, D], in token order
        return out.reshape(n, -1)


@dataclass
class PagedKVCache:
    """The paged KV cache: [layers, blocks, block_size, 2K, D]. Which blocks hold which
    sequence is the block manager's business (:mod:`bosun.engine.blocks`)."""

    kv: torch.Tensor

    @classmethod
    def allocate(
        cls,
        cfg: DecoderConfig,
        blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> PagedKVCache:
        # Two more blocks than asked. The null block, zeroed, is what padded reads point
        # at (their attention weight is 0, but 0 x NaN is NaN); the scratch block takes
        # the writes of padding rows (a CUDA graph's batch is padded to its captured
        # size). The others need no init: a position is always written before it is read.
        shape = (cfg.layers, blocks + 2, block_size, 2 * cfg.kv_heads, cfg.head_dim)
        kv = torch.empty(shape, dtype=dtype, device=device)
        kv[:, blocks].zero_()
        return cls(kv)

    @property
    def block_size(self) -> int:
        return self.kv.shape[2]

    @property
    def null_slot(self) -> int:
        """A cache slot that always holds zeros (in the block after the usable ones)."""
        return (self.kv.shape[1] - 2) * self.kv.shape[2]

    @property
    def scratch_slot(self) -> int:
        """A cache slot no sequence reads: where padding rows write (the last block)."""
        return (self.kv.shape[1] - 1) * self.kv.shape[2]

    @classmethod
    def bytes_per_block(cls, cfg: DecoderConfig, block_size: int, dtype: torch.dtype) -> int:
        return cfg.layers * block_size * 2 * cfg.kv_heads * cfg.head_dim * dtype.itemsize


@dataclass(frozen=True)
class PagedSeq:
    """One sequence's share of a paged forward pass."""

    start: int  # position of its first new token (the tokens before it are cached)
    count: int  # new tokens
    block_table: list[int]


@dataclass
class PagedStep:
    """Where one paged forward pass reads and writes (computed once for every layer).

    Each sequence's context is gathered from its blocks ([B, context] slot indices, padded
    with a zeroed slot); one sequence whose blocks lie in order is read as a view instead.
    """

    positions: torch.Tensor  # [N]
    slot_mapping: torch.Tensor  # [N]: where each new token's keys and values go
    q_index: torch.Tensor  # [B, Tq]: each sequence's tokens in the flat batch (padded)
    q_valid: torch.Tensor  # [B, Tq] bool
    kv_index: torch.Tensor | None  # [B, context]: cache slots of each context (padded)
    mask: torch.Tensor | None  # [B, 1, Tq, context] bool; None: every query sees all
    last: torch.Tensor  # [B]: each sequence's last new token in the flat batch
    view: tuple[int, int] | None = None  # one sequence's context as flat[lo:hi]
    # Set when every sequence decodes one token and the paged decode kernel reads the
    # contexts in place (paged_attention.py): [B, blocks] int32 and [B] int32.
    block_tables: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    # That kernel is the C++ one of engine/native (CPUs), not the Triton one.
    native_kernel: bool = False
    # The mask of sliding-window layers, where the window hides part of some context.
    window_mask: torch.Tensor | None = None
    # A step mixing decoding sequences (first) and prompt chunks: each group's tokens
    # [lo, hi) and its own plan (the fields above then cover the whole step's tokens).
    parts: list[tuple[int, int, PagedStep]] | None = None

    @classmethod
    def plan(
        cls,
        seqs: list[PagedSeq],
        block_size: int,
        device: torch.device,
        pad_slot: int = 0,
        paged_decode: bool = False,
        window: int = 0,
        allow_view: bool = True,
        native_kernel: bool = False,
    ) -> PagedStep:
        """Where the step's tokens go and what each one attends to. ``paged_decode``: a
        step in which every sequence decodes one token reads its context through the block
        tables (the Triton kernel; the C++ one with ``native_kernel``) instead of a
        gathered copy."""
        b = len(seqs)
        counts = [s.count for s in seqs]
        decoding = sum(1 for c in counts if c == 1)
        if 0 < decoding < b and counts[:decoding] == [1] * decoding:
            return _split(
                cls,
                seqs,
                decoding,
                block_size,
                device,
                pad_slot,
                paged_decode,
                window,
                native_kernel,
            )
        contexts = [s.start + s.count for s in seqs]
        tq, ctx = max(counts), max(contexts)
        blocks = -(-ctx // block_size)
        tables = torch.zeros(b, blocks, dtype=torch.long)
        for row, s in enumerate(seqs):
            used = -(-contexts[row] // block_size)
            tables[row, :used] = torch.tensor(s.block_table[:used])
        span = torch.arange(ctx)
        # Every context slot of every sequence: its block's first slot plus the offset.
        slots = tables[:, span // block_size] * block_size + span % block_size  # [B, ctx]
        starts = torch.tensor([s.start for s in seqs])
        lengths = torch.tensor(contexts)
        columns = torch.arange(tq)
        q_valid = columns[None, :] < torch.tensor(counts)[:, None]  # [B, Tq]
        offsets = torch.tensor([0, *itertools.accumulate(counts)][:-1])
        q_index = torch.where(q_valid, offsets[:, None] + columns[None, :], 0)
        query_pos = starts[:, None] + columns[None, :]  # [B, Tq]
        positions = query_pos[q_valid]
        slot_mapping = slots.gather(1, torch.where(q_valid, query_pos, 0))[q_valid]
        last = offsets + torch.tensor(counts) - 1
        view = None
        mask: torch.Tensor | None = None
        kv_index: torch.Tensor | None = None
        if paged_decode and tq == 1:
            return cls(
                positions.to(device),
                slot_mapping.to(device),
                q_index.to(device),
                q_valid.to(device),
                None,
                None,
                last.to(device),
                block_tables=tables.to(device, torch.int32),
                lengths=lengths.to(device, torch.int32),
                native_kernel=native_kernel,
            )
        if allow_view and b == 1 and bool((slots[0, 1:] - slots[0, :-1] == 1).all()):
            view = (int(slots[0, 0]), int(slots[0, 0]) + ctx)  # blocks in order: no copy
        else:
            kv_index = torch.where(span[None, :] < lengths[:, None], slots, pad_slot)
        causal = span[None, None, :] <= query_pos[:, :, None]  # [B, Tq, ctx]
        if tq > 1 or len(set(contexts)) > 1:  # else every query sees its whole context
            visible = causal.clone()
            # Padded query rows see one finite key (their output is dropped).
            visible[:, :, 0] |= ~q_valid
            mask = visible[:, None]
        window_mask = None
        if window and ctx > window:  # and only the last `window` tokens
            visible = causal & (span[None, None, :] > query_pos[:, :, None] - window)
            visible[:, :, 0] |= ~q_valid
            window_mask = visible[:, None].to(device)
        return cls(
            positions.to(device),
            slot_mapping.to(device),
            q_index.to(device),
            q_valid.to(device),
            kv_index.to(device) if kv_index is not None else None,
            mask.to(device) if mask is not None else None,
            last.to(device),
            view,
            window_mask=window_mask,
        )


def _split(
    cls: type[PagedStep],
    seqs: list[PagedSeq],
    decoding: int,
    block_size: int,
    device: torch.device,
    pad_slot: int,
    paged_decode: bool,
    window: int,
    native_kernel: bool,
) -> PagedStep:
    """The plan of a step whose first ``decoding`` sequences decode one token each and
    whose others compute prompt chunks: one plan per group, joined."""
    first, second = (
        cls.plan(
            group,
            block_size,
            device,
            pad_slot,
            paged_decode,
            window,
            allow_view=False,
            native_kernel=native_kernel,
        )
        for group in (seqs[:decoding], seqs[decoding:])
    )
    split = len(first.positions)
    total = split + len(second.positions)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return cls(
        positions=torch.cat([first.positions, second.positions]),
        slot_mapping=torch.cat([first.slot_mapping, second.slot_mapping]),
        q_index=empty,
        q_valid=empty.bool(),
        kv_index=None,
        mask=None,
        last=torch.cat([first.last, second.last + split]),
        parts=[(0, split, first), (split, total, second)],
    )


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Given a weight, Embedding skips its random init: on the meta device that init
        # alone costs a second (it imports torch's reference decompositions).
        self.embed_tokens = nn.Embedding(
            cfg.vocab_size, cfg.hidden_size, _weight=torch.empty(cfg.vocab_size, cfg.hidden_size)
        )
        self.layers = nn.ModuleList(Layer(cfg, i) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_eps, cfg.norm_offset)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self._frequencies()

    def _frequencies(self) -> None:
        """Rotary frequencies: buffers, computed rather than loaded (the module may live on
        "meta" until its weights arrive). Sliding layers may have a base of their own."""
        cfg = self.cfg
        self.register_buffer("inv_freq", _inv_freq(cfg), persistent=False)
        local = _inv_freq(cfg, cfg.local_rope_theta) if cfg.local_rope_theta else None
        self.register_buffer("local_inv_freq", local, persistent=False)

    def load_hf_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Weights named as Hugging Face's *ForCausalLM checkpoints name them."""
        mapped: dict[str, torch.Tensor] = {}
        for name, tensor in state.items():
            key = name.removeprefix("model.")
            key = key.replace("self_attn.", "").replace("mlp.", "")
            mapped[key] = tensor
        if self.cfg.tie_embeddings or "lm_head.weight" not in mapped:
            mapped["lm_head.weight"] = mapped["embed_tokens.weight"]
        for i in range(self.cfg.layers):
            p = f"layers.{i}."
            for kind in ("weight", "bias"):
                q, k, v = (mapped.pop(f"{p}{n}_proj.{kind}", None) for n in ("q", "k", "v"))
                fused = mapped.get(f"{p}qkv_proj.{kind}")
                if q is None and fused is not None:  # Phi-3 ships q, k and v in one matrix
                    sizes = [n * self.cfg.head_dim for n in (self.cfg.heads, self.cfg.kv_heads)]
                    q, k, v = torch.split(fused, [sizes[0], sizes[1], sizes[1]])
                if q is not None and k is not None and v is not None:
                    q = _interleave_rotary(q, self.cfg.heads, self.cfg.head_dim)
                    k = _interleave_rotary(k, self.cfg.kv_heads, self.cfg.head_dim)
                    mapped[f"{p}qkv_proj.{kind}"] = torch.cat([q, k, v])
            for norm in ("q_norm", "k_norm"):  # over a head's dims: the same row order
                weight = mapped.get(f"{p}{norm}.weight")
                if weight is not None:
                    mapped[f"{p}{norm}.weight"] = _interleave_rotary(weight, 1, self.cfg.head_dim)
            gate, up = (
                mapped.pop(f"{p}gate_proj.weight", None),
                mapped.pop(f"{p}up_proj.weight", None),
            )
            if gate is not None and up is not None:
                mapped[f"{p}gate_up_proj.weight"] = torch.cat([gate, up])
        missing, unexpected = self.load_state_dict(mapped, strict=False, assign=True)
        self._frequencies()
        missing = [m for m in missing if m not in ("inv_freq", "local_inv_freq")]
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )

    def _rotary(self, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
        angles = positions[..., None].float() * inv_freq
        return torch.polar(torch.ones_like(angles), angles)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, cache: PagedKVCache, step: PagedStep) -> torch.Tensor:
        """Logits [B, vocab] of each sequence's last new token. ``tokens`` [N] are every
        sequence's new tokens in order (a prompt chunk, or one token when decoding)."""
        x = self.embed_tokens(tokens)
        if self.cfg.embed_scale != 1.0:  # rounded to the dtype first, as transformers does
            x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype).item()
        inv_freq: torch.Tensor = self.inv_freq  # type: ignore[assignment]
        local_inv_freq: torch.Tensor | None = self.local_inv_freq  # type: ignore[assignment]
        rotary = self._rotary(step.positions, inv_freq)[:, None]  # [N, 1, D/2]
        local = rotary
        if local_inv_freq is not None:
            local = self._rotary(step.positions, local_inv_freq)[:, None]
        for i, layer in enumerate(self.layers):
            x = layer(x, local if layer.window else rotary, cache.kv[i], step)
        logits: torch.Tensor = self.lm_head(self.norm(x[step.last])).float()
        if self.cfg.final_softcap:
            cap = self.cfg.final_softcap
            logits = cap * torch.tanh(logits / cap)
        return logits
