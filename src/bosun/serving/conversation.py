"""A chat request's messages as the model's chat template can take them.

What a template can render was probed when the model loaded
(:class:`~bosun.engine.chat_template.TemplateAbilities`); the conversation is shaped to it:

- **Native tools** (a template that renders tool definitions, calls and results: Qwen2.5,
  Llama 3.x, Mistral): the tools go in ``tools=``, calls and results in Hugging Face's
  message shape (``tool_calls`` with arguments as an object, ``role: "tool"`` with
  ``tool_call_id``). Call ids are shown as nine letters and digits, the same for a call
  and its result (Mistral's templates refuse any other id). A template that takes one
  call per assistant message (Llama 3.x) gets parallel calls as consecutive rounds, each
  call followed by its result.
- **Tools as text** (any other template: SmolLM2, Gemma 2, Phi-3.5, the DeepSeek R1
  distills): the tools go in the system prompt in Hermes' format (:data:`TOOL_PROMPT`),
  earlier calls in ``<tool_call>`` tags in the assistant's text, results in
  ``<tool_response>`` tags in a user turn (the results of one round, and a user message
  right after them, in one turn: templates that insist on alternating roles accept it).
- A template that refuses a system message (Gemma 2), or drops one from a conversation
  that ends in a tool round (Mistral's shows it only with a last user message), gets the
  system text at the top of the first user message. ``developer`` messages are system
  messages.

Every ``tool`` message must answer a call made earlier in the conversation (400 otherwise).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from bosun.engine.client import TemplateAbilities
from bosun.serving.errors import APIError
from bosun.serving.protocol import ChatCompletionRequest, ChatMessage
from bosun.serving.tools import ToolMode

__all__ = ["TOOL_PROMPT", "prompt_messages"]

TOOL_PROMPT = """You may call functions to answer. The functions, as JSON schemas:
<tools>
{tools}
</tools>
To call one, answer with its name and arguments as JSON inside tags, one call per tag:
<tool_call>
{{"name": "<function name>", "arguments": {{<arguments>}}}}
</tool_call>
A function's result comes back inside <tool_response></tool_response>."""

Message = dict[str, Any]


def prompt_messages(
    body: ChatCompletionRequest, mode: ToolMode, template: TemplateAbilities
) -> tuple[list[Message], list[Message] | None]:
    """The messages for the chat template and the ``tools`` argument it gets."""
    native = template.tools and template.tool_calls
    rounds = _checked(body)
    tools = [t.model_dump(exclude_none=True) for t in body.tools or []]
    if mode == "none":
        tools = []
    if native:
        messages = [_native(m, text, calls) for m, text, calls in rounds]
        if not template.parallel_calls:
            messages = _one_call_per_turn(messages)
    else:
        messages = _merged_users([_as_text(m, text, calls) for m, text, calls in rounds])
        if tools:
            listed = "\n".join(json.dumps(t["function"]) for t in tools)
            messages = _with_system(messages, TOOL_PROMPT.format(tools=listed))
            tools = []
    ends_in_tool_round = bool(messages) and messages[-1]["role"] != "user"
    if not template.system or (ends_in_tool_round and not template.system_mid_conversation):
        messages = _system_folded(messages)
    return messages, tools or None


def _checked(body: ChatCompletionRequest) -> list[tuple[ChatMessage, str, list[Message]]]:
    """Each message with its text and its calls, checked: content parts are text, calls
    name a function with JSON-object arguments, tool results answer an earlier call."""
    called: set[str] = set()
    out = []
    for i, m in enumerate(body.messages):
        try:
            text = m.text()
        except ValueError as exc:
            raise APIError(400, f"messages[{i}].content: {exc}", param="messages") from None
        if m.role == "tool" and (not m.tool_call_id or m.tool_call_id not in called):
            raise APIError(
                400,
                f"messages[{i}].tool_call_id: {m.tool_call_id!r} answers no tool call made "
                "by an earlier assistant message",
                param="messages",
            )
        calls = _history_calls(m, i)
        called |= {c["id"] for c in calls}
        out.append((m, text, calls))
    return out


def _history_calls(m: ChatMessage, i: int) -> list[Message]:
    """An assistant message's earlier calls, checked: each has a function name and JSON
    arguments. A call without an id gets one (nothing can answer it, but a template may
    need one)."""
    calls = []
    for j, call in enumerate(m.tool_calls or []):
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        raw = fn.get("arguments", "{}") if isinstance(fn, dict) else None
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            arguments = None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise APIError(
                400,
                f"messages[{i}].tool_calls[{j}]: a call needs function.name and "
                "function.arguments (a JSON object, as text)",
                param="messages",
            )
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"unanswerable-{i}-{j}"
        calls.append({"id": call_id, "name": name, "arguments": arguments})
    return calls


def _role(m: ChatMessage) -> str:
    return "system" if m.role == "developer" else m.role


def _template_id(call_id: str) -> str:
    """Nine letters and digits, the same for a call and its result."""
    if re.fullmatch(r"[A-Za-z0-9]{9}", call_id):
        return call_id
    return hashlib.sha256(call_id.encode()).hexdigest()[:9]


def _native(m: ChatMessage, text: str, calls: list[Message]) -> Message:
    """Hugging Face's message shape for templates that render tools."""
    out: Message = {"role": _role(m), "content": text}
    if m.name:
        out["name"] = m.name
    if calls:
        out["tool_calls"] = [
            {
                "id": _template_id(c["id"]),
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = _template_id(m.tool_call_id or "")
    return out


def _one_call_per_turn(messages: list[Message]) -> list[Message]:
    """An assistant message with several calls and the results after it, as one round per
    call: the call, then its result. Results answering none of them keep their place."""
    out: list[Message] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        calls = m.get("tool_calls") or []
        if len(calls) < 2:
            out.append(m)
            i += 1
            continue
        j = i + 1
        results: dict[str, Message] = {}
        strays = []
        while j < len(messages) and messages[j]["role"] == "tool":
            result = messages[j]
            if result["tool_call_id"] in results or not any(
                c["id"] == result["tool_call_id"] for c in calls
            ):
                strays.append(result)
            else:
                results[result["tool_call_id"]] = result
            j += 1
        for k, call in enumerate(calls):
            out.append({**m, "content": m["content"] if k == 0 else "", "tool_calls": [call]})
            if call["id"] in results:
                out.append(results[call["id"]])
        out += strays
        i = j
    return out


def _as_text(m: ChatMessage, text: str, calls: list[Message]) -> Message:
    """Calls and results as Hermes' tags, for templates that know only text."""
    if m.role == "tool":
        return {"role": "user", "content": f"<tool_response>\n{text}\n</tool_response>"}
    out: Message = {"role": _role(m), "content": text}
    if m.name:
        out["name"] = m.name
    if calls:
        tags = "\n".join(
            "<tool_call>\n"
            + json.dumps({"name": c["name"], "arguments": c["arguments"]})
            + "\n</tool_call>"
            for c in calls
        )
        out["content"] = f"{text}\n{tags}".strip()
    return out


def _merged_users(messages: list[Message]) -> list[Message]:
    """Adjacent user turns (a round's tool results, a question after them) as one."""
    out: list[Message] = []
    for m in messages:
        if out and m["role"] == "user" and out[-1]["role"] == "user":
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{m['content']}"}
        else:
            out.append(m)
    return out


def _with_system(messages: list[Message], text: str) -> list[Message]:
    """``text`` appended to the system message, or as one at the top."""
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _system_folded(messages: list[Message]) -> list[Message]:
    """System messages' text at the top of the first user message (or as the first user
    message, when there is none before the first answer)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        return [{**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]
