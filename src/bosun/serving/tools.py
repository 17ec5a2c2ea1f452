"""Tool calling for chat completions: what the model is shown, how it is held to a call,
and how its output becomes ``tool_calls``.

``tool_choice``:

- ``"none"``: the tools are not shown; the answer is text.
- ``"required"``, or a named function: decoding is constrained (the engine's structured
  output) to a JSON call, ``{"name": ..., "arguments": {...}}`` (an array of them when
  ``parallel_tool_calls``), whose arguments validate against that tool's ``parameters``.
- ``"auto"`` (the default when tools are given): the model decides; its text is parsed
  by its family's parser (:data:`PARSERS`). Text that only looks like a call but does not
  parse stays content: nothing is lost.

What the model is shown (the tools, earlier calls and their results) depends on its chat
template: :mod:`bosun.serving.conversation`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bosun.serving.protocol import ChatCompletionRequest, NamedToolChoice

__all__ = [
    "HOLDS",
    "PARSERS",
    "StreamHolder",
    "ToolCall",
    "ToolMode",
    "call_schema",
    "mode_of",
    "parse_constrained",
    "parse_hermes",
    "parse_llama3_json",
    "parse_mistral",
]

ToolMode = Literal["none", "auto", "required", "named"]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI sends it
    id: str = ""

    def wire(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return out if index is None else {"index": index, **out}


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def mode_of(body: ChatCompletionRequest) -> tuple[ToolMode, str | None]:
    """How the request wants tools used, and the one function it names (if it does)."""
    if not body.tools or body.tool_choice == "none":
        return "none", None
    if isinstance(body.tool_choice, NamedToolChoice):
        return "named", body.tool_choice.function.name
    if body.tool_choice == "required":
        return "required", None
    return "auto", None


def call_schema(body: ChatCompletionRequest, named: str | None) -> dict[str, Any]:
    """The JSON Schema the constrained output follows: one call (or with
    ``parallel_tool_calls`` an array of calls) of the named tool, or of any tool offered.
    Each tool's schema sits whole under ``$defs``, its own references rewritten to point
    there, so a schema that refers to itself (``#``, ``#/$defs/...``) still resolves."""
    calls = []
    defs: dict[str, Any] = {}
    for tool in body.tools or []:
        fn = tool.function
        if named is not None and fn.name != named:
            continue
        key = f"tool-{fn.name}"
        defs[key] = _rebased(_closed(fn.parameters or {"type": "object", "properties": {}}), key)
        calls.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": fn.name},
                    "arguments": {"$ref": f"#/$defs/{key}"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    one: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if body.parallel_tool_calls and named is None:
        one = {"type": "array", "items": one, "minItems": 1}
    return {**one, "$defs": defs}


def _rebased(schema: Any, key: str) -> Any:
    """``schema`` with its local references (``#...``) pointing into ``$defs/key``."""
    if isinstance(schema, list):
        return [_rebased(s, key) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _rebased(v, key) for k, v in schema.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = f"#/$defs/{key}{ref[1:]}"
    return out


def _closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others, unless it
    says otherwise (OpenAI's strict mode does the same): an open object lets a small model
    invent keys until its tokens run out. What is produced still validates against the
    tool's own schema."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _closed(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties", "not", "if", "then", "else"):
        if isinstance(out.get(key), dict):
            out[key] = _closed(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [_closed(s) for s in out[key]]
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: _closed(v) for k, v in out[key].items()}
    return out


def parse_constrained(text: str) -> list[ToolCall]:
    """The calls in a constrained answer (its grammar guarantees the shape)."""
    value = json.loads(text)
    items = value if isinstance(value, list) else [value]
    return [ToolCall(i["name"], json.dumps(i["arguments"]), _new_id()) for i in items]


_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_hermes(text: str, names: set[str]) -> tuple[str | None, list[ToolCall]]:
    """Hermes' ``<tool_call>{json}</tool_call>`` (Qwen2.5 and other ChatML models, and
    Bosun's prompt for templates without tools). A tag that does not hold a call of an
    offered tool is left in the content, as written."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _HERMES.finditer(text):
        call = _as_call(match.group(1), names)
        if call is None:
            continue
        kept.append(text[last : match.start()])
        last = match.end()
        calls.append(call)
    kept.append(text[last:])
    content = "".join(kept).strip()
    return (content or None) if calls else text, calls


def _as_call(raw: str, names: set[str]) -> ToolCall | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(str(value["name"]), json.dumps(arguments), _new_id())


def parse_llama3_json(text: str, names: set[str]) -> tuple[str | None, list[ToolCall]]:
    """Llama 3.1 and later: the whole answer is a call, ``{"name": ..., "parameters":
    {...}}`` (after ``<|python_tag|>`` when the template asks for it), several joined by
    ``;``. Anything else is content, as written."""
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if not body.startswith("{"):
        return text, []
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    at = 0
    while at < len(body):
        try:
            value, end = decoder.raw_decode(body, at)
        except ValueError:
            return text, []
        call = _as_call(json.dumps(value), names)
        if call is None:
            return text, []
        calls.append(call)
        at = end
        while at < len(body) and body[at] in " \n\t;":
            at += 1
    return None, calls


def parse_mistral(text: str, names: set[str]) -> tuple[str | None, list[ToolCall]]:
    """Mistral: ``[TOOL_CALLS]`` and a JSON array of calls; what comes before it is
    content. An array that does not parse leaves everything content."""
    before, marker, after = text.partition("[TOOL_CALLS]")
    if not marker:
        return text, []
    try:
        value = json.loads(after.strip())
    except ValueError:
        return text, []
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(json.dumps(item), names) for item in items]
    if not calls or any(c is None for c in calls):
        return text, []
    return before.strip() or None, [c for c in calls if c is not None]


# The parsers of model families' tool-call formats, by the name `--tool-call-parser` takes
# (vLLM's names, so a preset names one parser for both runtimes).
PARSERS: dict[str, Callable[[str, set[str]], tuple[str | None, list[ToolCall]]]] = {
    "hermes": parse_hermes,
    "llama3_json": parse_llama3_json,
    "mistral": parse_mistral,
}


def _hold_at(text: str, marker: str) -> int:
    """How much of ``text`` can be shown: up to ``marker``, or up to a tail that may be
    the start of it."""
    at = text.find(marker)
    if at >= 0:
        return at
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return len(text) - k
    return len(text)


def _hold_llama3(text: str) -> int:
    """A Llama 3 call is the whole answer: nothing is shown while it may be one."""
    start = text.lstrip()
    tag = "<|python_tag|>"
    if not start or start.startswith(("{", tag)) or tag.startswith(start[: len(tag)]):
        return 0
    return len(text)


# How much of a partial answer may already be streamed as content, per parser.
HOLDS: dict[str, Callable[[str], int]] = {
    "hermes": lambda text: _hold_at(text, "<tool_call>"),
    "llama3_json": _hold_llama3,
    "mistral": lambda text: _hold_at(text, "[TOOL_CALLS]"),
}


class StreamHolder:
    """Streams content token by token under ``tool_choice: "auto"``, holding back what may
    be the start of a call; at the end the whole answer is parsed, and its calls (or the
    held text, when it was no call after all) are sent."""

    def __init__(self, parser: str, names: set[str], parallel: bool) -> None:
        self.parse, self.hold = PARSERS[parser], HOLDS[parser]
        self.names, self.parallel = names, parallel
        self.texts: dict[int, str] = {}
        self.sent: dict[int, int] = {}

    def feed(self, index: int, delta: str) -> str:
        text = self.texts[index] = self.texts.get(index, "") + delta
        sent = self.sent.get(index, 0)
        safe = self.hold(text)
        if safe <= sent:
            return ""
        self.sent[index] = safe
        return text[sent:safe]

    def finish(
        self, index: int, reason: str | None
    ) -> tuple[str, list[dict[str, Any]], str | None]:
        """(content not yet sent, the calls as deltas, the finish reason)."""
        text, sent = self.texts.get(index, ""), self.sent.get(index, 0)
        content, calls = self.parse(text, self.names)
        if not self.parallel:
            calls = calls[:1]
        if not calls:
            return text[sent:], [], reason
        shown, final = text[:sent], content or ""
        rest = final[len(shown) :] if final.startswith(shown) else ""
        return rest, [call.wire(k) for k, call in enumerate(calls)], "tool_calls"
