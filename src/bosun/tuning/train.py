"""``bosun tune``: LoRA fine-tuning with peft and transformers' Trainer.

The flow: check the hyperparameters, read and check every row of the data, encode it
(loss on the assistant's tokens only) and only then load the model, so bad input fails in
seconds with a message naming the file and line. Checkpoints go to
``OUTPUT/checkpoints`` every ``save_steps`` steps; a job started again on the same output
resumes from the last one. The adapter is written to ``OUTPUT`` (``adapter_config.json``,
``adapter_model.safetensors``) through a temporary directory, so an interrupted save
leaves the previous adapter whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from bosun.tuning.data import IGNORE, DataError, Encoded, encode, load_examples, resolve_inputs

__all__ = [
    "TuneError",
    "TuneJob",
    "TuneSettings",
    "check",
    "run",
    "schedule_for",
    "settings_for",
]

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SUMMARY = "bosun-tuning.json"


class TuneError(Exception):
    """A tuning job that cannot run as asked: the message says why and what to change."""


class TuneSettings(BaseModel):
    """``spec.tuning.config``: every key optional; unset ones follow the model's size."""

    # Keys as in Kubernetes (learningRate) or as in Python (learning_rate).
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    epochs: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0, lt=1)
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_seq_len: int = Field(default=1024, ge=16)
    lora_r: int | None = Field(default=None, ge=1, le=1024)
    lora_alpha: int | None = Field(default=None, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    save_steps: int = Field(default=50, ge=1)
    seed: int = 0


@dataclass(frozen=True)
class Defaults:
    lora_r: int
    learning_rate: float
    batch_size: int


# Fewer optimizer steps than this do not teach a LoRA adapter a new habit, however small
# the data: a default run over a small dataset takes more epochs to reach it (at most
# MAX_EPOCHS). Measured in benchmarks/tuning_quality.py.
MIN_STEPS = 60
DEFAULT_EPOCHS = 3.0
MAX_EPOCHS = 30.0
# On small data the default batch shrinks to this before the epochs grow: the same passes
# over the data make more optimizer steps (and cost half the compute of 8-row steps).
SMALL_DATA_BATCH = 4


def settings_for(parameters: int) -> Defaults:
    """Defaults by model size. LoRA trains a few low-rank matrices, so it takes learning
    rates well above full fine-tuning's: 1e-3 on models under 1B parameters (2e-4 left
    SmolLM2-135M without the habit after 24 steps; see docs/tuning.md), 2e-4 under 10B,
    1e-4 above, where the first updates of a large model are the most fragile."""
    if parameters < 1_000_000_000:
        return Defaults(lora_r=8, learning_rate=1e-3, batch_size=8)
    if parameters < 10_000_000_000:
        return Defaults(lora_r=16, learning_rate=2e-4, batch_size=4)
    return Defaults(lora_r=16, learning_rate=1e-4, batch_size=2)


def batch_for(rows: int, default: int) -> tuple[int, str]:
    """The default batch size for ``rows`` training rows, and why."""
    if default > SMALL_DATA_BATCH and rows / default * DEFAULT_EPOCHS < MIN_STEPS:
        return SMALL_DATA_BATCH, (
            f"small data ({rows} rows): {SMALL_DATA_BATCH} rows a step make more optimizer "
            f"steps than {default}"
        )
    return default, ""


@dataclass(frozen=True)
class Schedule:
    """How long a job trains, and why (said in the log and in bosun-tuning.json)."""

    max_steps: int
    epochs: float
    why: str


def schedule_for(settings: TuneSettings, rows: int, batch: int) -> Schedule:
    """The number of optimizer steps: ``max_steps`` when given, else ``epochs`` over the
    data; by default 3 epochs, raised to at least MIN_STEPS steps for small datasets."""
    per_epoch = math.ceil(rows / batch / settings.gradient_accumulation_steps)
    if settings.max_steps:
        return Schedule(settings.max_steps, settings.max_steps / per_epoch, "config.maxSteps")
    if settings.epochs:
        steps = max(1, math.ceil(per_epoch * settings.epochs))
        return Schedule(steps, settings.epochs, "config.epochs")
    if per_epoch * DEFAULT_EPOCHS >= MIN_STEPS:
        steps = math.ceil(per_epoch * DEFAULT_EPOCHS)
        return Schedule(steps, DEFAULT_EPOCHS, f"{DEFAULT_EPOCHS:g} epochs")
    epochs = float(min(MAX_EPOCHS, math.ceil(MIN_STEPS / per_epoch)))
    return Schedule(
        per_epoch * int(epochs),
        epochs,
        f"{epochs:g} epochs of {per_epoch} steps: small data, raised from {DEFAULT_EPOCHS:g} "
        f"epochs towards the minimum of {MIN_STEPS} optimizer steps",
    )


@dataclass(frozen=True)
class TuneJob:
    """What ``bosun tune`` reads (the rendered ``tuning.yaml``, or its flags)."""

    model: str
    inputs: list[str]
    output: str
    method: str = "lora"
    dtype: str = "auto"
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> TuneJob:
        for key in ("model", "inputs", "output"):
            if not data.get(key):
                raise TuneError(f"{where}: '{key}' is missing")
        inputs = data["inputs"]
        if isinstance(inputs, str):
            inputs = [inputs]
        return cls(
            model=str(data["model"]),
            inputs=[str(i) for i in inputs],
            output=str(data["output"]),
            method=str(data.get("method", "lora")),
            dtype=str(data.get("dtype", "auto")),
            config=dict(data.get("config") or {}),
        )


def _settings(job: TuneJob) -> TuneSettings:
    """The job's settings, or a TuneError naming each bad key as ``config.KEY`` (or the
    method)."""
    if job.method not in ("lora", "qlora"):
        raise TuneError(f"method {job.method!r}: use lora or qlora")
    try:
        return TuneSettings.model_validate(job.config)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(p) for p in error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"config.{path}: {message}")
        raise TuneError("; ".join(problems)) from None


def check(job: TuneJob) -> None:
    """What can be checked in a second, before a job is started: the settings, the
    method, and every row of the local data (URLs are read by the job itself)."""
    _settings(job)
    local = [i for i in job.inputs if not i.startswith(("http://", "https://"))]
    if local:
        load_examples(resolve_inputs(local, Path()))


def _output_dir(output: str) -> Path:
    if "://" in output and not output.startswith("file://"):
        raise TuneError(f"output {output}: bosun tune writes to a local path or file:// here")
    return Path(output.removeprefix("file://")).expanduser()


def _log(message: str) -> None:
    print(f"bosun tune: {message}", flush=True)


def _encode_all(
    tokenizer: Any, examples: list[tuple[str, list[dict[str, str]]]], max_len: int
) -> list[Encoded]:
    encoded = []
    for where, chat in examples:
        item = encode(tokenizer, chat, max_len)
        if not item.trained:
            raise DataError(
                f"{where}: the assistant's answer starts after max_seq_len ({max_len}) "
                "tokens; shorten the row or raise config.max_seq_len"
            )
        encoded.append(item)
    return encoded


class _Rows:
    """The encoded rows as the Trainer's dataset."""

    def __init__(self, rows: list[Encoded]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[i].input_ids, "labels": self.rows[i].labels}


class _Counter:
    tokens = 0  # real (unpadded) tokens the model was trained on


def _collate(pad_id: int, counter: _Counter) -> Any:
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        counter.tokens += sum(len(b["input_ids"]) for b in batch)
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def _progress_callback(total_tokens: int) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """One line per logged step: loss, learning rate, speed, time left."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start, self.first = time.monotonic(), state.global_step

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            done = max(state.global_step - self.first, 1)
            elapsed = time.monotonic() - self.start
            left = elapsed / done * (state.max_steps - state.global_step)
            _log(
                f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                f"lr {logs.get('learning_rate', 0):.2e} epoch {state.epoch:.2f} "
                f"elapsed {elapsed:.0f}s left {left:.0f}s"
            )

    return Progress()


# Settings that may change between a run and its resumption (train longer, save more often).
_RESUMABLE = {"epochs", "max_steps", "save_steps"}


def _fingerprint(job: TuneJob, settings: TuneSettings, files: list[Path]) -> dict[str, Any]:
    """What a checkpoint was trained on: resuming it under anything else would mix two
    trainings."""
    data = []
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        data.append(digest.hexdigest())
    kept = settings.model_dump(mode="json", exclude=_RESUMABLE)
    return {"model": job.model, "method": job.method, "settings": kept, "data": data}


def _claim_checkpoints(checkpoints: Path, fingerprint: dict[str, Any]) -> None:
    """Checkpoints are resumed only by the job that wrote them; another is refused before
    it touches them (nothing is deleted)."""
    marker = checkpoints / "bosun-job.json"
    if marker.is_file():
        previous = json.loads(marker.read_text(encoding="utf-8"))
        changed = [key for key in fingerprint if previous.get(key) != fingerprint[key]]
        if changed:
            raise TuneError(
                f"{checkpoints} holds the checkpoints of another training (its "
                f"{', '.join(changed)} differ): run that job unchanged to resume it, or "
                f"delete {checkpoints} (or choose another output) to start over"
            )
        return
    checkpoints.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")


def run(job: TuneJob, device: str = "auto") -> Path:
    """Train the adapter; its directory. TuneError or DataError before any training when
    the job cannot run."""
    settings = _settings(job)
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if job.method == "qlora":
        if device == "cpu":
            raise TuneError(
                "method qlora trains over a 4-bit base model, which needs a CUDA GPU "
                "(bitsandbytes); on CPUs use method: lora"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TuneError("method qlora needs bitsandbytes: pip install bitsandbytes") from None
    output = _output_dir(job.output)
    files = resolve_inputs(job.inputs, output / "downloads")
    examples = load_examples(files)
    _log(f"{len(examples)} examples from {len(files)} file(s)")
    _claim_checkpoints(output / "checkpoints", _fingerprint(job, settings, files))

    from bosun.engine.loader import load_tokenizer, resolve_model

    try:
        local = resolve_model(job.model)
    except Exception as exc:  # EngineError: the message names the model
        raise TuneError(str(exc)) from None
    tokenizer = load_tokenizer(local)
    rows = _encode_all(tokenizer, examples, settings.max_seq_len)
    trained = sum(r.trained for r in rows)
    _log(f"{sum(len(r.input_ids) for r in rows)} tokens, {trained} of them trained on")
    return _train(job, settings, local.path, tokenizer, rows, output, device)


def _train(
    job: TuneJob,
    settings: TuneSettings,
    model_path: Path,
    tokenizer: Any,
    rows: list[Encoded],
    output: Path,
    device: str,
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(job.dtype, torch.bfloat16)
    if device == "cpu" or job.dtype == "float32":
        dtype = torch.float32  # CPUs train in float32 (bfloat16 matmuls are slow on most)
    extra: dict[str, Any] = {}
    if job.method == "qlora":
        from transformers import BitsAndBytesConfig

        extra["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, **extra)
    if job.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)  # type: ignore[no-untyped-call]
    parameters = sum(p.numel() for p in model.parameters())
    defaults = settings_for(parameters)
    rank = settings.lora_r or defaults.lora_r
    batch, small = batch_for(len(rows), defaults.batch_size)
    batch = settings.batch_size or batch
    schedule = schedule_for(settings, len(rows), batch)
    chosen = _chosen(settings, defaults, schedule, parameters)
    if small and not settings.batch_size:
        chosen["batch_size"] = (batch, small)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in settings.target_modules if t not in present]
    if missing:
        raise TuneError(
            f"config.target_modules: the model has no {', '.join(missing)} "
            f"(its linear layers: {', '.join(sorted(n for n in present if n.endswith('proj')))})"
        )
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=rank,
        lora_alpha=int(settings.lora_alpha or 2 * rank),
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
    )
    model = get_peft_model(model, lora)  # type: ignore[assignment]
    max_steps = schedule.max_steps
    checkpoints = output / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate or defaults.learning_rate,
        max_steps=max_steps,
        warmup_steps=round(settings.warmup_ratio * max_steps),
        weight_decay=settings.weight_decay,
        logging_steps=1,
        save_steps=settings.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=settings.seed,
        use_cpu=device == "cpu",
        bf16=dtype == torch.bfloat16 and device != "cpu",
        dataloader_num_workers=0,
        disable_tqdm=not sys.stderr.isatty() and not os.environ.get("BOSUN_PROGRESS"),
        save_only_model=False,
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    counter = _Counter()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Rows(rows),
        data_collator=_collate(pad, counter),
        callbacks=[_progress_callback(sum(len(r.input_ids) for r in rows))],
    )
    trainer.remove_callback(PrinterCallback)  # its dicts repeat the progress lines
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None  # type: ignore[no-untyped-call]
    if last:
        _log(f"resuming from {Path(last).name}")
    _log(
        f"{job.method} r={rank} on {device}: {max_steps} steps of {batch} rows "
        f"(x{settings.gradient_accumulation_steps}), learning rate {args.learning_rate:g}"
    )
    for key, (value, why) in chosen.items():
        _log(f"  {key} {value:g}: {why}")
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.monotonic() - started
    history = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    speed = counter.tokens / seconds if seconds > 0 else 0.0
    summary = {
        "base_model": job.model,
        "method": job.method,
        "rank": rank,
        "steps": result.global_step,
        "examples": len(rows),
        "first_loss": history[0] if history else None,
        "final_loss": history[-1] if history else None,
        "train_seconds": round(seconds, 1),
        "train_tokens_per_second": round(speed, 1),
        "settings": {key: {"value": v, "why": why} for key, (v, why) in chosen.items()},
    }
    _save(model, output, summary)
    _log(f"adapter written to {output} ({speed:.0f} training tokens/s)")
    return output


def _chosen(
    settings: TuneSettings, defaults: Defaults, schedule: Schedule, parameters: int
) -> dict[str, tuple[float, str]]:
    """The settings that shape the training, each with where it came from."""
    size = f"the default for a model of {parameters / 1e6:,.0f}M parameters"
    picked = {
        "learning_rate": (settings.learning_rate, defaults.learning_rate, "config.learningRate"),
        "lora_r": (settings.lora_r, defaults.lora_r, "config.loraR"),
        "batch_size": (settings.batch_size, defaults.batch_size, "config.batchSize"),
    }
    chosen = {
        key: (given, key_name) if given is not None else (default, size)
        for key, (given, default, key_name) in picked.items()
    }
    chosen["max_steps"] = (schedule.max_steps, schedule.why)
    return chosen


def _save(model: Any, output: Path, summary: dict[str, Any]) -> None:
    """The adapter into ``output`` through a temporary directory beside it."""
    staging = output / ".adapter-staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for item in staging.iterdir():
        item.replace(output / item.name)
    staging.rmdir()
