"""What a model's chat template can render, found once at load by rendering small probe
conversations through it.

Templates differ in ways a server must know before it hands them a conversation: Gemma 2's
refuses a system message, Llama 3.1's refuses two tool calls in one assistant message,
Phi-3.5's silently drops tool results, SmolLM2's has no tool section at all. Reading the
Jinja source for keywords guesses; rendering a probe and looking for its marks in the
output knows. The serving layer shapes each conversation to what the template can do
(:mod:`bosun.serving.conversation`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import jinja2

from bosun.engine.client import InvalidRequestError, TemplateAbilities

__all__ = ["Render", "probe", "render"]

log = logging.getLogger(__name__)

Render = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str]
"""Renders messages (and tools, or ``None``) to the prompt's text, generation prompt added."""


def render(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> str:
    """The prompt's text from the tokenizer's chat template, generation prompt added. A
    template that refuses the conversation (``raise_exception`` in its Jinja: roles out of
    order, say) fails the request, naming ``messages``; it is not the server's fault."""
    try:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=False
        )
    except jinja2.TemplateError as exc:
        raise InvalidRequestError(
            f"the model's chat template refused the conversation: {exc}", "messages"
        ) from None
    return str(text)


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "probe",
            "parameters": {"type": "object", "properties": {"probe": {"type": "string"}}},
        },
    }


def _call(index: int) -> dict[str, Any]:
    # Ids of nine letters and digits: Mistral's templates refuse any other.
    return {
        "id": f"probe{index:04d}",
        "type": "function",
        "function": {"name": f"probe_fn_{index}", "arguments": {"probe": f"probe-arg-{index}"}},
    }


def _round(calls: int) -> tuple[list[dict[str, Any]], list[str]]:
    """A user question, an assistant message with ``calls`` calls, their results; and the
    marks each of them leaves in a faithful rendering."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "probe-question"},
        {"role": "assistant", "content": "", "tool_calls": [_call(i) for i in range(calls)]},
    ]
    marks = []
    for i in range(calls):
        messages.append(
            {"role": "tool", "tool_call_id": f"probe{i:04d}", "content": f"probe-result-{i}"}
        )
        marks += [f"probe_fn_{i}", f"probe-arg-{i}", f"probe-result-{i}"]
    return messages, marks


def _shows(render: Render, messages: list[dict[str, Any]], tools: Any, marks: list[str]) -> bool:
    try:
        text = render(messages, tools)
    except Exception as exc:  # a template may raise anything: it cannot render this
        log.debug("chat template probe: %s", exc)
        return False
    return all(mark in text for mark in marks)


def probe(render: Render) -> TemplateAbilities:
    """What ``render``'s template does with a system message, tools, calls and results."""
    one, one_marks = _round(1)
    two, two_marks = _round(2)
    tools = [_tool("probe_fn_0"), _tool("probe_fn_1")]
    question = [{"role": "user", "content": "probe-question"}]
    system = [{"role": "system", "content": "probe-system"}]
    calls = _shows(render, one, tools, one_marks)
    shows_system = _shows(render, [*system, *question], None, ["probe-system"])
    return TemplateAbilities(
        tools=_shows(render, question, tools, ["probe_fn_1"]),
        tool_calls=calls,
        parallel_calls=_shows(render, two, tools, two_marks),
        system=shows_system,
        system_mid_conversation=(
            _shows(render, [*system, *one], tools, ["probe-system"]) if calls else shows_system
        ),
    )
