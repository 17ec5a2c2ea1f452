"""``bosun tune``: train a LoRA adapter, from the rendered ``tuning.yaml`` (what a
cluster's Job and ``bosun up`` run) or from flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bosun.cli.output import fail

__all__ = ["register", "tune"]


def tune(
    config: Annotated[
        Path | None,
        typer.Option(help="A tuning.yaml as rendered for the Workspace (model, inputs, output)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A preset or a Hugging Face directory.")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(help="JSONL or Parquet files, directories or http(s) URLs (repeatable)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="Where the adapter (and checkpoints) are written.")
    ] = None,
    method: Annotated[str, typer.Option(help="lora, or qlora (4-bit base; GPUs).")] = "lora",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="A hyperparameter, as max_steps=100 (repeatable; see docs/tuning.md)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Fine-tune a model on chat or prompt/completion data; the result is a PEFT LoRA
    adapter that `bosun serve --adapter NAME=PATH` serves. Started again with the same
    output, it resumes from the last checkpoint."""
    import yaml

    from bosun.tuning.data import DataError
    from bosun.tuning.train import TuneError, TuneJob

    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device: {device!r} is not one of auto, cpu, cuda")
    settings: dict[str, object] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r}: write KEY=VALUE, as max_steps=100")
        settings[key.strip()] = yaml.safe_load(value)
    try:
        if config is not None:
            if model or data or output:
                fail("--config already names the model, data and output: leave those flags out")
            try:
                loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                fail(f"--config: cannot read {config}: {exc}")
            if not isinstance(loaded, dict):
                fail(f"--config: {config} is not a mapping")
            job = TuneJob.from_dict(loaded, str(config))
            if settings:
                job = TuneJob(**{**job.__dict__, "config": {**job.config, **settings}})
        else:
            missing = [
                f for f, v in (("--model", model), ("--data", data), ("--output", output)) if not v
            ]
            if missing:
                fail(f"{', '.join(missing)}: needed without --config")
            assert model and data and output
            job = TuneJob(model, list(data), output, method, config=settings)
        try:
            import peft  # noqa: F401
        except ImportError:
            fail("bosun tune needs the tune extra: pip install 'bosun[tune]'")
        from bosun.tuning.train import run

        run(job, device)
    except (DataError, TuneError) as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.command()(tune)
