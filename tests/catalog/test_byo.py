"""Bring-your-own models: sized from config.json and safetensors headers, no weights loaded."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from bosun.api import parse_workspace
from bosun.api.errors import BosunError
from bosun.catalog import PlanError, plan_workspace
from bosun.catalog.byo import spec_from_directory
from tests.conftest import EXAMPLES, example_data

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file with real headers and zeroed data."""
    sizes = {"BF16": 2, "F32": 4}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def test_parameters_come_from_safetensors_headers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    write_safetensors(tmp_path / "model-1.safetensors", {"embed": ("BF16", [100, 64])})
    write_safetensors(
        tmp_path / "model-2.safetensors", {"w": ("BF16", [64, 128]), "n": ("F32", [64])}
    )
    spec = spec_from_directory(tmp_path)
    assert spec.parameters == 100 * 64 + 64 * 128 + 64
    assert spec.weight_bytes_on_disk == (100 * 64 + 64 * 128) * 2 + 64 * 4
    assert (spec.layers, spec.kv_heads, spec.head_dim) == (2, 2, 16)


def test_the_bundled_example_is_sized_from_its_index(tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    shutil.copytree(EXAMPLES / "07-byo-model" / "my-model", model)
    data = example_data("07-")
    data["spec"]["inference"]["model"]["uri"] = f"file://{model}"
    plan = plan_workspace(parse_workspace(data))
    assert plan.spec is not None and plan.spec.architecture == "MistralForCausalLM"
    assert plan.spec.parameters == 14496047104 // 2
    assert plan.fits and plan.devices_per_replica == 1
    assert plan.memory.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2


def test_missing_directory_plans_unsized_with_a_warning() -> None:
    plan = plan_workspace(parse_workspace(example_data("07-")))
    assert plan.spec is None
    assert any("spec.inference.model.uri" in w for w in plan.warnings)


def test_config_without_the_needed_fields_names_them(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["X"]}), encoding="utf-8")
    data = example_data("07-")
    data["spec"]["inference"]["model"]["uri"] = f"file://{tmp_path}"
    with pytest.raises(PlanError, match=r"spec\.inference\.model\.uri: .*missing hidden_size"):
        plan_workspace(parse_workspace(data))


def test_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    data = example_data("07-")
    data["spec"]["inference"]["model"]["uri"] = f"file://{tmp_path}"
    with pytest.raises(PlanError, match=r"unreadable config\.json"):
        plan_workspace(parse_workspace(data))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # Qwen3-MoE names its experts num_experts; their width is moe_intermediate_size.
        ({"num_experts": 8, "moe_intermediate_size": 32}, {"experts": 8, "is_moe": True}),
        # Gemma 3 as transformers 5 writes it: the layer types say which layers slide.
        (
            {"sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"]},
            {"sliding_layers": 1},
        ),
        ({"sliding_window": 16, "model_type": "gemma2"}, {"sliding_layers": 1}),
        ({"sliding_window": 16, "use_sliding_window": False}, {"sliding_layers": 0}),
        # A checkpoint that ships quantized is sized in its own format; gpt-oss leaves
        # attention out of it, so only its experts are.
        (
            {"quantization_config": {"quant_method": "awq", "bits": 4}},
            {"quantization": "awq", "quantized": "layers"},
        ),
        (
            {
                "quantization_config": {
                    "quant_method": "mxfp4",
                    "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"],
                }
            },
            {"quantization": "mxfp4", "quantized": "experts"},
        ),
        ({"quantization_config": {"quant_method": "exotic"}}, {"quantization": "none"}),
        # compressed-tensors and ModelOpt name the scheme inside: Kimi's 4-bit experts
        # (attention left out), a W8A8 FP8 checkpoint, NVIDIA's NVFP4.
        (
            {
                "quantization_config": {
                    "quant_method": "compressed-tensors",
                    "format": "pack-quantized",
                    "config_groups": {
                        "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}
                    },
                    "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*"],
                }
            },
            {"quantization": "int4", "quantized": "experts"},
        ),
        (
            {
                "quantization_config": {
                    "quant_method": "compressed-tensors",
                    "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}},
                    "ignore": ["lm_head"],
                }
            },
            {"quantization": "fp8", "quantized": "layers"},
        ),
        (
            {"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}},
            {"quantization": "nvfp4"},
        ),
    ],
)
def test_config_facts_sizing_reads(
    tmp_path: Path, extra: dict[str, object], expected: dict[str, object]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, **extra}), encoding="utf-8")
    spec = spec_from_directory(tmp_path)
    for name, value in expected.items():
        assert getattr(spec, name) == value, name


def test_a_quantized_checkpoint_is_sized_by_its_files(tmp_path: Path) -> None:
    """AWQ packs eight 4-bit weights in an int32, so the headers count an eighth of the
    weights: the plan takes the files' bytes for the layers, the embeddings as 16-bit."""
    config = {**CONFIG, "quantization_config": {"quant_method": "awq", "bits": 4}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_safetensors(
        tmp_path / "model.safetensors",
        {"embed": ("BF16", [100, 64]), "qweight": ("F32", [2, 64, 16]), "scales": ("BF16", [128])},
    )
    data = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "awq"},
        "spec": {"inference": {"model": {"uri": f"file://{tmp_path}"}}},
    }
    plan = plan_workspace(parse_workspace(data), accelerator="nvidia-l4-24gb")
    assert plan.quantization == "awq"
    on_disk = 100 * 64 * 2 + 2 * 64 * 16 * 4 + 128 * 2
    assert plan.memory.weights_bytes == int(on_disk * 1.02)


@pytest.mark.parametrize(
    ("recorded", "kv_layers", "state_layers", "kind"),
    [
        ("nvidia__NVIDIA-Nemotron-Nano-9B-v2.json", 4, 27, "mamba2"),
        ("Qwen__Qwen3.5-9B.json", 8, 24, "gated-deltanet"),
    ],
)
def test_a_hybrid_of_your_own_keeps_kv_only_where_it_attends(
    tmp_path: Path, recorded: str, kv_layers: int, state_layers: int, kind: str
) -> None:
    """A Nemotron-H or Qwen3.5 directory: its config's layer pattern and linear-attention
    dimensions reach the plan, which holds KV for the attention layers alone."""
    source = Path(__file__).parent / "recorded" / recorded
    shutil.copy(source, tmp_path / "config.json")
    spec = spec_from_directory(tmp_path)
    assert (spec.kv_layers, spec.state_layers) == (kv_layers, state_layers)
    assert spec.recurrent is not None and spec.recurrent.kind == kind
    assert spec.kv_bytes_per_token(2) == 2 * kv_layers * spec.kv_heads * spec.head_dim * 2


MAMBA = {"mamba_num_heads": 2, "mamba_head_dim": 4, "ssm_state_size": 8, "n_groups": 1}


def test_a_config_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(BosunError, match="not an object"):
        spec_from_directory(tmp_path)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"hybrid_override_pattern": "M*X", **MAMBA}, "layer_pattern"),
        ({"hybrid_override_pattern": "M*", **MAMBA}, "layerPattern has 2 layers"),
        ({"hybrid_override_pattern": "M*M-"}, "recurrent"),
        ({"hybrid_override_pattern": "M*M-", "mamba_num_heads": 2}, "missing 'mamba_head_dim'"),
        ({"num_attention_heads": 0}, "cannot size"),
        ({"num_kv_shared_layers": 4}, "num_kv_shared_layers 4 leaves no layer its own cache"),
        ({"hidden_size": "wide"}, "cannot size"),
    ],
)
def test_a_config_written_by_hand_is_refused_with_its_reason(
    tmp_path: Path, extra: dict[str, object], words: str
) -> None:
    """Whatever a config.json holds, the plan says what it cannot read, naming the file,
    never a traceback."""
    config = {**CONFIG, "num_hidden_layers": 4, **extra}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(BosunError) as error:
        spec_from_directory(tmp_path)
    assert str(tmp_path / "config.json") in str(error.value)
    assert words in str(error.value)
