"""Teach SmolLM2-135M-Instruct when to call a tool, with `bosun tune`, and measure it.

The base model, shown a `get_weather` tool under `tool_choice: "auto"`, answers in prose:
it was never taught a call format. This writes a few dozen chats in which weather
questions are answered with a Hermes `<tool_call>` (the format Bosun's prompt asks for
on templates without tools) and other questions with text, trains a LoRA adapter on them
with `bosun tune`, and asks held-out questions (cities and wordings never seen in
training) of the base model and the adapter side by side, from one `bosun serve`:

- hit rate: weather questions answered with a valid `get_weather` call;
- false calls: other questions answered with a call.

    .venv/bin/python examples/09-tool-calling/run.py --json examples/09-tool-calling/result.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.serving.server import running_server  # noqa: E402

from bosun.engine.client import TemplateAbilities  # noqa: E402
from bosun.engine.engine import BosunEngine, EngineOptions  # noqa: E402
from bosun.serving.conversation import prompt_messages  # noqa: E402
from bosun.serving.protocol import ChatCompletionRequest  # noqa: E402

PRESET = "smollm2-135m-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TRAIN_CITIES = [
    "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Prague", "Warsaw",
    "Dublin", "Oslo", "Helsinki", "Athens", "Cairo", "Nairobi", "Tokyo", "Seoul",
]  # fmt: skip
TRAIN_FORMS = [
    "What is the weather in {}?",
    "Is it raining in {} right now?",
    "How warm is it in {} today?",
]
TRAIN_OTHER = [
    ("What is 2 plus 2?", "2 plus 2 is 4."),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet."),
    ("Tell me a joke.", "Why did the scarecrow win an award? He was outstanding in his field."),
    ("What is Python?", "Python is a programming language."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many days are in a week?", "A week has seven days."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("Translate hello to French.", "Hello in French is bonjour."),
    ("What do bees make?", "Bees make honey."),
    ("Spell cat backwards.", "Cat backwards is tac."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]
# Never seen in training: other cities, other wordings.
HELD_OUT_WEATHER = [
    "What's the weather like in Lima?",
    "Will I need an umbrella in Toronto today?",
    "Tell me the current weather in Sydney.",
    "How cold is it in Moscow?",
    "Is it sunny in Mumbai?",
    "What is the temperature in Chicago right now?",
    "Weather in Bangkok, please.",
    "Is it snowing in Zurich?",
    "How is the weather in Istanbul?",
    "What are the conditions in Santiago today?",
]
HELD_OUT_OTHER = [
    "What is 3 times 3?",
    "Who painted the Mona Lisa?",
    "Name a fruit that is yellow.",
    "What is the capital of Japan?",
    "How many hours are in a day?",
]


def chat(question: str, answer: str) -> dict[str, Any]:
    """A training row as the server renders it for SmolLM2: the tools in the system
    prompt (Bosun's Hermes prompt), then the question and the answer."""
    body = ChatCompletionRequest.model_validate(
        {"model": PRESET, "messages": [{"role": "user", "content": question}], "tools": [WEATHER]}
    )
    messages, _ = prompt_messages(body, "auto", TemplateAbilities())
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def call(city: str) -> str:
    arguments = json.dumps({"name": "get_weather", "arguments": {"city": city}})
    return f"<tool_call>\n{arguments}\n</tool_call>"


def write_data(path: Path) -> int:
    rows = [chat(f.format(c), call(c)) for c in TRAIN_CITIES for f in TRAIN_FORMS]
    rows += [chat(q, a) for q, a in TRAIN_OTHER] * 2  # as many text answers as calls, about
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return len(rows)


def called(client: openai.OpenAI, model: str, question: str) -> bool:
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
        temperature=0,
        max_tokens=48,
    )
    calls = answer.choices[0].message.tool_calls or []
    return any(
        c.function.name == "get_weather"
        and isinstance(json.loads(c.function.arguments).get("city"), str)
        for c in calls
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, adapter = Path(tmp) / "train.jsonl", Path(tmp) / "adapter"
        rows = write_data(data)
        tune = [sys.executable, "-m", "bosun.cli.main", "tune", "--model", PRESET]
        tune += ["--data", str(data), "--output", str(adapter)]
        tune += ["--set", f"max_steps={args.steps}", "--set", "learning_rate=0.001"]
        tune += ["--device", "cpu"]
        subprocess.run(tune, check=True)
        engine = BosunEngine(
            EngineOptions(
                model=PRESET,
                max_model_len=2048,
                quantization="none",  # the adapter's own weights, exactly (docs/tuning.md)
                adapters=(("weather", str(adapter), 1.0),),
            )
        )
        result: dict[str, Any] = {"trainingRows": rows, "steps": args.steps}
        with running_server(engine) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            for model, key in ((PRESET, "base"), ("weather", "adapter")):
                hits = sum(called(client, model, q) for q in HELD_OUT_WEATHER)
                false = sum(called(client, model, q) for q in HELD_OUT_OTHER)
                result[key] = {
                    "hitRate": hits / len(HELD_OUT_WEATHER),
                    "hits": f"{hits}/{len(HELD_OUT_WEATHER)}",
                    "falseCalls": f"{false}/{len(HELD_OUT_OTHER)}",
                }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
