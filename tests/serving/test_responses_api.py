"""The Responses API through the official openai client: text and message input,
instructions, function tools, stored responses continued by previous_response_id,
retrieved and deleted, streamed as the documented events; bad input named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bosun.engine.fake import TEXT, FakeEngine
from bosun.serving.app import ServeSettings
from tests.serving.server import running_server

MODEL = "fake-model"
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with running_server(FakeEngine(max_model_len=512)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def test_text_in_text_out_with_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Say something.",
        instructions="Be brief.",
        max_output_tokens=5,
        temperature=0,  # the fake starts its text where a seed says otherwise
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.output_text == " ".join(TEXT[:5])
    assert response.status == "incomplete"  # cut by max_output_tokens
    assert response.incomplete_details and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage and response.usage.output_tokens == 5
    assert response.instructions == "Be brief."


def test_a_stored_response_is_continued_retrieved_and_deleted(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ana.", max_output_tokens=3)
    second = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Who am I?"}]}],
        previous_response_id=first.id,
        max_output_tokens=3,
    )
    # The fake's prompt tokens grow with the conversation: the first turn was in it.
    assert second.usage and first.usage
    assert second.usage.input_tokens > first.usage.input_tokens + 3
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(first.id).output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="Again?", previous_response_id=first.id)
    assert "previous_response_id" in str(info.value)
    unstored = client.responses.create(model=MODEL, input="x", store=False, max_output_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_streamed_events_in_the_documented_order(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=MODEL, input="Hi.", stream=True, max_output_tokens=4, temperature=0
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["The", " quick", " brown", " fox"]  # token by token, as generated
    text = "".join(deltas)
    assert text == " ".join(TEXT[:4])
    done = events[-1].response  # type: ignore[union-attr]
    assert client.responses.retrieve(done.id).output_text == text  # stored, as streamed
    # The client's helper wants a completed response: a model that ends its answer.
    with running_server(FakeEngine(answer="Hello there.")) as url:
        ending = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        with ending.responses.stream(model=MODEL, input="Hi.") as stream:
            final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "Hello there."


def test_function_calls_and_their_outputs_round_trip(tmp_path: Path) -> None:
    """A model that calls: the output is a function_call item; its output goes back as a
    function_call_output item on the stored conversation. The store is a file here."""
    settings = ServeSettings(responses_store=tmp_path / "responses.db")
    with running_server(FakeEngine(answer=CALL), settings) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        response = client.responses.create(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER], tool_choice="auto"
        )
        (call,) = [o for o in response.output if o.type == "function_call"]
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        follow = client.responses.create(
            model=MODEL,
            previous_response_id=response.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
            tools=[WEATHER],
            tool_choice="none",
        )
        assert follow.output_text.startswith("<tool_call>")  # the fake says its line again
        streamed = list(
            client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER], stream=True)
        )
        kinds = [e.type for e in streamed]
        assert "response.function_call_arguments.done" in kinds
    assert (tmp_path / "responses.db").stat().st_size > 0


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"input": [{"type": "image", "url": "x"}]}, "input", "input[0].type"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input", "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input",
            "input[0].content",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "nope", "output": "1"}]},
            "messages",
            "answers no tool call",
        ),
        (
            {"input": "x", "tools": [{"type": "function", "name": "f", "parameters": {"type": 5}}]},
            "tools.parameters",
            "not a JSON Schema",
        ),
        (
            {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "g"}},
            "input",
            "not among the tools offered",
        ),
        ({"input": "x", "previous_response_id": "resp_none"}, "previous_response_id", "no stored"),
    ],
)
def test_bad_input_is_named(
    client: openai.OpenAI, body: dict[str, Any], param: str, message: str
) -> None:
    url = str(client.base_url).rstrip("/")
    r = httpx.post(f"{url}/responses", json={"model": MODEL, **body})
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert error["param"] == param and message in error["message"], error
