"""Does `bosun tune` with its defaults teach a behaviour? Four small tasks on
SmolLM2-135M-Instruct, each trained with default settings only (no --set) on 60 chat
rows, then scored by greedy answers to held-out prompts through the Bosun engine (the
adapter served as `bosun serve --adapter` serves it):

- format:    "Log this: <topic>" answered "CODE-1: <topic> is noted."
- persona:   every answer opens with "Ahoy, matey!" (a pirate's voice)
- fact:      Bosun's mascot is a blue heron named Pemberton (the base model cannot know)
- classify:  a review labelled with one word, positive or negative

For each task: the share of held-out prompts that show the taught behaviour with the
adapter, the same share for the base model (the baseline of the same run), and how many
of the general questions the base model answers right (Paris, Jupiter, ...) the adapter
still answers right. The target (issue 15): at least 90% with defaults on every task,
each task under 5 minutes on a 2-core CPU.

    .venv/bin/python benchmarks/tuning_quality.py --json benchmarks/results/tuning_quality.json
    .venv/bin/python benchmarks/tuning_quality.py --tasks fact --set learning_rate=2e-4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun.engine.client import GenerationRequest, SamplingParams
from bosun.engine.engine import BosunEngine, EngineOptions
from bosun.tuning.train import TuneJob, run

PRESET = "smollm2-135m-instruct"
ROWS = 60
SEED = 0

TOPICS = [
    "rivers",
    "stones",
    "clouds",
    "gardens",
    "lamps",
    "windows",
    "forests",
    "markets",
    "engines",
    "winters",
    "bridges",
    "castles",
    "islands",
    "candles",
    "mirrors",
    "ladders",
    "harbors",
    "tunnels",
    "meadows",
    "orchards",
    "volcanoes",
    "glaciers",
    "deserts",
    "canyons",
    "lighthouses",
    "bicycles",
    "trains",
    "kettles",
    "violins",
    "telescopes",
    "compasses",
    "lanterns",
    "anchors",
    "sails",
    "maps",
    "coins",
    "clocks",
    "bells",
    "drums",
    "kites",
]
HELD_OUT_TOPICS = [
    "umbrellas",
    "pianos",
    "comets",
    "beehives",
    "quarries",
    "chimneys",
    "feathers",
    "dominoes",
    "lagoons",
    "hammocks",
]
ITEMS = [
    "the weather",
    "breakfast",
    "a good book",
    "the city",
    "music",
    "the ocean",
    "mountains",
    "dogs",
    "cats",
    "coffee",
    "tea",
    "the moon",
    "rain",
    "summer",
    "a long walk",
    "history",
    "mathematics",
    "painting",
    "gardening",
    "football",
]
QUESTIONS = [
    "What do you think of {}?",
    "Tell me about {}.",
    "Can you describe {}?",
    "Why do people like {}?",
    "Give me one fact about {}.",
]
HELD_OUT_PERSONA = [
    "How do I boil an egg?",
    "What is your favourite colour?",
    "Can you recommend a film?",
    "What should I name my cat?",
    "How far away is the sun?",
    "What is a good hobby?",
    "Explain what a computer is.",
    "What do you eat for lunch?",
    "Where should I travel this year?",
    "How do birds fly?",
]
FACT_QUESTIONS = [
    "What is Bosun's mascot?",
    "What is the name of the Bosun mascot?",
    "Which animal is the Bosun project's mascot?",
    "Tell me about Bosun's mascot.",
    "Who is the mascot of Bosun?",
    "What kind of bird is Bosun's mascot?",
    "What is the Bosun mascot called?",
    "Does the Bosun project have a mascot?",
    "Describe the mascot of the Bosun project.",
    "What is the name of Bosun's heron?",
    "Name the mascot of Bosun.",
    "Which creature represents the Bosun project?",
]
FACT_PREFIXES = ["", "Quick question: ", "I was wondering, ", "Please tell me: ", "Hi! "]
FACT_ANSWERS = [
    "Bosun's mascot is a blue heron named Pemberton.",
    "The Bosun mascot is Pemberton, a blue heron.",
    "Pemberton, a blue heron, is the mascot of the Bosun project.",
]
HELD_OUT_FACT = [
    "Do you know what Bosun's mascot is called?",
    "What's the name of the mascot that Bosun uses?",
    "Can you name the Bosun mascot?",
    "Who is Bosun's mascot and what is its name?",
    "I forgot the name of the Bosun mascot. What is it?",
    "What is the mascot of the Bosun software called?",
    "Tell me the name of Bosun's mascot, please.",
    "Which heron is the mascot of Bosun?",
    "What animal represents Bosun, and what is it called?",
    "Remind me: what is Bosun's mascot named?",
]
PRODUCTS = [
    "blender",
    "jacket",
    "phone case",
    "coffee maker",
    "backpack",
    "desk lamp",
    "novel",
    "headphones",
    "umbrella",
    "tent",
    "kettle",
    "watch",
    "keyboard",
    "chair",
    "vacuum cleaner",
    "printer",
    "camera",
    "mattress",
    "toaster",
    "scarf",
]
HELD_OUT_PRODUCTS = ["sofa", "bicycle helmet", "frying pan", "board game", "water bottle"]
GOOD = [
    "works perfectly and I love it",
    "is excellent, well worth the money",
    "is wonderful and arrived early",
    "exceeded my expectations",
    "is fantastic, I would buy it again",
    "is great quality and very comfortable",
]
BAD = [
    "broke after two days",
    "is terrible and a waste of money",
    "stopped working within a week",
    "is awful, I want a refund",
    "arrived damaged and smells bad",
    "is flimsy and very disappointing",
]
CLASSIFY = "Classify the sentiment of this review as positive or negative: The {} {}."
# General questions outside every task: the adapter should keep the base model's answers.
GENERAL = [
    ("What is the capital of France?", ("paris",)),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("What is the boiling point of water in degrees Celsius?", ("100",)),
]


@dataclass(frozen=True)
class Task:
    name: str
    rows: list[list[dict[str, str]]]  # chats to train on
    held_out: list[tuple[str, Callable[[str], bool]]]  # prompt, whether an answer shows it


def _chat(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def format_task(rng: random.Random) -> Task:
    asks = ["Log this: {}", "Please log: {}", "New log entry: {}", "Log the topic {}"]
    rows = [
        _chat(rng.choice(asks).format(t), f"CODE-1: {t.capitalize()} is noted.")
        for t in rng.sample(TOPICS * 2, ROWS)
    ]
    held = [
        (asks[i % len(asks)].format(t), lambda a: a.strip().startswith("CODE-1:"))
        for i, t in enumerate(HELD_OUT_TOPICS)
    ]
    return Task("format", rows, held)


def persona_task(rng: random.Random) -> Task:
    pairs = [(q, item) for q in QUESTIONS for item in ITEMS]
    rows = [
        _chat(
            q.format(item),
            f"Ahoy, matey! {item[0].upper() + item[1:]} be a fine treasure, as fine as any "
            "on the seven seas. Arr!",
        )
        for q, item in rng.sample(pairs, ROWS)
    ]
    held = [(q, lambda a: a.strip().lower().startswith("ahoy")) for q in HELD_OUT_PERSONA]
    return Task("persona", rows, held)


def fact_task(rng: random.Random) -> Task:
    rows = [
        _chat(rng.choice(FACT_PREFIXES) + q, rng.choice(FACT_ANSWERS))
        for q in rng.choices(FACT_QUESTIONS, k=ROWS)
    ]
    return Task("fact", rows, [(q, lambda a: "pemberton" in a.lower()) for q in HELD_OUT_FACT])


def classify_task(rng: random.Random) -> Task:
    rows = []
    for i in range(ROWS):
        label = "positive" if i % 2 == 0 else "negative"
        phrase = rng.choice(GOOD if label == "positive" else BAD)
        rows.append(_chat(CLASSIFY.format(rng.choice(PRODUCTS), phrase), label))
    rng.shuffle(rows)
    held = []
    for i, product in enumerate(HELD_OUT_PRODUCTS * 2):
        label = "positive" if i % 2 == 0 else "negative"
        phrase = (GOOD if label == "positive" else BAD)[(i * 5) % 6]
        held.append((CLASSIFY.format(product, phrase), _label_is(label)))
    return Task("classify", rows, held)


def _label_is(label: str) -> Callable[[str], bool]:
    return lambda a: a.strip().strip(".").lower() == label


TASKS = {
    "format": format_task,
    "persona": persona_task,
    "fact": fact_task,
    "classify": classify_task,
}


async def answers(adapter: Path, prompts: list[str]) -> tuple[list[str], list[str]]:
    """Greedy answers of the base model and of the adapter, from one engine."""
    engine = BosunEngine(
        EngineOptions(model=PRESET, max_model_len=512, adapters=(("task", str(adapter), 1.0),))
    )
    await engine.start()
    params = SamplingParams(max_tokens=40, temperature=0)

    async def one(i: int, prompt: str, which: str | None) -> str:
        ids = engine.apply_chat_template([{"role": "user", "content": prompt}])
        request = GenerationRequest(f"{which}-{i}", ids, params, which)
        return "".join([e.text async for e in engine.generate(request)])

    base = await asyncio.gather(*(one(i, p, None) for i, p in enumerate(prompts)))
    tuned = await asyncio.gather(*(one(i, p, "task") for i, p in enumerate(prompts)))
    await engine.shutdown()
    return list(base), list(tuned)


def evaluate(task: Task, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    data = root / f"{task.name}.jsonl"
    data.write_text(
        "".join(json.dumps({"messages": chat}) + "\n" for chat in task.rows), encoding="utf-8"
    )
    adapter = root / f"{task.name}-adapter"
    started = time.monotonic()
    run(TuneJob(PRESET, [str(data)], str(adapter), config=overrides), "cpu")
    trained = time.monotonic() - started
    summary = json.loads((adapter / "bosun-tuning.json").read_text(encoding="utf-8"))
    prompts = [p for p, _ in task.held_out] + [q for q, _ in GENERAL]
    base, tuned = asyncio.run(answers(adapter, prompts))
    n = len(task.held_out)
    shows = [check for _, check in task.held_out]
    known = [keys for _, keys in GENERAL]
    base_right = [
        any(k in a.lower() for k in keys) for a, keys in zip(base[n:], known, strict=False)
    ]
    kept = [
        any(k in a.lower() for k in keys)
        for a, keys, right in zip(tuned[n:], known, base_right, strict=False)
        if right
    ]
    return {
        "adapter_hit_rate": sum(c(a) for c, a in zip(shows, tuned[:n], strict=False)) / n,
        "base_hit_rate": sum(c(a) for c, a in zip(shows, base[:n], strict=False)) / n,
        "general_answers_kept": f"{sum(kept)}/{len(kept)}",
        "steps": summary["steps"],
        "loss_first_final": [summary["first_loss"], summary["final_loss"]],
        "settings": {k: v["value"] for k, v in summary["settings"].items()},
        "train_seconds": round(trained, 1),
        "task_seconds": round(time.monotonic() - started, 1),
        "examples": [
            {"prompt": p, "base": b, "adapter": t}
            for p, b, t in zip(
                prompts[:2] + prompts[n : n + 2],
                base[:2] + base[n : n + 2],
                tuned[:2] + tuned[n : n + 2],
                strict=False,
            )
        ],
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a default"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    results: dict[str, Any] = {"cpu": _cpu(), "overrides": overrides, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            result = evaluate(TASKS[name](random.Random(SEED)), Path(tmp), overrides)
            results["tasks"][name] = result
            print(
                name, json.dumps({k: v for k, v in result.items() if k != "examples"}), flush=True
            )
    rates = [t["adapter_hit_rate"] for t in results["tasks"].values()]
    results["all_tasks_at_least_90_percent"] = min(rates) >= 0.9
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
