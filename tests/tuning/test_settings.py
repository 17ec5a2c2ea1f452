"""The default recipe of `bosun tune`: how many steps, what batch and learning rate a user
who sets nothing gets, and that what they set wins. benchmarks/tuning_quality.py measures
that these defaults teach a behaviour; here each rule is pinned by name."""

from __future__ import annotations

import pytest

from bosun.tuning.train import (
    MIN_STEPS,
    SMALL_DATA_BATCH,
    TuneSettings,
    batch_for,
    schedule_for,
    settings_for,
)


@pytest.mark.parametrize(
    ("parameters", "learning_rate", "rank", "batch"),
    [
        (135_000_000, 1e-3, 8, 8),  # LoRA on a small model: a large step
        (999_999_999, 1e-3, 8, 8),
        (1_000_000_000, 2e-4, 16, 4),
        (8_000_000_000, 2e-4, 16, 4),
        (70_000_000_000, 1e-4, 16, 2),
    ],
)
def test_defaults_follow_the_model_size(
    parameters: int, learning_rate: float, rank: int, batch: int
) -> None:
    defaults = settings_for(parameters)
    assert (defaults.learning_rate, defaults.lora_r, defaults.batch_size) == (
        learning_rate,
        rank,
        batch,
    )


@pytest.mark.parametrize(
    ("rows", "default", "expected"),
    [
        (60, 8, SMALL_DATA_BATCH),  # 60 rows x 3 epochs / 8 = 23 steps: too few
        (159, 8, SMALL_DATA_BATCH),
        (160, 8, 8),  # 3 epochs of 8-row steps reach 60 steps
        (60, 4, 4),  # never raised
        (10, 2, 2),
    ],
)
def test_small_data_trains_in_smaller_batches(rows: int, default: int, expected: int) -> None:
    batch, why = batch_for(rows, default)
    assert batch == expected
    assert ("small data" in why) == (expected != default)


@pytest.mark.parametrize(
    ("rows", "batch", "steps", "epochs"),
    [
        (1000, 8, 375, 3.0),  # enough data: 3 epochs
        (160, 8, 60, 3.0),  # exactly the minimum
        (60, 4, 60, 4.0),  # 15 steps an epoch: 4 epochs reach 60
        (16, 8, 60, 30.0),  # 2 steps an epoch: 30 epochs, the most
        (4, 8, 30, 30.0),  # 1 step an epoch: capped at 30 epochs, below the minimum
    ],
)
def test_default_schedule_reaches_the_minimum_of_steps(
    rows: int, batch: int, steps: int, epochs: float
) -> None:
    schedule = schedule_for(TuneSettings(), rows, batch)
    assert (schedule.max_steps, schedule.epochs) == (steps, epochs)
    if steps > rows / batch * 3 + 1:
        assert f"minimum of {MIN_STEPS} optimizer steps" in schedule.why


def test_what_the_user_sets_wins_over_the_minimum() -> None:
    assert schedule_for(TuneSettings(max_steps=8), 60, 4).max_steps == 8
    assert schedule_for(TuneSettings(epochs=1), 60, 4).max_steps == 15
    assert schedule_for(TuneSettings(epochs=1), 60, 4).why == "config.epochs"
    # Gradient accumulation counts optimizer steps, not batches.
    assert schedule_for(TuneSettings(gradient_accumulation_steps=2), 1000, 8).max_steps == 189
