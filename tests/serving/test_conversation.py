"""Conversations with tool calls, rendered through each preset family's real chat template.

The templates are the models' own, as llama.cpp keeps them for its tests (fetched by
``make test``: constraints/templates.lock); SmolLM2's is read from its GGUF file. Each
family is probed as the engine probes it at load, the conversation is shaped by
:func:`prompt_messages` and rendered by the engine's :func:`render`: the same path a
request takes. A rendering that raises, drops a call or a result, or shows them out of
order fails here.
"""

from __future__ import annotations

import copy
import os
import re
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest

from bosun.catalog.presets import all_presets
from bosun.engine.chat_template import probe, render
from bosun.engine.client import InvalidRequestError, TemplateAbilities
from bosun.engine.loader import load_tokenizer, resolve_model
from bosun.serving.conversation import prompt_messages
from bosun.serving.errors import APIError
from bosun.serving.protocol import ChatCompletionRequest
from tests.conftest import ROOT
from tests.serving.test_tools import WEATHER

TEMPLATES = Path(os.environ.get("BOSUN_CHAT_TEMPLATES", ROOT / ".cache" / "chat-templates"))

# Each preset family and the published template it uses. Mistral-7B-Instruct-v0.3's own
# template is not among llama.cpp's; Mistral-Nemo's has the same tool format
# ([AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS], ids of nine characters).
FAMILIES = {
    "qwen2.5": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "llama-3.1": "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "llama-3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "llama-3.3": "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "mistral": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "gemma-2": "google-gemma-2-2b-it.jinja",
    "phi-3.5": "microsoft-Phi-3.5-mini-instruct.jinja",
    "deepseek-r1-distill-qwen": "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "deepseek-r1-distill-llama": "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "qwen3": "Qwen-Qwen3-0.6B.jinja",
    "smollm2": None,  # from the GGUF
}
# Presets the Bosun engine serves whose family's template is not available offline (the
# others are served by vLLM, which renders their conversations itself): not checked here.
UNCHECKED = {"phi-4", "phi-4-mini-instruct", "gemma-3-270m-it", "gemma-3-1b-it"}

CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _call(call_id: str, name: str, city: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": f'{{"city": "{city}"}}'},
    }


# Two rounds: two parallel calls and their results, an answer, a new question, one call.
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How warm is it in the two capitals?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            _call("call_a1", "get_weather", "Paris"),
            _call("call_b2", "get_weather", "Rome"),
        ],
    },
    {"role": "tool", "tool_call_id": "call_a1", "content": "celsius=21"},
    {"role": "tool", "tool_call_id": "call_b2", "content": "celsius=25"},
    {"role": "assistant", "content": "Twenty-one and twenty-five."},
    {"role": "user", "content": "And what time is it there in Japan?"},
    {"role": "assistant", "content": None, "tool_calls": [_call("call_c3", "get_time", "Tokyo")]},
    {"role": "tool", "tool_call_id": "call_c3", "content": "clock=09:00"},
]
# What a faithful rendering shows, in this order (the first round's calls before their
# results, or each call before its result where the template takes one call per turn).
IN_ORDER = [
    "How warm is it in the two capitals?",
    "Paris",
    "Rome",
    "celsius=21",
    "celsius=25",
    "Twenty-one and twenty-five.",
    "And what time is it there in Japan?",
    "Tokyo",
    "clock=09:00",
]


@cache
def _tokenizer() -> Any:
    return load_tokenizer(resolve_model("smollm2-135m-instruct"))


def _template(family: str) -> str:
    name = FAMILIES[family]
    if name is None:
        return str(_tokenizer().chat_template)
    path = TEMPLATES / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make .cache/chat-templates/.fetched` fetches it")
    return path.read_text(encoding="utf-8")


def _renderer(family: str) -> Any:
    tokenizer = copy.copy(_tokenizer())
    tokenizer.chat_template = _template(family)
    return partial(render, tokenizer)


def _request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", **fields})


def _shown(family: str, **fields: Any) -> tuple[TemplateAbilities, str]:
    rendering = _renderer(family)
    abilities = probe(rendering)
    messages, tools = prompt_messages(_request(**fields), "auto", abilities)
    return abilities, rendering(messages, tools)


def _assert_in_order(text: str, marks: list[str]) -> None:
    at = 0
    for mark in marks:
        found = text.find(mark, at)
        assert found >= 0, f"{mark!r} missing after position {at} in:\n{text}"
        at = found + len(mark)


def test_every_chat_preset_has_its_family_checked() -> None:
    chat = {p.name for p in all_presets() if "bosun" in p.runtimes}
    covered = {
        name for name in chat for family in FAMILIES if name.startswith(family.split(".")[0])
    }
    assert chat - covered == UNCHECKED, "a new preset family: add its template to FAMILIES"
    print(f"not checked (no published template offline): {sorted(UNCHECKED)}")


@pytest.mark.parametrize("family", FAMILIES)
def test_two_tool_rounds_render_in_each_family(family: str) -> None:
    abilities, text = _shown(family, messages=CONVERSATION, tools=[WEATHER, CLOCK])
    one_per_turn = abilities.tools and abilities.tool_calls and not abilities.parallel_calls
    order = IN_ORDER.copy()
    if one_per_turn:
        order[2:4] = ["celsius=21", "Rome"]
    _assert_in_order(text, order)
    assert "You are terse." in text
    for tool in (WEATHER, CLOCK):  # offered: in the template's tool section or the prompt
        assert tool["function"]["name"] in text and tool["function"]["description"] in text
    if not (abilities.tools and abilities.tool_calls):  # calls shown as Hermes' tags
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in text
        assert "<tool_response>\nclock=09:00\n</tool_response>" in text


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("qwen2.5", TemplateAbilities(tools=True, tool_calls=True, parallel_calls=True)),
        ("llama-3.1", TemplateAbilities(tools=True, tool_calls=True, parallel_calls=False)),
        # Shows the system message only when the conversation ends with a user message.
        (
            "mistral",
            TemplateAbilities(
                tools=True, tool_calls=True, parallel_calls=True, system_mid_conversation=False
            ),
        ),
        ("gemma-2", TemplateAbilities(system=False, system_mid_conversation=False)),
        ("phi-3.5", TemplateAbilities()),  # renders no tool results: they are dropped
        ("smollm2", TemplateAbilities()),
    ],
)
def test_probe_finds_what_each_template_renders(family: str, expected: TemplateAbilities) -> None:
    assert probe(_renderer(family)) == expected


def test_mistral_sees_call_ids_of_nine_characters_paired_with_results() -> None:
    _, text = _shown("mistral", messages=CONVERSATION, tools=[WEATHER])
    calls = re.findall(r'"id": "([A-Za-z0-9]+)"', text)
    results = re.findall(r'"call_id": "([A-Za-z0-9]+)"', text)
    assert len(calls) == 3 and all(len(i) == 9 for i in calls)
    assert results == calls and len(set(calls)) == 3


def test_llama_gets_parallel_calls_as_one_call_per_round() -> None:
    _, text = _shown("llama-3.1", messages=CONVERSATION, tools=[WEATHER, CLOCK])
    # Each call is its own assistant turn, its result right after it.
    _assert_in_order(text, ['"Paris"', "celsius=21", "<|eot_id|>", '"Rome"', "celsius=25"])
    assert text.count('"name": "get_weather"') == 3  # the tool's definition and two calls


def test_gemma_gets_the_system_text_in_the_first_user_turn() -> None:
    _, text = _shown("gemma-2", messages=CONVERSATION, tools=[WEATHER])
    first = text.split("<start_of_turn>user\n", 1)[1]
    assert first.startswith("You are terse.")
    # The two results of one round share one user turn (Gemma insists on alternation).
    between = text[text.index("celsius=21") : text.index("celsius=25")]
    assert "<start_of_turn>" not in between


def test_developer_messages_are_system_messages() -> None:
    messages = [{"role": "developer", "content": "Answer in French."}, *CONVERSATION[1:2]]
    _, text = _shown("qwen2.5", messages=messages)
    assert "<|im_start|>system\nAnswer in French." in text


def test_a_conversation_the_template_refuses_is_the_requests_error() -> None:
    rendering = _renderer("gemma-2")
    two_answers = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "assistant", "content": "again"},
    ]
    messages, tools = prompt_messages(_request(messages=two_answers), "auto", probe(rendering))
    with pytest.raises(InvalidRequestError) as caught:
        rendering(messages, tools)
    assert caught.value.param == "messages" and "must alternate" in str(caught.value)


def test_tool_choice_none_hides_the_tools() -> None:
    body = _request(messages=CONVERSATION[:2], tools=[WEATHER], tool_choice="none")
    for abilities in (TemplateAbilities(), TemplateAbilities(tools=True, tool_calls=True)):
        messages, tools = prompt_messages(body, "none", abilities)
        assert tools is None
        assert messages == [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "How warm is it in the two capitals?"},
        ]


@pytest.mark.parametrize(
    ("history", "field"),
    [
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], "messages[1].tool_call_id"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}],
            None,  # arguments default to {}: accepted
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}],
            "messages[1].tool_calls[0]",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ],
            "messages[1].tool_calls[0]",
        ),
    ],
)
def test_bad_history_is_named(history: list[dict[str, Any]], field: str | None) -> None:
    body = _request(messages=[{"role": "user", "content": "q"}, *history])
    if field is None:
        prompt_messages(body, "auto", TemplateAbilities())
        return
    with pytest.raises(APIError) as caught:
        prompt_messages(body, "auto", TemplateAbilities())
    assert str(caught.value).startswith(field)
