"""Model runners: what the engine's scheduler drives. A runner owns the weights and the KV
cache; each step it computes the tokens the scheduler chose (prompt chunks and single
decode tokens of many sequences at once) and returns the logits after each one's last.

- :class:`DecoderRunner`: the Bosun decoder (``model.py``) over the paged KV cache whose
  blocks the scheduler's block manager hands out; Llama-family architectures.
- :class:`TransformersRunner`: any Hugging Face causal LM through transformers, with one
  ``DynamicCache`` per sequence, sequence by sequence; the fallback for architectures the
  Bosun decoder does not implement (correct, not fast; no prefix caching).
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from bosun.engine import native
from bosun.engine.client import EngineError, InvalidRequestError
from bosun.engine.cuda_graphs import DecodeGraphs
from bosun.engine.loader import LocalModel
from bosun.engine.lora import LoraSet
from bosun.engine.model import (
    SUPPORTED_ARCHITECTURES,
    Decoder,
    DecoderConfig,
    PagedKVCache,
    PagedSeq,
    PagedStep,
    unsupported,
)
from bosun.engine.native.step import NativeDecode
from bosun.engine.native.step import unsupported as native_unsupported
from bosun.engine.quant import quantize_int8
from bosun.engine.scheduler import Batch

__all__ = [
    "BLOCK_SIZE",
    "DTYPES",
    "DecoderRunner",
    "ModelRunner",
    "RunItem",
    "RunnerOptions",
    "TransformersRunner",
    "architecture_of",
    "load_runner",
    "run_batch",
]

BLOCK_SIZE = 16  # tokens per KV-cache block
GPU_MEMORY_UTILIZATION = 0.9  # of the memory free after weights and a warm-up

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_KNOWN = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
}


@dataclass(frozen=True)
class RunItem:
    """One sequence's share of a step: its new tokens, from position ``start`` on."""

    seq_id: int
    tokens: list[int]
    start: int
    block_table: list[int]
    adapter: int = 0  # the LoRA adapter's slot (0: the base model)


class ModelRunner(Protocol):
    backend: str
    quantization: str
    max_len: int  # tokens per sequence, prompt and output together
    num_blocks: int  # KV-cache blocks of BLOCK_SIZE tokens
    block_size: int
    prefix_caching: bool  # sequences may share the blocks of a common prefix
    # The cache's memory is committed as blocks are first written (CPU), not up front.
    lazy_memory: bool
    attention: str  # how attention is computed, for the log

    def run(self, items: list[RunItem]) -> torch.Tensor:
        """Compute the items' tokens; the logits [len(items), vocab] after each one's last."""
        ...

    def release(self, seq_id: int) -> None:
        """The sequence is done or preempted: drop whatever the runner keeps for it."""
        ...

    def load_adapter(self, slot: int, path: Path, strength: float) -> None:
        """Load the PEFT LoRA adapter at ``path`` into ``slot`` (1, 2, ...)."""
        ...

    def unload_adapter(self, slot: int) -> None: ...


def run_batch(runner: ModelRunner, batch: Batch) -> torch.Tensor | None:
    """Run one scheduled step: forget what preempted sequences kept (they are recomputed
    from their tokens when readmitted), compute the batch's tokens; the logits [B, vocab]
    of each item, or None when nothing was scheduled."""
    for preempted in batch.preempted:
        runner.release(preempted.id)
    if not batch.items:
        return None
    return runner.run(
        [
            RunItem(
                i.seq.id,
                i.seq.tokens[i.start : i.start + i.count],
                i.start,
                list(i.seq.block_table),
                i.seq.adapter,
            )
            for i in batch.items
        ]
    )


@dataclass(frozen=True)
class RunnerOptions:
    backend: str  # auto, bosun or transformers
    dtype: str  # auto or a DTYPES key
    device: str
    quantization: str  # auto, int8 or none
    slots: int  # sequences decoded together; on CPUs the cache holds this many full ones
    max_model_len: int | None
    cuda_graphs: bool = True  # replay decode steps from CUDA graphs (on CUDA)
    max_batched_tokens: int = 2048  # the largest step: what the warm-up measures (on CUDA)


def architecture_of(config: dict[str, Any]) -> str:
    names = config.get("architectures") or [_KNOWN.get(config.get("model_type", ""), "?")]
    return str(names[0])


def load_runner(local: LocalModel, options: RunnerOptions) -> ModelRunner:
    """The runner for ``local``: the Bosun decoder where it runs the architecture."""
    architecture = architecture_of(local.config)
    why = unsupported({**local.config, "architectures": [architecture]})
    backend = options.backend
    if backend == "auto":
        backend = "transformers" if why else "bosun"
    if backend == "bosun" and why:
        raise EngineError(
            f"--engine bosun: the Bosun engine cannot run this model: {why} (supported: "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}); --engine transformers runs it"
        )
    dtype_name = options.dtype
    if dtype_name == "auto":
        dtype_name = "float32" if options.device == "cpu" else "bfloat16"
    dtype, device = DTYPES[dtype_name], torch.device(options.device)
    if backend == "bosun":
        return DecoderRunner.load(local, options, dtype, device)
    return TransformersRunner(local, options, dtype, device)


def _context(options: RunnerOptions, model_max: int, device: torch.device) -> int:
    if options.max_model_len and options.max_model_len > model_max:
        raise EngineError(
            f"--max-model-len {options.max_model_len} exceeds the model's context of "
            f"{model_max} tokens"
        )
    # Without --max-model-len, CPUs serve at most 4,096 tokens: the KV cache of every
    # slot is reserved up front, and longer contexts are slow on CPUs anyway.
    default = min(model_max, 4096) if device.type == "cpu" else model_max
    return options.max_model_len or default


class DecoderRunner:
    backend = "bosun"

    def __init__(
        self,
        model: Decoder,
        options: RunnerOptions,
        dtype: torch.dtype,
        device: torch.device,
        quantization: str = "none",
        *,
        paged_kernel: bool | None = None,
        static_decode: bool | None = None,
    ) -> None:
        """Serve ``model`` (already on ``device``): a loaded checkpoint, or random weights
        built from a config (benchmarks).

        ``paged_kernel``: decode steps attend through the Triton kernel over the blocks in
        place (default: on CUDA). ``static_decode``: decode steps run over static buffers,
        replayed from CUDA graphs on CUDA (default: on CUDA with the kernel, unless
        ``options.cuda_graphs`` is off); the CPU tests turn both on, interpreted.
        """
        cfg = model.cfg
        self.quantization = quantization
        self.model = model
        self.max_len = _context(options, cfg.max_position, device)
        self.block_size = BLOCK_SIZE
        self.prefix_caching = True
        self.lazy_memory = device.type == "cpu"
        self.num_blocks = _kv_blocks(options, self.max_len, device, model, dtype)
        self.cache = PagedKVCache.allocate(cfg, self.num_blocks, BLOCK_SIZE, dtype, device)
        self._device = device
        self.lora = LoraSet(model)
        cuda = device.type == "cuda"
        if paged_kernel is None:  # CUDA builds of PyTorch ship Triton; others may not
            paged_kernel = cuda and importlib.util.find_spec("triton") is not None
        self.paged_kernel = paged_kernel
        if static_decode is None:
            static_decode = cuda and self.paged_kernel and options.cuda_graphs
        self.graphs: DecodeGraphs | None = None
        if static_decode:
            if not self.paged_kernel:
                raise ValueError("static decode steps need the paged decode kernel")
            self.graphs = DecodeGraphs(
                model,
                self.cache,
                max_batch=max(1, options.slots),
                max_blocks=-(-self.max_len // BLOCK_SIZE),
                capture=cuda,
            )
        # On CPUs, int8 decode steps of a few sequences run through the C++ step (every
        # layer in one call: native/decode.cpp) once it is built.
        self.native: NativeDecode | None = None
        if quantization == "int8" and native_unsupported(model, self.cache) is None:
            self.native = NativeDecode(model, self.cache)
        # ATen's steps on CPUs attend decoding sequences through the C++ paged kernel
        # (any model, float32 cache) once it is built, instead of gathering contexts.
        self.cpu_paged = device.type == "cpu" and dtype == torch.float32 and not paged_kernel
        if self.cpu_paged:
            native.build_in_background()
        self.attention = "fused SDPA"
        if self.paged_kernel:
            self.attention += " for prompts, the paged Triton kernel for decoding"
        if self.graphs and cuda:
            self.attention += f", decode steps from CUDA graphs ({len(self.graphs.sizes)} sizes)"

    @classmethod
    def load(
        cls, local: LocalModel, options: RunnerOptions, dtype: torch.dtype, device: torch.device
    ) -> DecoderRunner:
        """The checkpoint in ``local`` (safetensors), int8 on CPUs unless told otherwise."""
        from safetensors.torch import load_file

        cfg = DecoderConfig.from_hf(local.config)
        state: dict[str, torch.Tensor] = {}
        for file in sorted(local.path.glob("*.safetensors")):
            state.update(load_file(str(file)))
        if not state:
            raise EngineError(f"--model: {local.path} has no *.safetensors weights")
        with torch.device("meta"):  # no time spent initialising weights about to be replaced
            model = Decoder(cfg)
        model.load_hf_state_dict(state)
        model = model.to(device=device, dtype=dtype).eval()
        quantization = options.quantization
        if quantization == "auto":
            quantization = "int8" if device.type == "cpu" and dtype == torch.float32 else "none"
        if quantization == "int8":
            if device.type != "cpu":
                raise EngineError("--quantization int8 runs on CPUs only")
            quantize_int8(model, threads=min(2, torch.get_num_threads()))
        return cls(model, options, dtype, device, quantization)

    def load_adapter(self, slot: int, path: Path, strength: float) -> None:
        self.lora.add(slot, path, strength)

    def unload_adapter(self, slot: int) -> None:
        self.lora.remove(slot)

    def run(self, items: list[RunItem]) -> torch.Tensor:
        # Decoding sequences first, prompt chunks after: the step plans them as two groups
        # (PagedStep.parts). The logits come back in the callers' order.
        order = sorted(range(len(items)), key=lambda k: len(items[k].tokens) > 1)
        if order == list(range(len(items))):
            return self._run(items)
        logits = self._run([items[k] for k in order])
        restored = torch.empty_like(logits)
        restored[torch.tensor(order, device=logits.device)] = logits
        return restored

    def _run(self, items: list[RunItem]) -> torch.Tensor:
        adapted = any(i.adapter for i in items)
        self.lora.route(
            [i.adapter for i in items] if adapted else [],
            [len(i.tokens) for i in items] if adapted else [],
            self._device,
        )
        decoding = all(len(i.tokens) == 1 for i in items)
        fast = self.native
        if fast is not None and not adapted and decoding and len(items) <= fast.max_batch:
            decoded = fast.run(
                [i.tokens[0] for i in items],
                [i.start for i in items],
                [i.block_table for i in items],
            )
            if decoded is not None:  # else not built yet: ATen below
                return decoded
        graphs = None if adapted else self.graphs  # graphs hold no per-step adapter routing
        if graphs and len(items) <= graphs.max_batch and decoding:
            return graphs.run(
                [i.tokens[0] for i in items],
                [i.start for i in items],
                [i.block_table for i in items],
            )
        seqs = [PagedSeq(i.start, len(i.tokens), i.block_table) for i in items]
        cpu_kernel = self.cpu_paged and native.load(build=False) is not None
        step = PagedStep.plan(
            seqs,
            self.block_size,
            self._device,
            self.cache.null_slot,
            self.paged_kernel or cpu_kernel,
            self.model.cfg.sliding_window,
            native_kernel=cpu_kernel,
        )
        ids = torch.tensor(
            [t for i in items for t in i.tokens], dtype=torch.long, device=self._device
        )
        logits: torch.Tensor = self.model(ids, self.cache, step)
        return logits

    def release(self, seq_id: int) -> None:
        pass  # blocks are the block manager's; their contents are overwritten on reuse


def _kv_blocks(
    options: RunnerOptions,
    max_len: int,
    device: torch.device,
    model: Decoder,
    dtype: torch.dtype,
) -> int:
    """How many KV blocks to allocate. On a GPU: what fits in the memory left after the
    weights and a warm-up step; on CPUs: room for ``slots`` sequences of ``max_len``
    tokens (the memory is only touched as blocks are used)."""
    full = options.slots * -(-max_len // BLOCK_SIZE)
    if device.type != "cuda":
        return full
    cfg = model.cfg
    activations = _warm_up(model, options, max_len, device, dtype)
    # A decode step's logits and the sampler's copies of them (probs, sorted, noise).
    sampling = 4 * options.slots * cfg.vocab_size * 4
    free, _ = torch.cuda.mem_get_info(device)
    per_block = PagedKVCache.bytes_per_block(cfg, BLOCK_SIZE, dtype)
    budget = int(free * GPU_MEMORY_UTILIZATION) - activations - sampling
    blocks = budget // per_block - 2  # null and scratch
    if blocks < -(-max_len // BLOCK_SIZE):
        raise EngineError(
            f"the KV cache does not fit: {free / 2**30:.1f} GiB free after the weights, "
            f"{activations / 2**30:.1f} GiB of it for a step's activations, holds "
            f"{max(blocks, 0) * BLOCK_SIZE} tokens, fewer than one {max_len}-token sequence; "
            "lower --max-model-len or --max-batched-tokens"
        )
    return blocks


def _warm_up(
    model: Decoder,
    options: RunnerOptions,
    max_len: int,
    device: torch.device,
    dtype: torch.dtype,
) -> int:
    """Bytes a step of ``max_batched_tokens`` prompt tokens needs beyond the weights:
    one such step is run over a cache just large enough, and its peak is measured."""
    tokens = max(1, min(options.max_batched_tokens, options.slots * max_len))
    seqs, left = [], tokens
    while left:
        count = min(left, max_len)
        seqs.append(count)
        left -= count
    tables, start = [], 0
    for count in seqs:
        used = -(-count // BLOCK_SIZE)
        tables.append(list(range(start, start + used)))
        start += used
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    cache = PagedKVCache.allocate(model.cfg, start, BLOCK_SIZE, dtype, device)
    step = PagedStep.plan(
        [PagedSeq(0, count, table) for count, table in zip(seqs, tables, strict=True)],
        BLOCK_SIZE,
        device,
        cache.null_slot,
        window=model.cfg.sliding_window,
    )
    model(torch.zeros(tokens, dtype=torch.long, device=device), cache, step)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del cache, step
    torch.cuda.empty_cache()
    return int(peak)


class TransformersRunner:
    backend = "transformers"
    quantization = "none"

    def __init__(
        self, local: LocalModel, options: RunnerOptions, dtype: torch.dtype, device: torch.device
    ) -> None:
        from transformers import AutoModelForCausalLM

        if options.quantization == "int8":
            raise EngineError("--quantization int8 needs the Bosun engine (--engine bosun)")
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(local.path, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"--model: transformers cannot load {local.path}: {exc}") from None
        self.model = model.to(device).eval()
        self._cache_keyword = _cache_keyword(model)
        config = local.config
        model_max = int(config.get("max_position_embeddings") or 4096)
        self.max_len = _context(options, model_max, device)
        self._caches: dict[int, Any] = {}
        self._device = device
        self.block_size = BLOCK_SIZE
        self.prefix_caching = False  # each sequence has a cache of its own
        self.lazy_memory = False  # no block memory: the blocks only count tokens
        self.attention = "transformers"
        self._adapters: dict[int, str] = {}  # slot -> peft adapter name
        self.num_blocks = options.slots * -(-self.max_len // BLOCK_SIZE)

    def load_adapter(self, slot: int, path: Path, strength: float) -> None:
        """Through peft: the adapter is switched per sequence (they run one by one)."""
        try:
            from peft import PeftModel
        except ImportError:
            raise EngineError("adapters with --engine transformers need peft") from None
        name = f"adapter-{slot}"
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidRequestError(
                f"{path}: not a LoRA adapter for this model: {exc}", "lora_path"
            ) from None
        for module in self.model.modules():
            scaling = getattr(module, "scaling", None)
            if isinstance(scaling, dict) and name in scaling:
                scaling[name] *= strength
        self.model.eval()
        self._adapters[slot] = name

    def unload_adapter(self, slot: int) -> None:
        name = self._adapters.pop(slot, None)
        if name is not None:
            self.model.delete_adapter(name)

    @torch.inference_mode()
    def _forward(self, item: RunItem) -> torch.Tensor:
        from transformers import DynamicCache

        if item.start == 0:
            self._caches.pop(item.seq_id, None)  # a new or a preempted sequence
        ids = torch.tensor([item.tokens], dtype=torch.long, device=self._device)
        # The sequence's cache object is filled in place by each forward pass.
        cache = self._caches.get(item.seq_id)
        if cache is None:  # built once per sequence, not on every step
            cache = self._caches[item.seq_id] = DynamicCache(config=self.model.config)
        elif cache.get_seq_length() > item.start:  # a step retried after a failed one
            cache.crop(item.start - cache.get_seq_length())  # negative: tokens to drop
        inputs = {"input_ids": ids, self._cache_keyword: cache, "use_cache": True}
        if not self._adapters:
            out = self.model(**inputs)
        elif item.adapter:
            self.model.set_adapter(self._adapters[item.adapter])
            out = self.model(**inputs)
        else:
            with self.model.disable_adapter():
                out = self.model(**inputs)
        logits: torch.Tensor = out.logits[0, -1].float()
        return logits

    def run(self, items: list[RunItem]) -> torch.Tensor:
        return torch.stack([self._forward(item) for item in items])

    def release(self, seq_id: int) -> None:
        self._caches.pop(seq_id, None)


def _cache_keyword(model: Any) -> str:
    """The name a causal LM's ``forward`` takes its KV cache under: ``cache`` from
    transformers 5.24 on (``past_key_values`` is deprecated there and warns), before that
    ``past_key_values``."""

    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
