"""Model runners: what the engine's scheduler drives. A runner owns the weights and the KV
cache of every slot; it prefills one sequence into a slot and decodes one token for many.

- :class:`DecoderRunner`: the Bosun decoder (``model.py``) over one slot-laid cache,
  decoding all sequences in one batch; Llama-family architectures.
- :class:`TransformersRunner`: any Hugging Face causal LM through transformers, with one
  ``DynamicCache`` per sequence, decoding sequence by sequence; the fallback for
  architectures the Bosun decoder does not implement (correct, not fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from bosun.engine.client import EngineError
from bosun.engine.loader import LocalModel
from bosun.engine.model import SUPPORTED_ARCHITECTURES, Decoder, DecoderConfig, KVCache
from bosun.engine.quant import quantize_int8

__all__ = [
    "DTYPES",
    "DecoderRunner",
    "ModelRunner",
    "RunnerOptions",
    "TransformersRunner",
    "architecture_of",
    "load_runner",
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_KNOWN = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}


class ModelRunner(Protocol):
    backend: str
    quantization: str
    max_len: int  # tokens per sequence, prompt and output together

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        """Fill ``slot`` with a new sequence; the logits [vocab] after its last token."""
        ...

    def decode(self, slots: list[int], tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One token for each sequence (slot order); logits [B, vocab]."""
        ...

    def release(self, slot: int) -> None:
        """The sequence in ``slot`` is done; its cache may be reused."""
        ...


@dataclass(frozen=True)
class RunnerOptions:
    backend: str  # auto, bosun or transformers
    dtype: str  # auto or a DTYPES key
    device: str
    quantization: str  # auto, int8 or none
    slots: int
    max_model_len: int | None


def architecture_of(config: dict[str, Any]) -> str:
    names = config.get("architectures") or [_KNOWN.get(config.get("model_type", ""), "?")]
    return str(names[0])


def load_runner(local: LocalModel, options: RunnerOptions) -> ModelRunner:
    """The runner for ``local``: the Bosun decoder where it runs the architecture."""
    architecture = architecture_of(local.config)
    backend = options.backend
    if backend == "auto":
        backend = "bosun" if architecture in SUPPORTED_ARCHITECTURES else "transformers"
    if backend == "bosun" and architecture not in SUPPORTED_ARCHITECTURES:
        raise EngineError(
            f"--engine bosun: the Bosun engine does not run {architecture} yet (supported: "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}); --engine transformers runs it"
        )
    dtype_name = options.dtype
    if dtype_name == "auto":
        dtype_name = "float32" if options.device == "cpu" else "bfloat16"
    dtype, device = DTYPES[dtype_name], torch.device(options.device)
    if backend == "bosun":
        return DecoderRunner(local, options, dtype, device)
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
        self, local: LocalModel, options: RunnerOptions, dtype: torch.dtype, device: torch.device
    ) -> None:
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
        self.quantization = quantization
        self.model = model
        self.max_len = _context(options, cfg.max_position, device)
        self.cache = KVCache.allocate(cfg, options.slots, self.max_len, dtype, device)
        self._fresh = set(range(options.slots))  # never used: zeroed before first use
        self._device = device

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        if slot in self._fresh:
            self.cache.clear_slot(slot)
            self._fresh.discard(slot)
        ids = torch.tensor([tokens], dtype=torch.long, device=self._device)
        positions = torch.arange(len(tokens), device=self._device)[None]
        slots = torch.tensor([slot], device=self._device)
        logits: torch.Tensor = self.model(ids, positions, self.cache, slots, prefill=True)
        return logits[0]

    def decode(self, slots: list[int], tokens: list[int], positions: list[int]) -> torch.Tensor:
        dev = self._device
        ids = torch.tensor(tokens, dtype=torch.long, device=dev)[:, None]
        where = torch.tensor(positions, dtype=torch.long, device=dev)[:, None]
        logits: torch.Tensor = self.model(
            ids, where, self.cache, torch.tensor(slots, device=dev), prefill=False
        )
        return logits

    def release(self, slot: int) -> None:
        pass  # the next prefill overwrites the slot


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
        config = local.config
        model_max = int(config.get("max_position_embeddings") or 4096)
        self.max_len = _context(options, model_max, device)
        self._caches: dict[int, Any] = {}
        self._device = device

    @torch.inference_mode()
    def _forward(self, slot: int, tokens: list[int]) -> torch.Tensor:
        ids = torch.tensor([tokens], dtype=torch.long, device=self._device)
        out = self.model(input_ids=ids, past_key_values=self._caches.get(slot), use_cache=True)
        self._caches[slot] = out.past_key_values
        logits: torch.Tensor = out.logits[0, -1].float()
        return logits

    def prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        self._caches.pop(slot, None)
        return self._forward(slot, tokens)

    def decode(self, slots: list[int], tokens: list[int], positions: list[int]) -> torch.Tensor:
        return torch.stack([self._forward(s, [t]) for s, t in zip(slots, tokens, strict=True)])

    def release(self, slot: int) -> None:
        self._caches.pop(slot, None)
