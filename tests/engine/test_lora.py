"""LoRA adapters in the Bosun decoder on the tiny random Llama, against peft over
transformers: one step mixing the base model and two adapters gives each row the logits
peft gives it alone, with the strength scaling the update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bosun.engine.client import InvalidRequestError
from bosun.engine.model import Decoder
from bosun.engine.runner import DecoderRunner, RunItem, RunnerOptions
from tests.engine.tiny import HF_CONFIG, expected, hf_reference, tiny_decoder

peft = pytest.importorskip("peft", reason="LoRA adapters are written with peft")
CPU = torch.device("cpu")
A = [5, 9, 3, 1, 2, 7, 7, 8, 10, 11]
B = [4, 4, 12, 13, 14, 15, 16]


def make_adapter(path: Path, seed: int, targets: list[str], rank: int = 4) -> None:
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets)
    model = peft.get_peft_model(hf_reference(), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)  # B starts at zero: make the update visible
    model.save_pretrained(path)


def peft_reference(path: Path, strength: float = 1.0) -> Any:
    model = peft.PeftModel.from_pretrained(hf_reference(), str(path))
    for module in model.modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict):
            for name in scaling:
                scaling[name] *= strength
    return model.eval()


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    make_adapter(root / "all", 1, every)
    make_adapter(root / "qv", 2, ["q_proj", "v_proj"], rank=2)
    return root / "all", root / "qv"


def runner(model: Decoder) -> DecoderRunner:
    options = RunnerOptions("bosun", "float32", "cpu", "none", 4, 32)
    return DecoderRunner(model, options, torch.float32, CPU)


def test_one_step_mixes_the_base_and_two_adapters(adapters: tuple[Path, Path]) -> None:
    every, qv = adapters
    r = runner(tiny_decoder())
    r.load_adapter(1, every, 1.0)
    r.load_adapter(2, qv, 0.5)
    items = [
        RunItem(0, A, 0, [0], adapter=1),
        RunItem(1, B, 0, [2], adapter=0),
        RunItem(2, A, 0, [4], adapter=2),
        RunItem(3, B, 0, [6], adapter=1),
    ]
    logits = r.run(items)
    base = hf_reference()
    torch.testing.assert_close(logits[1], expected(base, B), atol=1e-4, rtol=1e-4)
    with_every, with_qv = peft_reference(every), peft_reference(qv, 0.5)
    torch.testing.assert_close(logits[0], expected(with_every, A), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[2], expected(with_qv, A), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[3], expected(with_every, B), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(logits[0], expected(base, A), atol=1e-2)  # it does change
    # Decoding on: one token each, still routed per sequence.
    step = r.run([RunItem(0, [3], len(A), [0], 1), RunItem(1, [3], len(B), [2], 0)])
    torch.testing.assert_close(step[0], expected(with_every, [*A, 3]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(step[1], expected(base, [*B, 3]), atol=1e-4, rtol=1e-4)


def test_an_unloaded_adapter_no_longer_applies(adapters: tuple[Path, Path]) -> None:
    r = runner(tiny_decoder())
    r.load_adapter(1, adapters[0], 1.0)
    r.unload_adapter(1)
    logits = r.run([RunItem(0, A, 0, [0], adapter=1)])
    torch.testing.assert_close(logits[0], expected(hf_reference(), A), atol=1e-4, rtol=1e-4)


def test_adapters_that_do_not_fit_are_refused(tmp_path: Path, adapters: tuple[Path, Path]) -> None:
    r = runner(tiny_decoder())
    with pytest.raises(InvalidRequestError, match="not a PEFT LoRA adapter"):
        r.load_adapter(1, tmp_path, 1.0)
    wider = {**HF_CONFIG, "hidden_size": 48, "head_dim": 12}
    from transformers import LlamaConfig, LlamaForCausalLM

    other = peft.get_peft_model(
        LlamaForCausalLM(LlamaConfig(**wider)), peft.LoraConfig(r=2, target_modules=["q_proj"])
    )
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(InvalidRequestError, match="does not match the model's shape"):
        r.load_adapter(1, tmp_path / "other", 1.0)


def test_an_adapter_over_fused_projections(tmp_path: Path) -> None:
    """Phi-3 ships q/k/v and gate/up fused, and so do its adapters: split into their
    parts, they give peft's logits."""
    from tests.engine.test_model import PHI3
    from tests.engine.tiny import hf_twin

    hf, decoder = hf_twin(PHI3)
    torch.manual_seed(3)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj", "gate_up_proj"])
    tuned = peft.get_peft_model(hf, config)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)
    tuned.save_pretrained(tmp_path)
    r = runner(decoder)
    r.load_adapter(1, tmp_path, 1.0)
    logits = r.run([RunItem(0, A, 0, [0], adapter=1), RunItem(1, A, 0, [4], adapter=0)])
    torch.testing.assert_close(logits[0], expected(tuned.eval(), A), atol=1e-4, rtol=1e-4)
    with tuned.disable_adapter():
        torch.testing.assert_close(logits[1], expected(tuned, A), atol=1e-4, rtol=1e-4)
