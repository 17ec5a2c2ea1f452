"""Decode steps of the Bosun decoder through the C++ step (``decode.cpp``), where it applies:
a CPU, int8 weights (engine/quant.py), a float32 KV cache, and a layer of the Llama
family's shape (no QK norm, no sandwich norms, no soft-capping, SiLU or tanh-GELU). Gemma
and Qwen3 keep the ATen path, as does any step with a prompt chunk or a LoRA adapter."""

from __future__ import annotations

import time
from typing import cast

import torch
from torch import nn

from bosun.engine import native
from bosun.engine.cpus import ThreadTuner
from bosun.engine.model import Decoder, Layer, PagedKVCache
from bosun.engine.quant import Int8Linear, int8_batch

__all__ = ["MAX_BATCH", "NativeDecode"]

# Sequences one native step decodes at most. Each weight row is read once per step for
# all of them, but multiplied row by row in float32 vectors: with AVX-512 that beats
# ATen's batched step up to 32 sequences (engine_batch.py, 32 requests: 278 against 246
# output tokens/s; a step of 32 decodes alone ties, 78.7 against 77.5 ms, where ATen
# multiplies in bfloat16 on AMX); with AVX2 alone only up to a few (at 8 they tie). With
# AMX tiles (int8 products, quant.int8_batch) the step outruns ATen at any batch.
MAX_BATCH = {16: 32, 8: 4}
MAX_BATCH_TILES = 256
_ACTIVATIONS = {"silu": 0, "gelu_pytorch_tanh": 1}


def unsupported(model: Decoder, cache: PagedKVCache) -> str | None:
    """Why the C++ step cannot run this model, or None when it can."""
    cfg = model.cfg
    if cache.kv.device.type != "cpu" or cache.kv.dtype != torch.float32:
        return "it runs float32 caches on CPUs"
    if cfg.qk_norm or cfg.sandwich_norms or cfg.norm_offset or cfg.embed_scale != 1.0:
        return "it runs the Llama family's layers (no QK norm, no Gemma norms)"
    if cfg.attn_softcap or cfg.final_softcap:
        return "it does not soft-cap"
    if cfg.activation not in _ACTIVATIONS:
        return f"it does not implement {cfg.activation}"
    linears: list[nn.Module] = [model.lm_head]
    for layer in _layers(model):
        linears += [layer.qkv_proj, layer.o_proj, layer.gate_up_proj, layer.down_proj]
    if not all(isinstance(m, Int8Linear) for m in linears):
        return "it runs int8 weights"
    return None


def _layers(model: Decoder) -> list[Layer]:
    return [cast(Layer, layer) for layer in model.layers]


def _linear(m: nn.Module) -> list[torch.Tensor]:
    """An int8 layer's weight and its scales as float32."""
    assert isinstance(m, Int8Linear)
    weight: torch.Tensor = m.weight_int8  # type: ignore[assignment]
    scale: torch.Tensor = m.scale  # type: ignore[assignment]
    return [weight, scale.float().contiguous()]


class NativeDecode:
    """The C++ step's view of one model and its cache: the weights as it takes them."""

    def __init__(self, model: Decoder, cache: PagedKVCache) -> None:
        self.model, self.cache = model, cache
        empty = torch.empty(0)
        self.params: list[torch.Tensor] = []
        for layer in _layers(model):
            bias = layer.qkv_proj.bias
            self.params += [
                layer.input_layernorm.weight.detach(),
                *_linear(layer.qkv_proj),
                empty if bias is None else bias,
                *_linear(layer.o_proj),
                layer.post_attention_layernorm.weight.detach(),
                *_linear(layer.gate_up_proj),
                *_linear(layer.down_proj),
            ]
        self.windows = [layer.window for layer in _layers(model)]
        self.head = _linear(model.lm_head)
        self.activation = _ACTIVATIONS[model.cfg.activation]
        # The team size follows the machine's load (cpus.ThreadTuner): the whole team on
        # a quiet machine, fewer threads when other processes take CPUs.
        self.tuner = ThreadTuner(torch.get_num_threads())
        native.build_in_background()  # where no build is cached yet; ATen serves meanwhile

    @property
    def ready(self) -> bool:
        return native.load(build=False) is not None

    @property
    def max_batch(self) -> int:
        """Sequences one C++ step takes at most (0: not built yet)."""
        module = native.load(build=False)
        if module is None:
            return 0
        if module.int8_tiles() and int8_batch():
            return MAX_BATCH_TILES
        return MAX_BATCH.get(int(module.lanes()), 1)

    @torch.inference_mode()
    def run(
        self, tokens: list[int], starts: list[int], tables: list[list[int]]
    ) -> torch.Tensor | None:
        """The logits [B, vocab] of one token decoded per sequence (at position ``starts``,
        its blocks ``tables``); None when the C++ step is not built (yet)."""
        module = native.load(build=False)
        if module is None:
            return None
        m, cfg = self.model, self.model.cfg
        width = max(len(t) for t in tables)
        table = torch.zeros(len(tables), width, dtype=torch.long)
        for row, blocks in enumerate(tables):
            table[row, : len(blocks)] = torch.tensor(blocks, dtype=torch.long)
        x = m.embed_tokens(torch.tensor(tokens, dtype=torch.long)).contiguous()
        local: torch.Tensor | None = m.local_inv_freq  # type: ignore[assignment]
        threads = self.tuner.next_size(len(tokens))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        started = time.perf_counter()
        logits: torch.Tensor = module.decode(
            x,
            self.params,
            self.cache.kv,
            table,
            torch.tensor(starts, dtype=torch.long),
            m.inv_freq,
            torch.empty(0) if local is None else local,
            self.windows,
            m.norm.weight.detach(),
            *self.head,
            cfg.heads,
            cfg.kv_heads,
            cfg.head_dim,
            cfg.rms_eps,
            cfg.scale,
            self.activation,
            int8_batch() if module.int8_tiles() else 0,
        )
        self.tuner.record(time.perf_counter() - started, len(tokens))
        return logits
