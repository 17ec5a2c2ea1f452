"""Do required tool calls keep to their tools' schemas, and what does holding them cost?

Fifty function tools of varied schemas (enums, nested objects, arrays with bounds,
integers and numbers with bounds, required and optional fields, strings with patterns and
lengths) are offered one at a time to SmolLM2-135M-Instruct behind a real `bosun serve`,
with `tool_choice` naming the tool. Reported: the share of calls whose arguments validate
against the tool's own schema (target 100%), calls that could not be made (a schema the
grammar engine refused, or max_tokens reached), and the speed of the held calls against
unheld answers to the same prompt, of the same length, in the same run (`tool_choice:
"auto"`, which shows the tool the same way but holds nothing; a warm-up request puts
the tools' system prompt in the prefix cache first, so neither timed request pays for it).

    .venv/bin/python benchmarks/tool_calls.py --json benchmarks/results/tool_calls.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name  # noqa: E402 - benchmarks/machine.py
from tests.serving.server import running_server  # noqa: E402

from bosun.engine.engine import BosunEngine, EngineOptions  # noqa: E402

MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 160


def _schemas() -> list[tuple[str, dict[str, Any]]]:
    """Fifty parameter schemas, ten shapes in five variations each."""
    out: list[tuple[str, dict[str, Any]]] = []
    for v in range(5):
        out += [
            (
                f"set_unit_{v}",
                {
                    "type": "object",
                    "properties": {
                        "unit": {"type": "string", "enum": ["c", "f", "k"][: v % 3 + 1]}
                    },
                    "required": ["unit"],
                },
            ),
            (
                f"book_table_{v}",
                {
                    "type": "object",
                    "properties": {
                        "people": {"type": "integer", "minimum": 1, "maximum": 8 + v},
                        "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                    },
                    "required": ["people", "time"],
                },
            ),
            (
                f"move_{v}",
                {
                    "type": "object",
                    "properties": {
                        "to": {
                            "type": "object",
                            "properties": {
                                "x": {"type": "number", "minimum": -10, "maximum": 10},
                                "y": {"type": "number", "minimum": -10, "maximum": 10},
                            },
                            "required": ["x", "y"],
                        },
                        "speed": {"type": "string", "enum": ["slow", "fast"]},
                    },
                    "required": ["to"],
                },
            ),
            (
                f"tag_items_{v}",
                {
                    "type": "object",
                    "properties": {
                        "tags": {
                            "type": "array",
                            "items": {"type": "string", "maxLength": 12},
                            "minItems": 1,
                            "maxItems": 3 + v,
                        }
                    },
                    "required": ["tags"],
                },
            ),
            (
                f"send_mail_{v}",
                {
                    "type": "object",
                    "properties": {
                        "to": {"type": "string", "maxLength": 40},
                        "subject": {"type": "string", "maxLength": 60},
                        "urgent": {"type": "boolean"},
                        "cc": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                    },
                    "required": ["to", "subject"],
                },
            ),
            (
                f"rate_{v}",
                {
                    "type": "object",
                    "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}},
                    "required": ["stars"],
                },
            ),
            (
                f"search_{v}",
                {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 50},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                        "sort": {"type": "string", "enum": ["new", "top", "old"]},
                    },
                    "required": ["query"],
                },
            ),
            (
                f"create_user_{v}",
                {
                    "type": "object",
                    "properties": {
                        "user": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "maxLength": 30},
                                "age": {"type": "integer", "minimum": 0, "maximum": 130},
                                "roles": {
                                    "type": "array",
                                    "items": {"type": "string", "enum": ["admin", "dev", "ops"]},
                                    "maxItems": 3,
                                },
                            },
                            "required": ["name"],
                        }
                    },
                    "required": ["user"],
                },
            ),
            (
                f"set_light_{v}",
                {
                    "type": "object",
                    "properties": {
                        "on": {"type": "boolean"},
                        "level": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                    "required": ["on"],
                },
            ),
            (
                f"convert_{v}",
                {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "number", "exclusiveMinimum": 0},
                        "from": {"type": "string", "enum": ["EUR", "USD", "JPY"]},
                        "to": {"type": "string", "enum": ["EUR", "USD", "JPY"]},
                    },
                    "required": ["amount", "from", "to"],
                },
            ),
        ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engine = BosunEngine(EngineOptions(model=MODEL, max_model_len=2048, max_num_seqs=1))
    valid = invalid = refused = cut = 0
    problems: list[str] = []
    held_tokens = held_s = free_tokens = free_s = 0.0
    with running_server(engine) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        for name, schema in _schemas():
            tool = {"type": "function", "function": {"name": name, "parameters": schema}}
            ask = [{"role": "user", "content": f"Please use {name.rsplit('_', 1)[0]}."}]
            other = [{"role": "user", "content": f"Please use {name.rsplit('_', 1)[0]} now."}]
            # Both timed requests then find the same prefix (the tools' system prompt) in
            # the prefix cache: neither pays its prefill alone.
            client.chat.completions.create(
                model=MODEL,
                messages=other,  # type: ignore[arg-type]
                tools=[tool],  # type: ignore[list-item]
                tool_choice="auto",
                max_tokens=1,
            )
            start = time.perf_counter()
            try:
                answer = client.chat.completions.create(
                    model=MODEL,
                    messages=ask,  # type: ignore[arg-type]
                    tools=[tool],  # type: ignore[list-item]
                    tool_choice={"type": "function", "function": {"name": name}},
                    max_tokens=MAX_TOKENS,
                    temperature=0.7,
                    seed=1,
                )
            except openai.BadRequestError as exc:
                refused += 1
                problems.append(f"{name}: refused: {exc.message[:160]}")
                continue
            took = time.perf_counter() - start
            choice = answer.choices[0]
            tokens = answer.usage.completion_tokens if answer.usage else 0
            held_tokens += tokens
            held_s += took
            if choice.finish_reason != "tool_calls" or not choice.message.tool_calls:
                cut += 1
                problems.append(f"{name}: no call ({choice.finish_reason}, {tokens} tokens)")
                continue
            arguments = json.loads(choice.message.tool_calls[0].function.arguments)
            try:
                jsonschema.validate(arguments, schema)
                valid += 1
            except jsonschema.ValidationError as exc:
                invalid += 1
                problems.append(f"{name}: invalid: {exc.message[:160]} in {arguments}")
            # The same prompt (the tool shown, tool_choice auto) and the same number of
            # tokens, unheld, in the same run: what holding the call costs.
            start = time.perf_counter()
            free = client.chat.completions.create(
                model=MODEL,
                messages=other,  # type: ignore[arg-type]
                tools=[tool],  # type: ignore[list-item]
                tool_choice="auto",
                max_tokens=max(tokens, 1),
                temperature=0.7,
                seed=1,
                extra_body={"min_tokens": max(tokens, 1)},
            )
            free_s += time.perf_counter() - start
            free_tokens += free.usage.completion_tokens if free.usage else 0
    total = valid + invalid + refused + cut
    held_rate = held_tokens / held_s if held_s else 0.0
    free_rate = free_tokens / free_s if free_s else 0.0
    report = {
        "tools": total,
        "validCalls": valid,
        "invalidCalls": invalid,
        "refusedSchemas": refused,
        "noCall": cut,
        "validShareOfCallsMade": round(valid / (valid + invalid), 4) if valid + invalid else None,
        "heldTokensPerS": round(held_rate, 1),
        "unheldTokensPerS": round(free_rate, 1),
        "heldOverUnheld": round(held_rate / free_rate, 3) if free_rate else None,
        "problems": problems,
        "maxTokens": MAX_TOKENS,
        "cpu": cpu_name(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if invalid == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
